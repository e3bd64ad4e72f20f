"""A case's tries: run it, and again on fresh connections while ``conformance.retry`` says so.

With ``--retries N`` a case that ends FAIL or ERROR for a reason worth another try runs up to N
more times; a try refused for a transient reason (rate limit, server error) is run again
without counting (at most ``retry.MAX_TRANSIENT``); differing verdicts make it FLAKY; a
stalled target or a budget that no longer fits ends the tries (docs/design.md "Retries",
issue 21). ``conformance.plugin`` calls :func:`run_tries` from ``pytest_pyfunc_call``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from conformance import judging
from conformance import retry
from conformance import verdicts
from conformance.casestate import CaseState
from conformance.client import TargetStalled
from conformance.session import ConformanceSession


def run_tries(case: Callable[..., Any], kwargs: dict, state: CaseState, session: ConformanceSession) -> None:
    """Run ``case(**kwargs)`` for as many tries as the rules allow; leave the case's outcome in
    ``state`` (a FLAKY verdict, or the judged try restored) and raise the judged try's exception."""
    retries = session.settings.retries
    attempt = transient_tries = 0
    live = session.run.liveness
    while True:
        deadlines_before = live.case_deadlines if live is not None else 0
        token = verdicts.bind(state.recorder)
        exc: Exception | None = None
        try:
            case(**kwargs)
        except Exception as raised:  # noqa: BLE001 - judged like the last try, below
            exc = raised
        finally:
            verdicts.unbind(token)
        verdict = judging.judge(state, exc)
        # --- issue 21: transient refusals, deterministic findings, deadline endings (retry.py)
        reason = (retry.transient(exc) if verdict == verdicts.ERROR else None) or \
            (retry.refused(state.connections) if verdict in (verdicts.FAIL, verdicts.ERROR) else None)
        if reason:
            transient_tries += 1
            if transient_tries > retry.MAX_TRANSIENT:
                break
        else:
            attempt += 1
            failed = {o.clause for o in state.recorder.failures(verdicts.NON_STRICT)}
            deterministic = verdict == verdicts.FAIL and retry.deterministic(
                failed, [f for c in state.connections for f in c.findings])
            if deterministic and attempt <= retries:
                state.messages.append("not retried: every failure rests on frames the target sent")
            if attempt > retries or not retry.retryable(verdict, exc, deterministic):
                break
        if live is not None and live.stalled():
            break                           # no try can run any more
        session.budget.release()
        if session.budget.reserve(state.declared):
            state.messages.append("no retry: it does not fit in --max-requests")
            break
        if live is not None and live.case_deadlines > deadlines_before:
            live.idle_limit = retry.retry_idle(session.settings.turn_timeout)
        delay = retry.retry_delay(exc, max(attempt, transient_tries), retry.refused_after(state.connections))
        state.next_try(exc, transient=reason, backoff_s=delay)
        time.sleep(delay)
    if state.tries:
        exc = _conclude(state, exc, reason)
    if exc is not None:
        raise exc


def _conclude(state: CaseState, exc: Exception | None, reason: str | None) -> Exception | None:
    """Keep the last try and make the case's outcome from all of them: FLAKY when their
    verdicts differ, else the last judged try's (returns its exception)."""
    state.keep_try(exc, transient=reason)
    # a try stopped because the target stalled meanwhile did not run: it does not count
    ran = [t for t in state.tries if not isinstance(t["exc"], TargetStalled)] or state.tries
    judged = [t for t in ran if not t.get("transient")] or ran
    if judged[-1] is not state.tries[-1]:
        state.restore(judged[-1])
        exc = judged[-1]["exc"]
    try_verdicts = [t["verdict"] for t in ran]
    if retry.combine(try_verdicts, [t.get("transient") for t in ran]) == retry.FLAKY:
        state.verdict, state.flaky = retry.FLAKY, True
        state.messages.append("tries gave " + ", ".join(try_verdicts))
        return None
    retried = [t["transient"] for t in ran if t.get("transient")]
    state.messages.append(f"{len(try_verdicts)} tries, every one {judged[-1]['verdict']}" if not retried else
                          f"{len(try_verdicts)} tries: {len(retried)} refused for a transient reason "
                          f"({', '.join(retried)}), run again; the verdict is the other tries'")
    return exc
