"""Framing and schema dispatch of one received frame (sans-I/O).

§1.4 and §4.1 item 3 (docs/spec.md): one text frame, one JSON object with a string ``type``
(``WS-TEXT-JSON-FRAMES``), no SSE framing or ``[DONE]`` (``WS-NO-SSE-FRAMING``). §3 and §4.10:
the event against its schema (``SCHEMA-SERVER-EVENT``; ``ERR-ENVELOPE`` for ``error``,
``ERR-CODE-NESTED`` for the flat legacy shape), unknown types and fields as extensions (§3.1).
Findings go to an ``add(clause, message, kind=..., pointer=...)`` callable.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from conformance.monitor.clauses import (
    ERR_ENVELOPE, EXT_UNKNOWN_TOLERATED, SCHEMA_SERVER_EVENT, WS_NO_SSE_FRAMING, WS_TEXT_JSON_FRAMES,
)
from conformance.monitor.events import KNOWN_EVENT_TYPES, WILD_EXTENSIONS
from conformance.monitor.records import EXTENSION, short

_loads = json.loads
_SSE_PREFIXES = ("event:", "data:", "id:", "retry:", ":")
MAX_SCHEMA_ISSUES = 8

# how the grammar treats a type (see SchemaDispatch.classify)
GRAMMAR, GENERIC, EXTENSION_TYPE = "grammar", "generic", "extension"


class PermissiveSchemas:
    """A schema set that accepts everything: grammar-only monitoring."""

    def is_valid(self, event: Any) -> bool:
        return True

    def validate(self, event: Any) -> list:
        return []

    def is_known(self, event_type: str) -> bool:
        return event_type in KNOWN_EVENT_TYPES

    def checker(self, event_type: str) -> None:
        return None


PERMISSIVE = PermissiveSchemas()


def decode(data: Any, add: Callable[..., Any]) -> dict | None:
    """The event of one frame, or None (framing findings made). A frame that is SSE text
    still yields its ``data:`` event, to keep attribution in step with the stream."""
    if type(data) is str:
        text = data
    else:
        text = _binary(data, add)
        if text is None:
            return None
    try:
        event = _loads(text)
    except Exception:
        event = _not_json(text, add)
        if event is None:
            return None
    if type(event) is not dict:
        if event == "[DONE]":
            add(WS_NO_SSE_FRAMING, "frame is a [DONE] sentinel")
        else:
            add(WS_TEXT_JSON_FRAMES, f"frame is JSON but not an object: {short(event)}")
        return None
    typ = event.get("type")
    if type(typ) is not str:
        add(WS_TEXT_JSON_FRAMES, f"event has no string 'type': {short(typ)}", pointer="/type")
        return None
    return event


def _binary(data: Any, add: Callable[..., Any]) -> str | None:
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            add(WS_TEXT_JSON_FRAMES, f"binary frame of {len(data)} bytes (not UTF-8 text)")
            return None
        add(WS_TEXT_JSON_FRAMES, f"binary frame of {len(data)} bytes (server events are text frames)")
        return text
    add(WS_TEXT_JSON_FRAMES, f"frame of type {type(data).__name__}, not text")
    return None


def _not_json(text: str, add: Callable[..., Any]) -> dict | None:
    stripped = text.strip()
    if stripped == "[DONE]" or stripped.startswith(_SSE_PREFIXES) or "\ndata:" in text:
        add(WS_NO_SSE_FRAMING, f"SSE framing in a WebSocket frame: {short(stripped, 80)}")
        payload = "\n".join(line[5:].strip() for line in stripped.splitlines() if line.startswith("data:"))
        if payload and payload != "[DONE]":
            try:
                event = _loads(payload)
            except Exception:
                return None
            if type(event) is dict:
                return event
        return None
    add(WS_TEXT_JSON_FRAMES, f"frame is not JSON: {short(text, 80)}")
    return None


class SchemaDispatch:
    """The schema set of one connection: validity, issues, and what each type is.

    ``schemas`` is duck-typed (``is_valid``, ``validate``, ``is_known``; optional ``direction``
    and ``schema``); ``None`` loads ``conformance.schemas.get_schemas()`` on first use (off,
    with a note, if it cannot be imported); ``False`` or ``PERMISSIVE``: grammar only."""

    def __init__(self, schemas: Any, notes: list, internal_errors: list, tolerated: frozenset = frozenset()) -> None:
        self._arg = schemas
        self._tolerated = tolerated  # (type, pointer) pairs whose schema issues the grammar judges instead
        self.schemas: Any = None
        self.is_valid: Callable[[Any], bool] | None = None
        self._notes = notes
        self._internal_errors = internal_errors
        self._ext_seen: set = set()  # extension types and (type, field) pairs already reported

    def resolve(self) -> Callable[[Any], bool]:
        schemas = self._arg
        if schemas is None:
            try:
                from conformance.schemas import get_schemas

                schemas = get_schemas()
            except Exception as exc:
                self._notes.append(f"schema checks off: conformance.schemas unavailable ({exc!r})")
                schemas = PERMISSIVE
        elif schemas is False:
            schemas = PERMISSIVE
        self.schemas = schemas
        self.is_valid = schemas.is_valid
        return schemas.is_valid

    def checker(self, typ: str) -> Callable[[Any], bool] | None:
        """The schema check of an event (a dict with this string ``type``); None: every such
        event is valid. The schema set's own per-type check where it has one (``checker``),
        which skips ``is_valid``'s lookup of the type on every frame."""
        per_type = getattr(self.schemas, "checker", None)
        if per_type is None:
            return self.is_valid
        try:
            return per_type(typ)
        except Exception:
            return self.is_valid

    def classify(self, typ: str, has_rule: bool) -> tuple[str, frozenset | None]:
        """``(GRAMMAR | GENERIC | EXTENSION_TYPE, known top-level fields or None)``: GENERIC is a
        server type the schemas know and the grammar has no rule for."""
        schemas = self.schemas
        role = GRAMMAR
        known_type = typ in KNOWN_EVENT_TYPES
        if not has_rule:
            schema_known = False
            if typ not in WILD_EXTENSIONS:
                try:
                    schema_known = bool(schemas.is_known(typ))
                    direction = getattr(schemas, "direction", None)
                    if schema_known and direction is not None and direction(typ) == "client":
                        schema_known = False
                except Exception:
                    schema_known = False
            role = GENERIC if schema_known else EXTENSION_TYPE
            known_type = schema_known
        known: frozenset | None = None
        if known_type:
            get_schema = getattr(schemas, "schema", None)
            if get_schema is not None:
                try:
                    props = get_schema(typ).get("properties")
                    if isinstance(props, dict) and props:
                        known = frozenset(props)
                except Exception:
                    known = None
        return role, known

    def issues(self, event: dict, typ: str, add: Callable[..., Any], dedupe: dict) -> None:
        """Schema findings of an invalid event; ``dedupe[id(finding)]`` gets the key under which
        an issue is reported once per request (see ``StreamMonitor``)."""
        if typ == "error":
            if not isinstance(event.get("error"), dict) and "code" in event:
                return  # the legacy flat shape: reported once, as ERR-CODE-NESTED
            clause = ERR_ENVELOPE
        else:
            clause = SCHEMA_SERVER_EVENT
        try:
            found = list(self.schemas.validate(event))
        except Exception as exc:
            found = []
            self._internal_errors.append(f"schema validate: {exc!r}")
        if self._tolerated and found:
            found = [iss for iss in found if (typ, getattr(iss, "pointer", None)) not in self._tolerated]
            if not found:
                return
        elif not found:
            add(clause, f"{typ}: rejected by the schema")
            return
        for iss in found[:MAX_SCHEMA_ISSUES]:
            pointer = getattr(iss, "pointer", None)
            rule = getattr(iss, "rule", "?")
            msg = getattr(iss, "message", str(iss))
            finding = add(clause, f"{typ}: {pointer or '(root)'}: {msg} [{rule}]", pointer=pointer)
            dedupe[id(finding)] = ("schema", pointer, rule)  # one missing field: one finding per response
        if len(found) > MAX_SCHEMA_ISSUES:
            add(clause, f"{typ}: {len(found) - MAX_SCHEMA_ISSUES} more schema issues")

    def unknown_fields(self, event: dict, typ: str, known: frozenset, add: Callable[..., Any]) -> None:
        """Top-level fields outside the schema: an extension, once per type and field."""
        for key in event:
            if key not in known and (typ, key) not in self._ext_seen:
                self._ext_seen.add((typ, key))
                add(EXT_UNKNOWN_TOLERATED, f"unknown field {short(key)} on {typ}", kind=EXTENSION,
                    pointer="/" + str(key).replace("~", "~0").replace("/", "~1"))

    def unknown_type(self, typ: str, add: Callable[..., Any]) -> None:
        """An unknown event type: an extension, once per type."""
        if typ not in self._ext_seen:
            self._ext_seen.add(typ)
            add(EXT_UNKNOWN_TOLERATED, f"unknown event type {short(typ)}", kind=EXTENSION, pointer="/type")
