"""Which clauses a case actually checked ("reached"), as opposed to the clauses it marks.

A clause reads PASS only when it was checked and held: an ``expect`` for it
was evaluated, or the streaming monitor saw frames the clause governs. The monitor checks
every frame, but a rule about ``error`` events checks nothing on a connection that never
received one. ``MONITOR_SCOPE`` says, per monitor-governed clause (the clause ids of
``conformance.monitor``, spec §1.4, §3, §3.10, §4.1 item 3, §4.3, §4.4 (docs/spec.md)), which
received events or sent creates make the monitor apply it; ``by_monitor`` reads a
connection's parsed messages and creates. No I/O, no pytest.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

Event = dict
_Rule = Callable[[Event], bool]


def _any(ev: Event) -> bool:
    return True


def _type(ev: Event) -> str:
    t = ev.get("type")
    return t if isinstance(t, str) else ""


def _error(ev: Event) -> bool:
    return _type(ev) == "error"


def _response_event(ev: Event) -> bool:
    return _type(ev).startswith("response.")


def _created(ev: Event) -> bool:
    return _type(ev) == "response.created"


def _item(ev: Event) -> bool:
    return _type(ev).startswith("response.output_item.")


def _delta(ev: Event) -> bool:
    return _response_event(ev) and _type(ev).endswith(".delta")


def _done_value(ev: Event) -> bool:
    return _response_event(ev) and _type(ev).endswith(".done")


def _incomplete(ev: Event) -> bool:
    if _type(ev) == "response.incomplete":
        return True
    item = ev.get("item")
    return _type(ev) == "response.output_item.done" and isinstance(item, dict) and item.get("status") == "incomplete"


def _default_lane(create: dict) -> bool:
    return "stream_id" not in create


def _named_lane(create: dict) -> bool:
    return "stream_id" in create


# clause -> (a received event the rule applies to, a create the rule needs (None: any or none))
MONITOR_SCOPE: dict[str, tuple[_Rule, Callable[[dict], bool] | None]] = {
    "WS-TEXT-JSON-FRAMES": (_any, None),
    "WS-NO-SSE-FRAMING": (_any, None),
    "SCHEMA-SERVER-EVENT": (_any, None),
    "EXT-UNKNOWN-TOLERATED": (_any, None),
    "ERR-ENVELOPE": (_error, None),
    "ERR-CODE-NESTED": (_error, None),
    "STREAM-CREATED-FIRST": (_response_event, None),
    "STREAM-IN-PROGRESS-FOLLOWS": (_created, None),
    "STREAM-ONE-TERMINAL": (_created, None),
    "STREAM-TERMINAL-LAST": (_created, None),
    "STREAM-TERMINAL-RESPONSE": (_created, None),
    "STREAM-ITEM-LIFECYCLE": (_item, None),
    "STREAM-INDEXES-IN-ORDER": (_item, None),
    "STREAM-ANNOUNCED-ITEM": (_item, None),
    "STREAM-DELTAS-ADD-UP": (_delta, None),
    "STREAM-DONE-MATCHES-OUTPUT": (_done_value, None),
    "STREAM-INCOMPLETE-ITEM-LAST": (_incomplete, None),
    "SEQ-PRESENT": (_response_event, None),
    "SEQ-MONOTONIC": (_response_event, None),
    "SEQ-FROM-ZERO-BY-ONE": (_response_event, None),
    "QUEUE-ONE-IN-FLIGHT": (_created, None),
    "PREVIOUS-ID-ECHOED": (_created, None),
    "LANE-DEFAULT-UNTAGGED": (_response_event, _default_lane),
    "LANE-TAGGED": (_response_event, _named_lane),
}


def by_monitor(messages: Iterable[Any], creates: Iterable[Any]) -> set[str]:
    """The monitor-governed clauses that ``messages`` (received, parsed) and ``creates`` (the
    ``response.create`` events sent on the same connection) gave the monitor to check."""
    events = [m for m in messages if isinstance(m, dict)]
    sent = [c for c in creates if isinstance(c, dict)]
    out = set()
    for clause, (applies, needs) in MONITOR_SCOPE.items():
        if needs is not None and not any(needs(c) for c in sent):
            continue
        if any(applies(ev) for ev in events):
            out.add(clause)
    return out


def by_connection(conn: Any) -> set[str]:
    """``by_monitor`` for a ``conformance.client.Connection`` (its messages and monitored creates)."""
    creates = [getattr(r, "create", None) for r in getattr(conn.monitor, "requests", ())]
    return by_monitor(conn.messages, creates)
