"""Which clauses a case actually checked ("reached"), as opposed to the clauses it marks.

A clause reads PASS only when it was checked and held: an ``expect`` for it
was evaluated, or the streaming monitor saw frames the clause governs. The monitor checks
every frame, but a rule about ``error`` events checks nothing on a connection that never
received one. ``MONITOR_SCOPE`` (declared with each clause in ``conformance.monitor.clauses``;
spec §1.4, §3, §3.10, §4.1 item 3, §4.3, §4.4 of docs/spec.md) says which received events or
sent creates make the monitor apply a clause; ``by_monitor`` reads a connection's parsed
messages and creates. No I/O, no pytest.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from conformance.monitor.clauses import BY_TYPE_ONLY, CONTENT_TYPES, SCOPE

# clause -> (a received event the rule applies to, a create the rule needs (None: any or none)),
# declared with the clause in conformance/monitor/clauses.py
MONITOR_SCOPE = SCOPE


def by_monitor(messages: Iterable[Any], creates: Iterable[Any], scope: Mapping = MONITOR_SCOPE) -> set[str]:
    """The monitor-governed clauses that ``messages`` (received, parsed) and ``creates`` (the
    ``response.create`` events sent on the same connection) gave the monitor to check; only
    those of ``scope`` (a part of MONITOR_SCOPE: what a caller does not know yet)."""
    events = [m for m in messages if isinstance(m, dict)]
    one_per_type = list({_type_key(ev): ev for ev in events}.values())
    sent = [c for c in creates if isinstance(c, dict)]
    out = set()
    for clause, (applies, needs) in scope.items():
        if needs is not None and not any(needs(c) for c in sent):
            continue
        if any(applies(ev) for ev in (one_per_type if applies in BY_TYPE_ONLY else events)):
            out.add(clause)
    return out


def _type_key(event: dict) -> Any:
    typ = event.get("type")
    return typ if isinstance(typ, str) else None


def by_connection(conn: Any) -> set[str]:
    """``by_monitor`` for a ``conformance.client.Connection`` (its messages and monitored creates)."""
    creates = [getattr(r, "create", None) for r in getattr(conn.monitor, "requests", ())]
    return by_monitor(conn.messages, creates)
