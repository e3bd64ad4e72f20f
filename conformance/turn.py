"""The outcome of one ``response.create`` as a case reads it: status, events, the terminal
response or error, the monitor's findings, timings, and the output a client would see.

Plain data built by ``conformance.client.Connection.wait`` (docs/interfaces.md, the client
seam; docs/design.md "Data flow of one case" step 2); no I/O. The output rules follow §4.3
item 16a (docs/spec.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TurnStatus(enum.StrEnum):
    """How a turn ended: its terminal event's status, a request-scoped error, its deadline
    passing, or the socket closing first. Equal to its plain string (``"timeout"``)."""

    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    CLOSED = "closed"


@dataclass
class Turn:
    """The outcome of one ``response.create``.

    ``status``: ``completed | incomplete | failed`` (terminal event), ``error`` (request-scoped
    error event), ``timeout`` (deadline passed), ``closed`` (socket closed first).
    A full turn's deadline is idle time (``Target.turn_timeout`` since the last frame) under
    an overall cap (``Target.turn_cap``), §1.5 (docs/spec.md).
    """

    request: int
    create: dict
    events: list[dict]
    response: dict | None
    error: dict | None
    status: TurnStatus
    findings: list
    timings: dict[str, float]
    close_code: int | None = None
    detail: str = ""

    @property
    def response_id(self) -> str | None:
        if self.response and self.response.get("id"):
            return self.response["id"]
        for ev in self.events:
            r = ev.get("response")
            if isinstance(r, dict) and r.get("id"):
                return r["id"]
        return None

    @property
    def error_code(self) -> str | None:
        if not self.error:
            return None
        inner = self.error.get("error")
        if isinstance(inner, dict):
            return inner.get("code")
        return self.error.get("code")

    @property
    def error_status(self) -> int | None:
        if not self.error:
            return None
        status = self.error.get("status", self.error.get("status_code"))
        return status if isinstance(status, int) else None

    @property
    def error_message(self) -> str | None:
        if not self.error:
            return None
        inner = self.error.get("error")
        return inner.get("message") if isinstance(inner, dict) else self.error.get("message")

    @property
    def event_types(self) -> list[str]:
        return [ev.get("type", "?") for ev in self.events]

    @property
    def output(self) -> list[dict]:
        """The output items as a client sees them: the terminal ``response.output``, or, when it
        is missing, null or empty, the items of the ``output_item.done`` events in
        ``output_index`` order (what the official SDK's WebSocket helper fills in, §4.3 item 16a)."""
        out = (self.response or {}).get("output")
        if isinstance(out, list) and out:
            return out
        done = [ev for ev in self.events if ev.get("type") == "response.output_item.done"
                and isinstance(ev.get("item"), dict)]
        done.sort(key=lambda ev: ev["output_index"] if type(ev.get("output_index")) is int else len(done))
        return [ev["item"] for ev in done]

    @property
    def output_text(self) -> str:
        parts = []
        for item in self.output:
            if isinstance(item, dict) and item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        parts.append(str(part.get("text", "")))
        return "".join(parts)

    @property
    def function_calls(self) -> list[dict]:
        return [i for i in self.output if isinstance(i, dict) and i.get("type") == "function_call"]

    @property
    def usage(self) -> dict | None:
        usage = (self.response or {}).get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def violations(self) -> list:
        return [f for f in self.findings if getattr(f, "kind", "violation") == "violation"]

    def summary(self) -> str:
        """A short, key-free evidence line for messages and reports."""
        bits = [f"status={self.status}"]
        if self.response_id:
            bits.append(f"response_id={self.response_id}")
        if self.error is not None:
            bits.append(f"error.code={self.error_code!r} status={self.error_status!r}")
            if self.error_message:
                bits.append(f"message={self.error_message[:160]!r}")
        if self.close_code is not None:
            bits.append(f"close_code={self.close_code}")
        types = self.event_types
        if types:
            tail = types[-4:]
            bits.append(f"events[{len(types)}]=" + ("..., " if len(types) > 4 else "") + ", ".join(tail))
        if self.detail:
            bits.append(self.detail)
        return " ".join(bits)

    def __repr__(self) -> str:
        return f"Turn(request={self.request}, {self.summary()})"
