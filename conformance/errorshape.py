"""The shapes an error event takes besides the §3.10 envelope, each named (spec §3.10 "Error
shapes seen in the field", §4.10 items 51, 51a and 52 of docs/spec.md).

Servers and gateways were seen sending the legacy flat shape, a ``{"detail": …}`` body (what
generic web frameworks answer), a message-only error with no ``code`` (the ChatGPT/Codex
backend's stale-anchor error), and ``status_code`` in place of ``status``. ``SHAPES`` lists
them with the clause each breaks; ``deviations(event)`` names those an event has, so that a
finding says what the target sent, not only which field is missing. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# the clause a status shape breaks depends on the profile: ERR-STATUS-PRESENT (a SHOULD), and
# under P-open also ERR-STATUS-REQUIRED (a MUST); the cases pick it
STATUS = "status"


@dataclass(frozen=True)
class Shape:
    name: str
    clause: str                       # the clause it breaks, or STATUS
    says: str                         # what it is, in words
    found: Callable[[dict], bool]


def _inner(event: dict) -> dict | None:
    inner = event.get("error")
    return inner if isinstance(inner, dict) else None


SHAPES: tuple[Shape, ...] = (
    Shape("flat", "ERR-CODE-NESTED", "the legacy flat shape (code at the top level, no error object)",
          lambda event: _inner(event) is None and "code" in event),
    Shape("detail-body", "ERR-ENVELOPE", 'a {"detail": ...} body in place of the error object',
          lambda event: _inner(event) is None and "code" not in event and "detail" in event),
    Shape("no-error-object", "ERR-ENVELOPE", "an error event without an error object",
          lambda event: _inner(event) is None and "code" not in event and "detail" not in event),
    Shape("message-only", "ERR-ENVELOPE", "a message-only error (error.code missing, not null)",
          lambda event: _inner(event) is not None and "code" not in event["error"]),
    Shape("status-code-alias", STATUS, "status_code in place of status",
          lambda event: "status" not in event and "status_code" in event),
    Shape("no-status", STATUS, "no status at all",
          lambda event: "status" not in event and "status_code" not in event),
)


def deviations(event: Any, clause: str | None = None) -> list[Shape]:
    """The shapes of ``SHAPES`` that ``event`` has (only those breaking ``clause``, if given)."""
    if not isinstance(event, dict):
        return []
    return [shape for shape in SHAPES if (clause is None or shape.clause == clause) and shape.found(event)]


def status_problem(event: Any) -> str | None:
    """What is wrong with the ``status`` of an error event, in words (None: an integer 4xx/5xx)."""
    if not isinstance(event, dict):
        return "the error is not a JSON object"
    status = event.get("status")
    if type(status) is int and 400 <= status <= 599:
        return None
    shapes = deviations(event, STATUS)
    if shapes and shapes[0].name == "status-code-alias":
        return f"it carries status_code {event.get('status_code')!r} in place of status"
    if shapes:
        return "it carries no status at all"
    return f"it carries status {status!r}, expected the HTTP-equivalent 4xx/5xx integer"
