"""The exceptions a harness call raises when a case cannot judge (verdict ERROR) or the
target refused before any protocol exchange; ``conformance.client`` raises them and
``conformance.tries`` sorts them into transient and final reasons (docs/design.md, Retries)."""

from __future__ import annotations


class HarnessError(Exception):
    """The harness itself cannot go on (misuse or bug): verdict ERROR."""


class TargetUnreachable(HarnessError):
    """The target could not be reached at all (DNS, connection refused, handshake timeout)."""


class RateLimited(HarnessError):
    """The target answered a turn with a rate limit (status 429): the case cannot judge.
    ``retry_after``: the delay the target asked for, in seconds, when it named one."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(HarnessError):
    """The target answered a turn with ``server_error`` or a 5xx status: the case cannot judge."""


class Blocked(HarnessError):
    """The target's safety system blocked the turn (``misalignment_policy_violation``, §3.10):
    the target refusing, never a protocol FAIL, and never retried."""


class TargetStalled(HarnessError):
    """The run stopped sending requests: the target stalled, or the run deadline passed
    (``conformance.liveness``). Verdict ERROR, saying since which case."""


class ClosedAtOnce(HarnessError):
    """The upgrade accepted, then closed before any frame (spec §4.1 item 4a): a refusal."""


class HandshakeRefused(Exception):
    """The upgrade was answered with an HTTP status instead of 101."""

    def __init__(self, status: int, body: str, headers: dict[str, str]):
        self.status, self.body, self.headers = status, body, headers
        super().__init__(f"handshake refused: HTTP {status}" + (f": {body[:300]}" if body else ""))
