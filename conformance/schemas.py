"""Schema validation of Responses WebSocket events.

Implements the event shapes of docs/spec.md: §2 (client events ``response.create``,
``response.steer``, beta ``response.inject``), §3.1-§3.4 (every server event type: the shared
streaming events and the WebSocket-only ones), §3.6 (Response object), §3.7 (usage), §3.8
(output items, content parts, annotations) and §3.10 (the WebSocket ``error`` event). The
shapes themselves live in ``schemas/`` (JSON Schema draft 2020-12); this module only loads
them, through ``schemas/index.json``, into one registry and validates against them.

Two validators per schema:

* the fast path (``is_valid``) uses a compiled ``jsonschema_rs`` validator chosen by a dict
  lookup on the event's ``type``; it is cheap enough to run on every frame;
* the precise path (pure-Python ``jsonschema`` + ``referencing``) runs only when an instance
  has already failed, and turns each error into a :class:`SchemaIssue` with the JSON pointer
  of the failing field and the keyword it broke.

Extension tolerance (spec §3.1): unknown fields are allowed everywhere, and an event whose
``type`` has no schema is an extension, which counts as valid (the caller reports it). A
message that is not an object, or has no string ``type``, is invalid.

Profile variants (docs/spec.md §5.1): a profile that claims P-open is checked against
``schemas/p-open/index.json`` (``schemas_for``), the OpenAI shapes plus what the published
Open Responses schema requires; every other profile against ``schemas/index.json``.

``schemas/`` is found next to the package (``<repo>/schemas``), or in the packaged copy
``conformance/_schemas``, unless the environment variable ``RESPONSES_WS_SCHEMAS_DIR``
names another directory.
"""
from __future__ import annotations

import json
import os
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

__all__ = ["ENV_VAR", "P_OPEN", "SchemaIssue", "SchemaSet", "get_schemas", "schemas_dir", "schemas_for"]

ENV_VAR = "RESPONSES_WS_SCHEMAS_DIR"
_ENVELOPE_DEF = "event"
P_OPEN = "P-open"
# spec profile -> the directory (under schemas/) of its schema set; others use schemas/ itself
VARIANT_DIRS = {P_OPEN: "p-open"}
_MAX_MESSAGE = 240
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxdict = _short.maxlist = 4


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One schema violation: where (JSON pointer into the instance), which keyword, and why."""

    pointer: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '(root)'}: {self.message} [{self.rule}]"


def schemas_dir() -> Path:
    """The directory holding ``index.json``: ``$RESPONSES_WS_SCHEMAS_DIR`` or the repo's ``schemas/``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schemas", here / "_schemas"):
        if (candidate / "index.json").is_file():
            return candidate
    return here.parent / "schemas"


def _no_fetch(uri: str) -> Any:
    raise ValueError(f"{uri} is not one of the schemas listed in index.json (no network fetches)")


