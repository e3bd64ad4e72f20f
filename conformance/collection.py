"""Which items are conformance cases, what they claim, and what holds them back before they run.

A case carries ``@pytest.mark.clause(...)`` with ids from the clause registry (or lives under
a ``cases`` folder); ``check_clause_marks`` lists bad marks, ``select`` keeps the cases of
``--clause``; ``static_skip`` says why a case does not run at all (slow, perf, UNSUPPORTED by
the profile's claims, ``conformance.claims``); ``declared`` reads its ``max_requests`` mark
(``conformance.budget``). docs/design.md "Clauses", "Plugin"; ``conformance.plugin`` calls these
from its collection and setup hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance import budget
from conformance import claims
from conformance import tenants
from conformance import verdicts
from conformance.session import ConformanceSession

MARKERS = (     # the marks a case may carry (pytest --markers)
    "clause(*ids): the clause ids from cases/clauses.toml that a case checks",
    "slow: needs --run-slow (e.g. the real 60-minute connection lifetime)",
    "perf: a measurement (INFO only); needs --perf",
    "requires(*capabilities, reason=''): the case (not its whole clause) "
    "needs these profile capabilities, else UNSUPPORTED before it runs",
    f"other_tenant: a tenant-isolation case; {tenants.NEEDS_KEY}",
    "max_requests(creates=0, http=0, generated=False, perf=False): the most requests "
    "a case sends (generated: plus --generated-budget)",
)


CLIENT_CASES = "client"     # cases/client/: the client scenarios (client mode, docs/clients.md)


def ignored(path: Path, client_mode: bool) -> bool:
    """A run judges one side of the wire: with --client-command only ``cases/client/`` is
    collected, without it everything in ``cases/`` but ``cases/client/``."""
    parts = Path(path).parts
    if "cases" not in parts:
        return False
    start = len(parts) - 1 - parts[::-1].index("cases")
    below = parts[start + 1:]
    if not below or below[-1] in ("__init__.py", "conftest.py"):
        return False
    in_client = below[0] == CLIENT_CASES
    if client_mode:
        return not in_client and (len(below) > 1 or below[0].endswith(".py"))
    return in_client


# client mode: the file of each kind of client case, and the option that collects it
CLIENT_FILES = {"test_scenarios.py": "client_command", "test_own_tests.py": "client_test_command"}


def client_file_ignored(path: Path, settings: Any) -> bool:
    """In client mode, the scenarios run with --client-command, the own tests with
    --client-test-command: a file whose option was not given is not collected."""
    option = CLIENT_FILES.get(Path(path).name)
    return bool(settings.client_mode and option and CLIENT_CASES in Path(path).parts
                and getattr(settings, option) is None)


def is_case(item: pytest.Item) -> bool:
    """A conformance case: marked with clause, or defined in a module under a ``cases`` dir."""
    if item.get_closest_marker("clause") is not None:
        return True
    path = getattr(item, "path", None)
    return path is not None and "cases" in Path(path).parts[:-1]


def clause_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("clause"):
        for arg in mark.args:
            if isinstance(arg, (list, tuple)):
                ids.extend(arg)
            else:
                ids.append(arg)
    return tuple(dict.fromkeys(ids))


def check_clause_marks(items: list[pytest.Item], registry: Any) -> list[str]:
    """One line per case without a clause mark, or naming an unknown or retired clause."""
    problems = []
    for item in items:
        if not is_case(item):
            continue
        ids = clause_ids(item)
        if not ids:
            problems.append(f"{item.nodeid}: a conformance case needs @pytest.mark.clause(\"ID\", ...)")
        for cid in ids:
            if not isinstance(cid, str) or cid not in registry:
                problems.append(f"{item.nodeid}: unknown clause id {cid!r} (not in {registry.path})")
            elif registry[cid].retired:
                problems.append(f"{item.nodeid}: clause {cid!r} is retired")
    return problems


def select(items: list[pytest.Item], registry: Any, wanted: list[str]) -> tuple[list, list]:
    """``--clause``: the cases marked with one of ``wanted`` and the items left out; a
    ``pytest.UsageError`` (one line, with a suggestion) for an unknown id."""
    problem = verdicts.unknown_ids(registry, wanted)
    if problem:
        raise pytest.UsageError(problem)
    keep, drop = [], []
    for item in items:
        (keep if is_case(item) and set(clause_ids(item)) & set(wanted) else drop).append(item)
    return keep, drop


def static_skip(item: pytest.Item, sess: ConformanceSession) -> str | None:
    """Why a case is skipped before it runs (slow, perf, UNSUPPORTED), or None."""
    settings = sess.settings
    if item.get_closest_marker("slow") is not None and not settings.run_slow:
        return "slow: needs --run-slow"
    if item.get_closest_marker("perf") is not None and not item.config.getoption("perf"):
        return "perf: needs --perf"
    reason = claims.unsupported(clause_ids(item), item.iter_markers("requires"), settings.registry, settings.profile,
                                settings.claimed)
    if reason is None and item.get_closest_marker("other_tenant") is not None and not settings.other_tenant_key:
        reason = tenants.NEEDS_KEY      # tenant isolation, §4.5 item 35a: UNTESTED, saying how to test it
    return reason


def declared(item: pytest.Item, sess: ConformanceSession) -> budget.Declared:
    """The most requests the case sends (its ``max_requests`` mark)."""
    settings = sess.settings
    try:
        return budget.declared(item.get_closest_marker("max_requests"), settings.generated_budget, settings.embedded,
                               budget.GENERATED_EMBEDDED,
                               item.config.getoption("perf_turns") * item.config.getoption("perf_repetitions"),
                               profile=settings.profile)
    except ValueError as exc:
        raise pytest.UsageError(f"{item.nodeid}: {exc}") from None


def plan(items: list[pytest.Item], sess: ConformanceSession) -> str | None:
    """The planned maximum of requests of the cases that will run (``budget.plan_line``), or
    None when no item is a case."""
    if not any(is_case(i) for i in items):
        return None
    plans = [declared(i, sess) for i in items if is_case(i) and not static_skip(i, sess)]
    return budget.plan_line(plans, 1 + sess.settings.retries, sess.settings.max_requests)
