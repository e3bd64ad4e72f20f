"""The verdict of one try of a case: how the case ended (``judge``), the monitor findings of
its connections (``collect_findings``), and the baseline turning a known non-pass into KNOWN
(``apply_baseline``), and the verdict given to pytest as its outcome
(``raise_outcome``). docs/design.md "Verdicts"; ``conformance.plugin`` calls these from its
call and report hooks.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from conformance import baseline
from conformance import reach
from conformance import retry
from conformance import verdicts
from conformance.casestate import CaseState
from conformance.client import (Blocked, HandshakeRefused, HarnessError, RateLimited, ServerError,
                                TargetStalled, TargetUnreachable)
from conformance.session import SESSION_KEY


class ConformanceWarning(UserWarning):
    """A SHOULD clause was violated (verdict NON-STRICT)."""


def raise_outcome(state: CaseState, verdict: str, strict: bool) -> None:
    """Give pytest the case's verdict: FLAKY and FAIL (and NON-STRICT under ``strict``) fail
    the test, ERROR raises ``HarnessError``, NON-STRICT otherwise warns."""
    __tracebackhide__ = True
    rec = state.recorder
    if verdict == retry.FLAKY:
        pytest.fail("FLAKY: the verdict changed between tries: " + state.messages[-1], pytrace=False)
    if verdict == verdicts.ERROR:
        raise HarnessError("; ".join(rec.errors))
    if verdict == verdicts.FAIL:
        pytest.fail("conformance failures (MUST):\n" + rec.failure_text(verdicts.FAIL), pytrace=False)
    if verdict == verdicts.NON_STRICT:
        text = rec.failure_text(verdicts.NON_STRICT)
        if strict:
            pytest.fail("SHOULD clauses violated (NON-STRICT, failing under strict):\n" + text, pytrace=False)
        warnings.warn(ConformanceWarning("NON-STRICT: SHOULD clauses violated:\n" + text), stacklevel=1)


def judge(state: CaseState, exc: Exception | None) -> str:
    """The verdict of the current try from how the case ended (once per try)."""
    if state.judged:
        return state.verdict or verdicts.PASS
    state.judged = True
    state.blocked = isinstance(exc, Blocked)
    rec = state.recorder
    if state.flaky:
        verdict = retry.FLAKY
    elif exc is None:
        collect_findings(state)
        verdict = rec.verdict()
    elif isinstance(exc, verdicts.ClauseViolation):
        collect_findings(state)
        verdict = verdicts.FAIL
    elif isinstance(exc, HarnessError):
        if not isinstance(exc, (TargetUnreachable, RateLimited, ServerError, TargetStalled, Blocked)) \
                and must_findings(state):
            # the case could not go on because the target broke a MUST (an unanswered
            # create, a response without end): that is the verdict, not "cannot judge"
            verdict = verdicts.FAIL
            state.messages.append(f"stopped: {rec.redact(str(exc))[:300]}")
        else:
            verdict = verdicts.ERROR
            state.messages.append(f"ERROR: {type(exc).__name__}: {rec.redact(str(exc))}")
    elif isinstance(exc, HandshakeRefused):
        verdict = verdicts.ERROR
        state.messages.append(f"ERROR: the target refused the upgrade (HTTP {exc.status}); "
                              f"check the key and URL: {rec.redact(exc.body[:200])}")
    elif isinstance(exc, AssertionError):   # a plain assert in a case: blame its first clause
        collect_findings(state)
        msg = rec.redact(str(exc).split("\n")[0][:300])
        if state.clauses:
            clause = rec.registry[state.clauses[0]]
            rec.observations.append(verdicts.Observation(clause.id, clause.level, False, "expect", msg))
        verdict = verdicts.FAIL
    else:                                   # a bug in the case or the harness: cannot judge
        verdict = verdicts.ERROR
        state.messages.append(f"ERROR: {type(exc).__name__}: {rec.redact(str(exc))[:300]}")
    state.verdict = verdict
    return verdict


def must_findings(state: CaseState) -> bool:
    """Collect the findings now; True when one of them violates a MUST clause."""
    collect_findings(state)
    return any(o.verdict == verdicts.FAIL for o in state.recorder.observations)


def collect_findings(state: CaseState) -> None:
    """Add the monitor findings of every connection (once per try: at its end), and the
    clauses the monitor applied to its frames: checked only when findings are read."""
    if state.collected:
        return
    state.collected = True
    for number, conn in enumerate(state.connections):
        state.recorder.add_findings(conn.findings, connection=number)
        state.recorder.checked |= reach.by_connection(conn)


def apply_baseline(item: pytest.Item, state: CaseState, report: Any) -> None:
    """A non-pass the baseline knows becomes KNOWN: shown, reported as passed."""
    known_deviations = item.config.stash[SESSION_KEY].settings.baseline
    if known_deviations is None or state.verdict is None:
        return
    failed = {o.clause for o in state.recorder.failures(verdicts.NON_STRICT)}
    entries = known_deviations.match(item.nodeid, state.verdict, state.clauses, failed)
    if not entries:
        return
    state.known = {"verdict": state.verdict, "entries": [e.index for e in entries],
                   "reasons": [f"{e.label}: {e.reason}" for e in entries]}
    state.messages.append(f"KNOWN ({state.verdict}) by {known_deviations.path} " + "; ".join(state.known["reasons"]))
    state.verdict = baseline.KNOWN
    if report.failed:
        report.outcome, report.longrepr = "passed", None