class SchemaSet:
    """All schemas of ``schemas/``, compiled once. Read-only after construction."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        index = json.loads((self.root / "index.json").read_text(encoding="utf-8"))
        self.version: int = index["version"]
        self.variant: str | None = index.get("variant")  # None: the OpenAI shapes
        self._resources: dict[str, dict] = {}
        self._events: dict[str, tuple[str, str, str]] = {}  # type -> (direction, surface, uri)
        self._defs: dict[str, str] = {}  # name -> uri

        def load(rel: str) -> str:
            contents = json.loads((self.root / rel).read_text(encoding="utf-8"))
            uri = contents.get("$id")
            if not uri:
                raise ValueError(f"schemas/{rel} has no $id")
            self._resources[uri] = contents
            return uri

        for name, rel in index["defs"].items():
            self._defs[name] = load(rel)
        for event_type, entry in index["events"].items():
            uri = load(entry["schema"])
            self._events[event_type] = (entry["direction"], entry.get("surface", "shared"), uri)
        if _ENVELOPE_DEF not in self._defs:
            raise ValueError("index.json must list the 'event' definition (the envelope of every event)")

        registry = jsonschema_rs.Registry(list(self._resources.items()), retriever=_no_fetch)

        def compile_(uri: str):
            return jsonschema_rs.validator_for(self._resources[uri], registry=registry).is_valid

        # Hot path: one bound is_valid per event type, looked up by `type`.
        self._fast: dict[str, Any] = {t: compile_(uri) for t, (_, _, uri) in self._events.items()}
        self._def_fast: dict[str, Any] = {name: compile_(uri) for name, uri in self._defs.items()}
        self._envelope_uri = self._defs[_ENVELOPE_DEF]
        self._slow_registry = None
        self._slow: dict[str, Any] = {}

    # -- catalogue -----------------------------------------------------------------------

    def is_known(self, event_type: str) -> bool:
        return event_type in self._events

    def direction(self, event_type: str) -> str | None:
        entry = self._events.get(event_type)
        return entry[0] if entry else None

    def surface(self, event_type: str) -> str | None:
        """``shared``, ``websocket`` or ``beta``; None for an unknown type."""
        entry = self._events.get(event_type)
        return entry[1] if entry else None

    def event_types(self, direction: str | None = None) -> list[str]:
        return sorted(t for t, (d, _, _) in self._events.items() if direction is None or d == direction)

    def def_names(self) -> list[str]:
        return sorted(self._defs)

    def schema(self, event_type: str) -> dict:
        """The loaded schema document of an event type (shared; do not mutate)."""
        return self._resources[self._events[event_type][2]]

    # -- validation ----------------------------------------------------------------------

    def is_valid(self, event: Any) -> bool:
        """Fast yes/no. An unknown ``type`` is an extension and counts as valid."""
        try:
            check = self._fast.get(event["type"])
        except (TypeError, KeyError, IndexError):
            return False
        if check is None:
            return isinstance(event, dict) and isinstance(event["type"], str)
        return check(event)

    def checker(self, event_type: str) -> Any:
        """``is_valid`` for events (dicts) of this ``type``: the compiled check, or None for
        an extension type (always valid). The monitor resolves it once per type."""
        return self._fast.get(event_type)

    def validate(self, event: Any) -> list[SchemaIssue]:
        """Issues of one event; ``[]`` when valid or of an unknown (extension) type."""
        if self.is_valid(event):
            return []
        return self._precise(self._uri_for(event), event)

    def validate_def(self, name: str, instance: Any) -> list[SchemaIssue]:
        """Issues of an instance of a shared definition, e.g. ``response`` or ``ws-error``."""
        try:
            check = self._def_fast[name]
        except KeyError:
            raise KeyError(f"no definition {name!r} in index.json (known: {', '.join(self.def_names())})") from None
        if check(instance):
            return []
        return self._precise(self._defs[name], instance)

    # -- precise (slow) path -------------------------------------------------------------

    def _uri_for(self, event: Any) -> str:
        if isinstance(event, dict):
            event_type = event.get("type")
            if isinstance(event_type, str) and event_type in self._events:
                return self._events[event_type][2]
        return self._envelope_uri

    def _precise_validator(self, uri: str):
        validator = self._slow.get(uri)
        if validator is None:
            import jsonschema  # imported here: only failing instances pay for it
            from referencing import Registry
            from referencing.jsonschema import DRAFT202012

            if self._slow_registry is None:
                self._slow_registry = Registry().with_resources(
                    (u, DRAFT202012.create_resource(c)) for u, c in self._resources.items()
                )
            validator = jsonschema.Draft202012Validator(self._resources[uri], registry=self._slow_registry)
            self._slow[uri] = validator
        return validator

    def _precise(self, uri: str, instance: Any) -> list[SchemaIssue]:
        issues = {_issue(err): None for err in self._precise_validator(uri).iter_errors(instance)}
        if not issues:
            # The two validators disagree; say so rather than calling the instance valid.
            return [SchemaIssue("", "schema", "rejected by the compiled validator, but the precise validator found no error")]
        return sorted(issues, key=lambda i: (i.pointer, i.rule, i.message))


def _escape(token: Any) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _issue(err) -> SchemaIssue:
    pointer = "".join("/" + _escape(p) for p in err.absolute_path)
    rule = err.validator if isinstance(err.validator, str) else "false"
    message = err.message
    if rule == "required" and isinstance(err.instance, dict):
        missing = [p for p in err.validator_value if p not in err.instance]
        name = next((p for p in missing if repr(p) in message), missing[0] if missing else None)
        if name is not None:
            pointer += "/" + _escape(name)
            message = f"required property {name!r} is missing"
    elif rule == "type":
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        message = f"{_short.repr(err.instance)} is not of type {' or '.join(map(repr, wanted))}"
    elif rule in ("enum", "const"):
        message = f"{_short.repr(err.instance)} is not {'one of ' if rule == 'enum' else ''}{err.validator_value!r}"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return SchemaIssue(pointer, rule, message)


_CACHE: dict[str | tuple | None, SchemaSet] = {}


def get_schemas(variant: str | None = None) -> SchemaSet:
    """The schema set of ``schemas_dir()`` (or of its ``variant``, e.g. ``"P-open"``), loaded on
    first use and cached (no I/O afterwards)."""
    if variant is not None and variant not in VARIANT_DIRS:
        raise KeyError(f"no schema variant {variant!r} (known: {', '.join(VARIANT_DIRS)})")
    env = os.environ.get(ENV_VAR)
    key = env if variant is None else (env, variant)
    schema_set = _CACHE.get(key)
    if schema_set is None:
        root = schemas_dir()
        schema_set = _CACHE[key] = SchemaSet(root / VARIANT_DIRS[variant] if variant else root)
    return schema_set


def schemas_for(profile: Any) -> SchemaSet:
    """The schema set a profile's claims select: P-open's when it claims P-open, else OpenAI's."""
    claims = getattr(profile, "spec_profiles", None) or ()
    return get_schemas(P_OPEN if P_OPEN in claims else None)
