"""Retries and FLAKY: which outcomes of a case are tried again, how long to wait, and what
the verdicts of all tries add up to.

A case ending FAIL, or ERROR for a transient reason (rate limit with its ``Retry-After``
honoured up to ``RETRY_AFTER_CAP``, ``server_error``/5xx, a connection reset or unreachable
target), is run again on fresh connections, up to ``--retries`` more times
(``conformance.plugin`` runs the tries). The tries combine by this table:

=====================================  ==========================================
verdicts of the tries                  case verdict
=====================================  ==========================================
all the same                           that verdict (a FAIL on every try is FAIL)
any two differ                         FLAKY (never PASS; every try's transcript kept)
=====================================  ==========================================

A FLAKY case whose clauses include a MUST keeps the certificate's overall verdict from PASS
(overall FLAKY unless something is worse). No pytest import here.
"""

from __future__ import annotations

from typing import Any

from conformance import verdicts as V
from conformance.client import Blocked, HarnessError, RateLimited, TargetStalled

FLAKY = "FLAKY"
RETRY_AFTER_CAP = 60.0      # seconds: a longer Retry-After is cut to this
DEFAULT_BACKOFF = 1.0       # seconds before a retry that names no delay (times the try number)


def retryable(verdict: str, exc: BaseException | None) -> bool:
    """Is this try's outcome worth another try?"""
    if verdict == V.FAIL:
        return True
    if verdict != V.ERROR or exc is None:
        return False
    # a stalled run sends nothing more; a refused key, a safety block (§3.10: never retried
    # automatically) or a harness bug does not go away
    return isinstance(exc, HarnessError) and not isinstance(exc, (TargetStalled, Blocked))


def retry_delay(exc: BaseException | None, attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: the delay a rate limit asked for (capped
    at RETRY_AFTER_CAP), else a short backoff."""
    after = getattr(exc, "retry_after", None) if isinstance(exc, RateLimited) else None
    if isinstance(after, (int, float)) and after >= 0:
        return min(float(after), RETRY_AFTER_CAP)
    return DEFAULT_BACKOFF * attempt


def combine(verdicts: list[str]) -> str:
    """The case verdict from the verdicts of its tries, in order."""
    if not verdicts:
        return V.PASS
    return verdicts[0] if len(set(verdicts)) == 1 else FLAKY


def flaky_blocks_pass(records: list[dict], registry: Any) -> bool:
    """A FLAKY case with a MUST clause among those it marks or failed keeps overall from PASS."""
    for rec in records:
        if rec.get("verdict") != FLAKY:
            continue
        ids = set(rec.get("clauses", []))
        for t in rec.get("tries", []):
            ids.update(t.get("failed_clauses", []))
        if any(cid in registry and registry[cid].level == "MUST" for cid in ids):
            return True
    return False
