"""A client's own test command, run unchanged (docs/clients.md "A client's own tests",
docs/spec.md §4.11 items 53-57): collected only with ``--client-test-command``. One case runs
the command once against the reference server behaving normally and judges what it sent by
the client clauses that hold for any traffic; the clauses that need a scenario stay UNTESTED.
With ``--client-test-scenario NAME`` the server plays that scenario and the case also checks
its clauses (``conformance.clienthooks`` adds them to the clause mark)."""

from __future__ import annotations

import pytest

from conformance.clientmode.ownsuite import ANY_TRAFFIC, expect_own


@pytest.mark.clause(*ANY_TRAFFIC)
def test_own_tests(client_own_tests, expect):
    expect_own(client_own_tests(), expect)
