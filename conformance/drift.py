"""Drift: the surface a target showed beyond our schemas, recorded in ``certificate.json``.

For every connection of a case: the server event types seen (with counts), the types our
schema set does not know (§3.4 extensions, including the wild ones the monitor tolerates),
unknown top-level fields per known type (§3.1 extension tolerance), error codes and types
(§3.10; codes it does not document are also listed as unknown), and the names of the handshake response headers (§1.2). The plugin stores one
``surface`` per case record; ``merge`` adds them up for the certificate, and
``conformance.diff`` compares two certificates. No I/O, no pytest import.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from conformance.monitor import WILD_EXTENSIONS

KEYS = ("event_types", "unknown_event_types", "unknown_fields", "error_codes", "unknown_error_codes",
        "error_types", "handshake_headers")

# error codes the protocol reference documents (§3.10, docs/spec.md; rate limits and server
# errors from the shared OpenAI envelope): any other code a target sends is "unknown"
DOCUMENTED_ERROR_CODES = frozenset({
    "previous_response_not_found", "websocket_connection_limit_reached", "invalid_stream_id",
    "websocket_stream_limit_reached", "misalignment_policy_violation", "rate_limit_exceeded", "server_error",
})


class _Known:
    """Which server event types and top-level fields the schema set knows (cached)."""

    def __init__(self, schemas: Any):
        self._s = schemas
        self._types: dict[str, tuple[bool, frozenset | None]] = {}

    def lookup(self, typ: str) -> tuple[bool, frozenset | None]:
        """(is the server event type known, its known top-level fields or None when the
        schema lists none: then fields are not judged, as the monitor does)."""
        if typ not in self._types:
            known, fields = False, None
            if typ not in WILD_EXTENSIONS and self._s.is_known(typ) and self._s.direction(typ) != "client":
                known = True
                props = self._s.schema(typ).get("properties")
                fields = frozenset(props) if isinstance(props, dict) and props else None
            self._types[typ] = (known, fields)
        return self._types[typ]


_KNOWN: _Known | None = None


def _known() -> _Known:
    global _KNOWN
    if _KNOWN is None:
        from conformance.schemas import get_schemas
        _KNOWN = _Known(get_schemas())
    return _KNOWN


def _error_parts(event: dict) -> tuple[Any, Any]:
    """(code, type) of an error event; the legacy flat shape has no error type (its
    ``type`` is the event's)."""
    inner = event.get("error")
    if isinstance(inner, dict):
        return inner.get("code"), inner.get("type")
    return event.get("code"), None


def surface(messages: Iterable[Any], header_names: Iterable[str] = (), known: _Known | None = None) -> dict:
    """The surface of some received messages (parsed server events) and handshake headers."""
    known_types = known or _known()
    types: Counter = Counter()
    unknown_types: set[str] = set()
    unknown_fields: dict[str, set[str]] = {}
    codes: Counter = Counter()
    etypes: Counter = Counter()
    for event in messages:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            continue
        typ = event["type"][:200]
        types[typ] += 1
        known_type, fields = known_types.lookup(typ)
        if not known_type:
            unknown_types.add(typ)
        elif fields is not None:
            extra = [str(f)[:100] for f in event if f not in fields]
            if extra:
                unknown_fields.setdefault(typ, set()).update(extra)
        if typ == "error":
            code, etype = _error_parts(event)
            codes[str(code) if code is not None else "(none)"] += 1
            etypes[str(etype) if etype is not None else "(none)"] += 1
    return {"event_types": dict(types), "unknown_event_types": sorted(unknown_types),
            "unknown_fields": {t: sorted(v) for t, v in sorted(unknown_fields.items())},
            "error_codes": dict(codes), "unknown_error_codes": _unknown_codes(codes), "error_types": dict(etypes),
            "handshake_headers": sorted({h.lower() for h in header_names})}


def _unknown_codes(codes: Any) -> list[str]:
    return sorted(c for c in codes if c not in DOCUMENTED_ERROR_CODES and c != "(none)")


def merge(parts: Iterable[dict | None]) -> dict:
    """Add up surfaces (counts summed, sets united), sorted for stable certificates."""
    counts = {k: Counter() for k in ("event_types", "error_codes", "error_types")}
    sets = {k: set() for k in ("unknown_event_types", "handshake_headers")}
    fields: dict[str, set] = {}
    for part in parts:
        if not part:
            continue
        for k in counts:
            counts[k].update(part.get(k) or {})
        for k in sets:
            sets[k].update(part.get(k) or [])
        for t, fs in (part.get("unknown_fields") or {}).items():
            fields.setdefault(t, set()).update(fs)
    return {"event_types": dict(sorted(counts["event_types"].items())),
            "unknown_event_types": sorted(sets["unknown_event_types"]),
            "unknown_fields": {t: sorted(v) for t, v in sorted(fields.items())},
            "error_codes": dict(sorted(counts["error_codes"].items())),
            "unknown_error_codes": _unknown_codes(counts["error_codes"]),
            "error_types": dict(sorted(counts["error_types"].items())),
            "handshake_headers": sorted(sets["handshake_headers"])}


def of_connections(connections: Iterable[Any]) -> dict:
    """The merged surface of some ``client.Connection`` objects."""
    return merge(surface(c.messages, c.response_headers) for c in connections)
