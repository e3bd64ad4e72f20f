"""Retries and FLAKY: which outcomes of a case are tried again, how long to wait, and what
the verdicts of all tries add up to.

A case ending FAIL, or ERROR for a transient reason (rate limit with its ``Retry-After`` /
"try again in Ns" honoured up to ``RETRY_AFTER_CAP``, ``server_error``/5xx, a connection reset
or unreachable target), is run again on fresh connections, up to ``--retries`` more times
(``conformance.plugin`` runs the tries). Not tried again: a *deterministic* FAIL, one whose
every failed clause rests on frames the target sent (a schema or grammar finding with its
frame): a retry cannot unsee them, it only repeats the case's quiet periods. A retry of a
try that ended by a turn deadline waits a shorter idle deadline (``retry_idle``): it can only
confirm the FAIL or disagree (FLAKY), never turn it into a PASS on its own. The tries combine
by this table:

=========================================  ==========================================
verdicts of the tries                      case verdict
=========================================  ==========================================
ERROR for a transient reason, then others  the others' verdict (the transient tries are
                                           recorded and counted, not judged)
all the same                               that verdict (a FAIL on every try is FAIL)
any two differ                             FLAKY (never PASS; every try's transcript kept)
=========================================  ==========================================

A FLAKY case whose clauses include a MUST keeps the certificate's overall verdict from PASS
(overall FLAKY unless something is worse). No pytest import here.
"""

from __future__ import annotations

from typing import Any, Iterable

from conformance import caserecord
from conformance.caserecord import CaseRecord
from conformance.client import Blocked, HandshakeRefused, HarnessError, RateLimited, ServerError, TargetStalled
from conformance.vocabulary import ERROR, FAIL, FLAKY, PASS

RETRY_AFTER_CAP = 60.0      # seconds: a longer Retry-After is cut to this
DEFAULT_BACKOFF = 1.0       # seconds before a retry that names no delay (times the try number)
MAX_TRANSIENT = 3           # transient tries run again per case, beside --retries
RETRY_IDLE_FACTOR = 0.25    # a retry after a deadline ending waits this part of the idle deadline
RETRY_IDLE_MIN = 1.0        # ... but at least this many seconds


def transient(exc: BaseException | None) -> str | None:
    """The transient reason a try ended ERROR for (a refusal that says nothing about
    conformance and may go away), or None."""
    if isinstance(exc, RateLimited):
        return "rate_limit"
    if isinstance(exc, ServerError):
        return "server_error"
    if isinstance(exc, HandshakeRefused) and (exc.status == 429 or exc.status >= 500):
        return "rate_limit" if exc.status == 429 else "server_error"
    return None


def refused(connections: list) -> str | None:
    """The transient reason a try's connections were refused for (an error event with a rate
    limit or a server error, whatever the case made of it), or None."""
    for conn in connections:
        for reason, _ in getattr(conn, "refusals", ()):
            return reason
    return None


def refused_after(connections: list) -> float | None:
    """The delay the first rate-limit error event of a try asked for, if it named one."""
    for conn in connections:
        for reason, after in getattr(conn, "refusals", ()):
            if reason == "rate_limit" and after is not None:
                return after
    return None


def retryable(verdict: str, exc: BaseException | None, deterministic: bool = False) -> bool:
    """Is this try's outcome worth another try? (``deterministic``: see ``deterministic``)"""
    if verdict == FAIL:
        return not deterministic
    if verdict != ERROR or exc is None:
        return False
    if transient(exc):
        return True
    # a stalled run sends nothing more; a refused key, a safety block (§3.10: never retried
    # automatically) or a harness bug does not go away
    return isinstance(exc, HarnessError) and not isinstance(exc, (TargetStalled, Blocked))


def retry_delay(exc: BaseException | None, attempt: int, asked: float | None = None) -> float:
    """Seconds to wait before try ``attempt + 1``: the delay a rate limit asked for (its
    error's "try again in", ``retry_after`` (``asked``: an error event the case read itself),
    or a refused handshake's ``Retry-After`` header;
    capped at RETRY_AFTER_CAP), else a short backoff."""
    after = getattr(exc, "retry_after", None) if isinstance(exc, RateLimited) else asked
    if isinstance(exc, HandshakeRefused):
        header = next((v for k, v in exc.headers.items() if k.lower() == "retry-after"), "")
        after = float(header) if header.strip().replace(".", "", 1).isdigit() else None
    if isinstance(after, (int, float)) and after >= 0:
        return min(float(after), RETRY_AFTER_CAP)
    return DEFAULT_BACKOFF * attempt


def retry_idle(turn_timeout: float) -> float:
    """The idle deadline of a retry after a try that ended by a turn deadline."""
    return min(turn_timeout, max(RETRY_IDLE_MIN, turn_timeout * RETRY_IDLE_FACTOR))


def deterministic(failed_clauses: set[str], findings: list) -> bool:
    """A FAIL that a retry cannot change: every failed clause has a monitor finding made on a
    frame the target sent, and none made by a deadline (a finding without a frame)."""
    if not failed_clauses:
        return False
    on_frames = {f.clause for f in findings if getattr(f, "kind", "violation") == "violation"
                 and getattr(f, "frame_index", None) is not None}
    by_deadline = {f.clause for f in findings if getattr(f, "frame_index", None) is None}
    return failed_clauses <= on_frames and not failed_clauses & by_deadline


def combine(verdicts: list[str], transients: list | None = None) -> str:
    """The case verdict from the verdicts of its tries, in order; ``transients[i]`` true: try
    i ended ERROR for a transient reason, and does not count when another try has a verdict."""
    if transients:
        judged = [v for v, t in zip(verdicts, transients) if not t]
        verdicts = judged or verdicts
    if not verdicts:
        return PASS
    return verdicts[0] if len(set(verdicts)) == 1 else FLAKY


def summary(records: Iterable[CaseRecord | dict]) -> dict:
    """The certificate's ``retries`` block: transient tries run again and creates sent again in
    place (``Connection.turn``), in how many cases, why."""
    by_reason: dict[str, int] = {}
    cases = 0
    for rec in caserecord.all_of(records):
        reasons = rec.transient_reasons()      # with creates a turn sent again on its connection
        cases += bool(reasons)
        for reason in reasons:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    return {"transient": sum(by_reason.values()), "cases": cases, "by_reason": dict(sorted(by_reason.items()))}


def flaky_blocks_pass(records: Iterable[CaseRecord | dict], registry: Any) -> bool:
    """A FLAKY case with a MUST clause among those it marks or failed keeps overall from PASS."""
    for rec in caserecord.all_of(records):
        if rec.verdict != FLAKY:
            continue
        ids = set(rec.clauses) | rec.failed_in_tries()
        if any(cid in registry and registry[cid].level == "MUST" for cid in ids):
            return True
    return False
