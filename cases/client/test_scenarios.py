"""Client conformance (docs/spec.md §4.11, docs/clients.md): one case per scenario of
``conformance.clientmode.scenarios``. Collected only in client mode (``--client-command``);
each case runs the client once against the reference server playing the scenario and states
one expectation per client clause the scenario checks."""

from __future__ import annotations

import pytest

from conformance.clientmode.casework import expect_all
from conformance.clientmode.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.name, marks=pytest.mark.clause(*s.all_clauses))
                                      for s in SCENARIOS])
def test_client_scenario(scenario, client_scenario, expect):
    expect_all(client_scenario(scenario), expect)
