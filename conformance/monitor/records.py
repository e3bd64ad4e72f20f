"""What the monitor reports: a ``Finding`` (one observation tied to a clause id of
cases/clauses.toml) and an ``Observed`` frame (what ``StreamMonitor.feed`` made of it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VIOLATION = "violation"
EXTENSION = "extension"
INFO = "info"  # an observation the target's profile tolerates (the clause named), never a failure


@dataclass(slots=True)
class Finding:
    """One observation tied to a clause id of cases/clauses.toml."""

    clause: str
    message: str
    kind: str = VIOLATION
    frame_index: int | None = None
    response_id: str | None = None
    pointer: str | None = None


@dataclass(slots=True)
class Observed:
    """What ``feed`` made of one frame (``t``: the receive time the harness passed)."""

    index: int
    message: dict | None
    request: int | None
    findings: list
    t: float | None = None


def short(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters, for finding messages."""
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - repr of plain JSON data does not fail
        text = "<unrepresentable>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
