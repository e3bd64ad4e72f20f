"""Streaming monitor for Responses WebSocket server frames (sans-I/O).

Implements the per-frame checks of spec/websocket-mode.md:

* §1.4 and §4.1 item 3 (framing): every server message is one text frame holding one JSON
  object with a string ``type`` (``WS-TEXT-JSON-FRAMES``), without SSE framing or a
  ``[DONE]`` sentinel (``WS-NO-SSE-FRAMING``);
* §3 (event shapes), through the injected schema set: ``SCHEMA-SERVER-EVENT``; for the
  ``error`` event (§3.10, §4.10) ``ERR-ENVELOPE``, and ``ERR-CODE-NESTED`` for the legacy flat
  shape (top-level ``code``, no ``error`` object);
* §4.3 (event grammar of one response), one clause id per rule: ``STREAM-CREATED-FIRST``,
  ``STREAM-IN-PROGRESS-FOLLOWS``, ``STREAM-ITEM-LIFECYCLE``, ``STREAM-INDEXES-IN-ORDER``,
  ``STREAM-ANNOUNCED-ITEM``, ``STREAM-DELTAS-ADD-UP``, ``STREAM-DONE-MATCHES-OUTPUT``,
  ``STREAM-ONE-TERMINAL``, ``STREAM-TERMINAL-LAST``, ``STREAM-TERMINAL-RESPONSE``,
  ``STREAM-INCOMPLETE-ITEM-LAST``, ``SEQ-PRESENT``, ``SEQ-MONOTONIC``, ``SEQ-FROM-ZERO-BY-ONE``,
  ``LANE-DEFAULT-UNTAGGED``, ``LANE-TAGGED``;
* §4.4 item 19/20 (``QUEUE-ONE-IN-FLIGHT``: two responses of one lane never overlap) and §3.6
  (``PREVIOUS-ID-ECHOED``);
* §3.1/§3.4 (extensions): unknown event types and unknown top-level fields are reported once
  per connection as ``Finding(kind="extension", clause="EXT-UNKNOWN-TOLERATED")``, never as
  violations. ``response.done``, ``codex.rate_limits`` and ``response.interrupt.accepted``
  (seen in the wild, §3.4) are always extensions; ``response.done`` is not a terminal event.

It does no I/O and knows nothing of pytest or asyncio: the harness calls ``sent(event)`` for
every client message and ``feed(frame)`` for every received frame, and reads findings. It
never raises on input (internal errors are recorded in ``internal_errors``).

API (docs/interfaces.md, "conformance/monitor.py"):

* ``StreamMonitor(schemas=None)``: ``schemas`` is duck-typed (``is_valid(event) -> bool``,
  ``validate(event) -> list[SchemaIssue]``, ``is_known(type) -> bool``; optional
  ``direction(type)`` and ``schema(type)``). ``None`` loads ``conformance.schemas.get_schemas()``
  on first use (no schema checks if it cannot be imported; a note says so); ``False`` or
  ``PERMISSIVE`` switches schema checks off (grammar only).
* ``sent(event) -> int | None``, ``feed(data, t=None) -> Observed``, ``finish() -> list``,
  ``requests``, ``findings``, ``connection_errors``, ``notes``, ``internal_errors``.

Attribution rules (how a frame is tied to a request)
----------------------------------------------------

A *lane* is the create's ``stream_id`` (absent = the default lane). Creates wait in a FIFO
per lane until answered.

1. ``response.created`` / ``response.queued`` carry a response id. An id already seen names
   its request. Otherwise the event answers, in this order: a response of the event's lane
   that an earlier event started implicitly, before any id was known (rules 2 and 3); the
   lane's steered response's automatic successor when its ``previous_response_id`` is the
   steered id (§4.9 item 47) and the oldest pending create does not continue that id; the
   oldest pending create of the event's lane; a steer successor expected on the lane; the
   oldest pending create of any lane (the server mis-tagged the lane; the lane clause reports
   it). A ``response.created`` that answers nothing opens an "unsolicited" request so that its
   stream is still checked (noted); a ``response.queued`` that answers nothing is unattributed.
2. Terminal and ``response.in_progress`` events are matched by response id; an unknown id
   goes to the lane's (newest) streaming response (then ``STREAM-TERMINAL-RESPONSE`` reports
   the id), else to the connection's only streaming response, else it starts the oldest
   pending create (``STREAM-CREATED-FIRST``); with none of these it is unattributed
   (``STREAM-CREATED-FIRST``, once per event type).
3. Item, part and delta events carry no response id: they belong to the streaming response
   of the lane named by their ``stream_id``. When the lane has none or several, the
   ``item_id`` announced by ``output_item.added`` names the response (also across lanes); an
   event whose item belongs to a finished response is ``STREAM-TERMINAL-LAST``. Failing that:
   among several streaming responses of the lane the one whose next ``sequence_number`` it
   carries (else the newest); the lane's oldest pending create, started implicitly
   (``STREAM-CREATED-FIRST``); the connection's only streaming response; the lane's last
   finished response (``STREAM-TERMINAL-LAST``); the oldest pending create of any lane; else
   unattributed (``STREAM-CREATED-FIRST``, once per event type).
4. An ``error`` event: when its lane has a streaming response and the error has a
   ``sequence_number`` (or no create is pending on the lane and no client event other than a
   create awaits an answer), it is a mid-stream error of that response; so is an error without
   ``stream_id`` but with a ``sequence_number`` while exactly one response of the connection
   streams. A mid-stream error is recorded in ``RequestState.error`` and ends the request
   (state ``done``, ``terminal_type`` None); a ``response.failed``/``.incomplete``/``.completed``
   of the same response that follows it is accepted as its terminal event without a finding,
   other events of it are ``STREAM-TERMINAL-LAST``. Otherwise it answers the oldest pending
   create of its lane (state ``rejected``, ``terminal_type`` None), or, when its lane has none,
   the oldest pending create of any lane (a mismatched tag is then a lane finding). An
   untagged rejection of a named-lane create is not a ``LANE-TAGGED`` violation when the
   create's ``stream_id`` is itself invalid or the code is
   ``websocket_connection_limit_reached`` (spec §6 question 17). An error that answers no
   create (nothing pending, or a reply to a client event that was not a create, such as a
   malformed frame or a steer) is connection-level: ``connection_errors``.
5. ``response.steer.*`` and ``response.inject.*`` events belong to the response they name
   (else to the lane's only streaming response; else they are unattributed) and share its
   ``sequence_number`` numbering (§3.5); they may follow its terminal event
   (``steer.pending`` does, §4.9 item 48), so they are never ``STREAM-TERMINAL-LAST``.
6. Extension events are attributed (for ``Observed.request``) to the lane's streaming
   response when there is exactly one, take part in its sequence numbering when they carry an
   integer ``sequence_number``, and never change any state.

Grammar decisions worth knowing

* ``sequence_number`` restarts per response: the first event of a response (``queued`` or
  ``created``) should be 0 and every following event +1 (SHOULD, ``SEQ-FROM-ZERO-BY-ONE``);
  strictly increasing is the MUST (``SEQ-MONOTONIC``). Sequence findings are reported once per
  response and defect (a first number other than 0 and a jump are both
  ``SEQ-FROM-ZERO-BY-ONE``, so that clause can appear twice); lane findings once per response.
* ``STREAM-IN-PROGRESS-FOLLOWS``: the first event after ``response.created`` must be
  ``response.in_progress``, unless it is the terminal event of a response without output (a
  ``generate:false`` warm-up).
* ``STREAM-DONE-MATCHES-OUTPUT`` compares each ``.done`` value with the ``content_part.done``
  / ``reasoning_summary_part.done`` part, the ``output_item.done`` item and the terminal
  ``response.output`` item with the same id (by position when the item has no id); the
  terminal comparison is made for ``completed`` and ``incomplete`` responses (a failed
  response may drop partial output). An empty terminal output after streamed items is
  reported (spec §4.3 item 14; the Codex-backend exception is not granted).
* Items still open at ``response.completed`` are ``STREAM-ITEM-LIFECYCLE``; at ``failed`` or
  ``incomplete`` they are tolerated.
* ``finish()`` reports ``STREAM-ONE-TERMINAL`` for every response that started and has no
  terminal event. Creates never answered get no finding here (the harness judges timeouts).
* Automatic steer successors get a request number of their own (``origin="steer"``), so the
  numbers returned by ``sent`` may skip values after a steer.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "Finding",
    "Observed",
    "RequestState",
    "StreamMonitor",
    "PermissiveSchemas",
    "PERMISSIVE",
    "KNOWN_EVENT_TYPES",
    "WILD_EXTENSIONS",
]

VIOLATION = "violation"
EXTENSION = "extension"

PENDING, STREAMING, DONE, REJECTED = "pending", "streaming", "done", "rejected"

_loads = json.loads


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
    """What ``feed`` made of one frame."""

    index: int
    message: dict | None
    request: int | None
    findings: list
    t: float | None = None


@dataclass(eq=False)
class RequestState:
    """One request (a ``response.create``, or a steer's automatic successor) and its outcome."""

    index: int
    create: dict
    lane: str | None
    events: list = field(default_factory=list)
    response_id: str | None = None
    response: dict | None = None
    error: dict | None = None
    state: str = PENDING
    terminal_type: str | None = None
    findings: list = field(default_factory=list)
    origin: str = "create"  # "create" | "steer" (automatic successor) | "unsolicited"
    created: dict | None = None  # the response object of response.created
    g: Any = field(default_factory=lambda: _Grammar(), repr=False)  # grammar state


class PermissiveSchemas:
    """A schema set that accepts everything: grammar-only monitoring."""

    def is_valid(self, event: Any) -> bool:
        return True

    def validate(self, event: Any) -> list:
        return []

    def is_known(self, event_type: str) -> bool:
        return event_type in KNOWN_EVENT_TYPES


PERMISSIVE = PermissiveSchemas()

# --------------------------------------------------------------------------------------
# Event tables (the types the grammar understands; shapes live in schemas/)

_LIFECYCLE_START = ("response.queued", "response.created")
_TERMINAL_STATUS = {
    "response.completed": "completed",
    "response.failed": "failed",
    "response.incomplete": "incomplete",
}

# delta family base -> (field of the .done event, index field or None, container)
#   container "part": content part (content_part.added/done), value at item.content[i][field]
#   container "summary": reasoning summary part, value at item.summary[i].text
#   container None: item-level value at item[field]
_FAMILIES: dict[str, tuple[str, str | None, str | None]] = {
    "response.output_text": ("text", "content_index", "part"),
    "response.refusal": ("refusal", "content_index", "part"),
    "response.reasoning_text": ("text", "content_index", "part"),
    "response.reasoning_summary_text": ("text", "summary_index", "summary"),
    "response.function_call_arguments": ("arguments", None, None),
    "response.custom_tool_call_input": ("input", None, None),
    "response.code_interpreter_call_code": ("code", None, None),
    "response.mcp_call_arguments": ("arguments", None, None),
}
# delta/done event type -> (family base, field, index field, container)
_DELTA_INFO = {base + ".delta": (base, *spec) for base, spec in _FAMILIES.items()}
_DONE_INFO = {base + ".done": (base, *spec) for base, spec in _FAMILIES.items()}
# content part type -> (family base, field)
_PART_FAMILY = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
    "reasoning_text": ("response.reasoning_text", "text"),
}

_ITEM_EVENTS = (
    "response.output_text.annotation.added",
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.file_search_call.completed",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.generating",
    "response.image_generation_call.partial_image",
    "response.image_generation_call.completed",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "response.mcp_list_tools.in_progress",
    "response.mcp_list_tools.completed",
    "response.mcp_list_tools.failed",
    "response.shell_call_output_content.delta",
    "response.shell_call_output_content.done",
    "response.compaction.compacting",
)
_INDEX_EVENTS = (
    "response.shell_call_command.added",
    "response.shell_call_command.delta",
    "response.shell_call_command.done",
)
_PLAIN_EVENTS = (
    "response.audio.delta",
    "response.audio.done",
    "response.audio.transcript.delta",
    "response.audio.transcript.done",
)
_STEER_EVENTS = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")
_INJECT_EVENTS = ("response.inject.created", "response.inject.failed")

WILD_EXTENSIONS = frozenset({"response.done", "codex.rate_limits", "response.interrupt.accepted"})

KNOWN_EVENT_TYPES = frozenset(
    (
        "error",
        *_LIFECYCLE_START,
        "response.in_progress",
        *_TERMINAL_STATUS,
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        *(base + ".delta" for base in _FAMILIES),
        *(base + ".done" for base in _FAMILIES),
        *_ITEM_EVENTS,
        *_INDEX_EVENTS,
        *_PLAIN_EVENTS,
        *_STEER_EVENTS,
        *_INJECT_EVENTS,
    )
)

# part states (content parts and summary parts)
_P_OPEN, _P_DELTAS, _P_TEXT_DONE, _P_CLOSED = 1, 2, 3, 4

_CONNECTION_LEVEL_CODES = frozenset({"websocket_connection_limit_reached"})
_SSE_PREFIXES = ("event:", "data:", "id:", "retry:", ":")
_MAX_SCHEMA_ISSUES = 8


def _valid_lane_name(sid: Any) -> bool:
    if type(sid) is not str or not 1 <= len(sid) <= 256:
        return False
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in sid)


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - repr of plain JSON data does not fail
        text = "<unrepresentable>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Item:
    __slots__ = ("id", "oi", "done", "parts", "next_part", "summ", "next_summ", "acc", "vals")

    def __init__(self, iid: str | None, oi: Any) -> None:
        self.id = iid
        self.oi = oi
        self.done = False
        self.parts: dict = {}
        self.next_part = 0
        self.summ: dict = {}
        self.next_summ = 0
        self.acc: dict = {}  # (family, index) -> list of deltas
        self.vals: dict = {}  # (family, index) -> .done value


class _Grammar:
    __slots__ = ("seq", "ip", "items", "by_oi", "order", "incomplete_item", "once", "queued")

    def __init__(self) -> None:
        self.seq: int | None = None  # highest sequence_number seen
        self.ip = 1  # 0 = the next event must be response.in_progress
        self.items: dict = {}  # item id -> _Item
        self.by_oi: dict = {}  # output_index (as sent) -> _Item
        self.order: list = []  # items in order of output_item.added
        self.incomplete_item: _Item | None = None
        self.once: set = set()  # dedupe keys of findings reported once per response
        self.queued = False


class _Lane:
    __slots__ = ("pending", "streaming", "last", "steered")

    def __init__(self) -> None:
        self.pending: deque = deque()
        self.streaming: list = []
        self.last: RequestState | None = None
        self.steered: list = []  # responses with an accepted steer whose successor is expected


class StreamMonitor:
    """Checks the frames of one WebSocket connection; see the module docstring."""

    def __init__(self, schemas: Any = None) -> None:
        self._schemas_arg = schemas
        self._schemas: Any = None
        self._is_valid: Callable[[Any], bool] | None = None
        self.requests: list[RequestState] = []
        self.findings: list[Finding] = []
        self.connection_errors: list[dict] = []
        self.notes: list[str] = []
        self.internal_errors: list[str] = []
        self.unattributed: list[dict] = []
        self._count = 0
        self._lanes: dict[Any, _Lane] = {None: _Lane()}
        self._by_id: dict[str, RequestState] = {}
        self._item_owner: dict[str, RequestState] = {}
        self._ext_seen: set = set()
        self._once: set = set()
        self._steers_sent: list[dict] = []
        self._unanswered_other = 0
        self._finished = False
        self._obs: Observed | None = None
        self._loose: list[Finding] = []
        self._dedupe_keys: dict[int, tuple] = {}  # id(finding) -> once-key, for loose findings
        # type -> (handler, known top-level fields or None); filled lazily per type
        self._dispatch: dict[str, tuple[Callable[[dict, str], None], frozenset | None]] = {}
        self._static: dict[str, Callable[[dict, str], None]] = self._handler_table()

    # ----------------------------------------------------------------------------------
    # public API

    def sent(self, event: Any) -> int | None:
        """The client sent ``event``; returns the request number of a ``response.create``."""
        try:
            if type(event) is dict and event.get("type") == "response.create":
                sid = event.get("stream_id")
                lane = sid if type(sid) is str else None
                rs = RequestState(len(self.requests), event, lane)
                self.requests.append(rs)
                self._lane(lane).pending.append(rs)
                return rs.index
            if type(event) is dict and event.get("type") == "response.steer":
                self._steers_sent.append(event)
            self._unanswered_other += 1
        except Exception as exc:  # pragma: no cover - defensive; never raise on input
            self.internal_errors.append(f"sent: {exc!r}")
        return None

    def feed(self, data: str | bytes, t: float | None = None) -> Observed:
        """One received frame; returns what the monitor made of it. Never raises."""
        idx = self._count
        self._count = idx + 1
        obs = Observed(idx, None, None, [], t)
        self._obs = obs
        try:
            if type(data) is str:
                text = data
            else:
                text = self._binary(data)
                if text is None:
                    return obs
            try:
                ev = _loads(text)
            except Exception:
                ev = self._not_json(text)
                if ev is None:
                    return obs
            if type(ev) is not dict:
                if ev == "[DONE]":
                    self._add("WS-NO-SSE-FRAMING", "frame is a [DONE] sentinel")
                else:
                    self._add("WS-TEXT-JSON-FRAMES", f"frame is JSON but not an object: {_short(ev)}")
                return obs
            typ = ev.get("type")
            if type(typ) is not str:
                self._add("WS-TEXT-JSON-FRAMES", f"event has no string 'type': {_short(typ)}", pointer="/type")
                return obs
            obs.message = ev
            is_valid = self._is_valid
            if is_valid is None:
                is_valid = self._resolve_schemas()
            if not is_valid(ev):
                self._schema_findings(ev, typ)
            entry = self._dispatch.get(typ)
            if entry is None:
                entry = self._resolve_type(typ)
            handler, known = entry
            if known is not None and not known.issuperset(ev):
                self._unknown_fields(ev, typ, known)
            handler(ev, typ)
        except Exception as exc:  # the monitor never raises on input
            self.internal_errors.append(f"frame {idx}: {type(exc).__name__}: {exc}")
        finally:
            if self._loose:
                self._settle_loose(obs)
        return obs

    def finish(self) -> list[Finding]:
        """The stream is over: responses that started and never ended get their findings."""
        if self._finished:
            return []
        self._finished = True
        self._obs = None
        out: list[Finding] = []
        for rs in self.requests:
            if rs.state == STREAMING:
                out.append(self._add("STREAM-ONE-TERMINAL",
                                     "the stream ended without a terminal event for this response", rs))
        return out

    # ----------------------------------------------------------------------------------
    # setup

    def _handler_table(self) -> dict[str, Callable[[dict, str], None]]:
        t: dict[str, Callable[[dict, str], None]] = {
            "error": self._h_error,
            "response.queued": self._h_queued,
            "response.created": self._h_created,
            "response.in_progress": self._h_in_progress,
            "response.output_item.added": self._h_item_added,
            "response.output_item.done": self._h_item_done,
            "response.content_part.added": self._h_part_added,
            "response.content_part.done": self._h_part_done,
            "response.reasoning_summary_part.added": self._h_part_added,
            "response.reasoning_summary_part.done": self._h_part_done,
        }
        for typ in _TERMINAL_STATUS:
            t[typ] = self._h_terminal
        for base in _FAMILIES:
            t[base + ".delta"] = self._h_delta
            t[base + ".done"] = self._h_text_done
        for typ in _ITEM_EVENTS:
            t[typ] = self._h_item_event
        for typ in _INDEX_EVENTS:
            t[typ] = self._h_index_event
        for typ in _PLAIN_EVENTS:
            t[typ] = self._h_plain
        for typ in _STEER_EVENTS:
            t[typ] = self._h_steer
        for typ in _INJECT_EVENTS:
            t[typ] = self._h_inject
        return t

    def _resolve_schemas(self) -> Callable[[Any], bool]:
        s = self._schemas_arg
        if s is None:
            try:
                from conformance.schemas import get_schemas

                s = get_schemas()
            except Exception as exc:
                self.notes.append(f"schema checks off: conformance.schemas unavailable ({exc!r})")
                s = PERMISSIVE
        elif s is False:
            s = PERMISSIVE
        self._schemas = s
        self._is_valid = s.is_valid
        return self._is_valid

    def _resolve_type(self, typ: str) -> tuple[Callable[[dict, str], None], frozenset | None]:
        s = self._schemas
        handler = self._static.get(typ)
        known_type = typ in KNOWN_EVENT_TYPES
        if handler is None:
            schema_known = False
            if typ not in WILD_EXTENSIONS:
                try:
                    schema_known = bool(s.is_known(typ))
                    direction = getattr(s, "direction", None)
                    if schema_known and direction is not None and direction(typ) == "client":
                        schema_known = False
                except Exception:
                    schema_known = False
            handler = self._h_generic if schema_known else self._h_extension
            known_type = schema_known
        known: frozenset | None = None
        if known_type:
            get_schema = getattr(s, "schema", None)
            if get_schema is not None:
                try:
                    props = get_schema(typ).get("properties")
                    if isinstance(props, dict) and props:
                        known = frozenset(props)
                except Exception:
                    known = None
        entry = (handler, known)
        self._dispatch[typ] = entry
        return entry

    # ----------------------------------------------------------------------------------
    # findings

    def _add(self, clause: str, message: str, rs: RequestState | None = None, kind: str = VIOLATION,
             pointer: str | None = None) -> Finding:
        obs = self._obs
        f = Finding(clause, message, kind, obs.index if obs is not None else None,
                    rs.response_id if rs is not None else None, pointer)
        self.findings.append(f)
        if obs is not None:
            obs.findings.append(f)
        if rs is not None:
            rs.findings.append(f)
        elif obs is not None:
            self._loose.append(f)
        return f

    def _once_add(self, rs: RequestState, key: Any, clause: str, message: str) -> None:
        once = rs.g.once
        k = (clause, key)
        if k not in once:
            once.add(k)
            self._add(clause, message, rs)

    def _settle_loose(self, obs: Observed) -> None:
        """Findings made before the frame was attributed (framing, schema) join its request.

        A schema issue (same event type, pointer and rule) is reported once per request, or
        once per connection for frames of no request, to keep reports small."""
        loose, self._loose = self._loose, []
        rs = self.requests[obs.request] if obs.request is not None else None
        once = rs.g.once if rs is not None else self._once
        for f in loose:
            key = self._dedupe_keys.pop(id(f), None)
            if key is not None:
                if key in once:
                    self._drop(obs, f)
                    continue
                once.add(key)
            if rs is not None:
                if f.response_id is None:
                    f.response_id = rs.response_id
                rs.findings.append(f)
        self._dedupe_keys.clear()

    def _drop(self, obs: Observed, f: Finding) -> None:
        for lst in (obs.findings, self.findings):
            for i in range(len(lst) - 1, -1, -1):
                if lst[i] is f:
                    del lst[i]
                    break

    def _schema_findings(self, ev: dict, typ: str) -> None:
        if typ == "error":
            if not isinstance(ev.get("error"), dict) and "code" in ev:
                return  # the legacy flat shape: reported once, as ERR-CODE-NESTED
            clause = "ERR-ENVELOPE"
        else:
            clause = "SCHEMA-SERVER-EVENT"
        try:
            issues = list(self._schemas.validate(ev))
        except Exception as exc:
            issues = []
            self.internal_errors.append(f"schema validate: {exc!r}")
        if not issues:
            self._add(clause, f"{typ}: rejected by the schema")
            return
        for iss in issues[:_MAX_SCHEMA_ISSUES]:
            pointer = getattr(iss, "pointer", None)
            rule = getattr(iss, "rule", "?")
            msg = getattr(iss, "message", str(iss))
            f = self._add(clause, f"{typ}: {pointer or '(root)'}: {msg} [{rule}]", pointer=pointer)
            self._dedupe_keys[id(f)] = ("schema", typ, pointer, rule)
        if len(issues) > _MAX_SCHEMA_ISSUES:
            self._add(clause, f"{typ}: {len(issues) - _MAX_SCHEMA_ISSUES} more schema issues")

    def _unknown_fields(self, ev: dict, typ: str, known: frozenset) -> None:
        for key in ev:
            if key not in known and (typ, key) not in self._ext_seen:
                self._ext_seen.add((typ, key))
                self._add("EXT-UNKNOWN-TOLERATED", f"unknown field {_short(key)} on {typ}", kind=EXTENSION,
                          pointer="/" + str(key).replace("~", "~0").replace("/", "~1"))

    # ----------------------------------------------------------------------------------
    # framing

    def _binary(self, data: Any) -> str | None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                self._add("WS-TEXT-JSON-FRAMES", f"binary frame of {len(data)} bytes (not UTF-8 text)")
                return None
            self._add("WS-TEXT-JSON-FRAMES", f"binary frame of {len(data)} bytes (server events are text frames)")
            return text
        self._add("WS-TEXT-JSON-FRAMES", f"frame of type {type(data).__name__}, not text")
        return None

    def _not_json(self, text: str) -> dict | None:
        stripped = text.strip()
        if stripped == "[DONE]" or stripped.startswith(_SSE_PREFIXES) or "\ndata:" in text:
            self._add("WS-NO-SSE-FRAMING", f"SSE framing in a WebSocket frame: {_short(stripped, 80)}")
            payload = "\n".join(
                line[5:].strip() for line in stripped.splitlines() if line.startswith("data:")
            )
            if payload and payload != "[DONE]":
                try:
                    ev = _loads(payload)
                except Exception:
                    return None
                if type(ev) is dict:
                    return ev  # keep attribution in step with the stream
            return None
        self._add("WS-TEXT-JSON-FRAMES", f"frame is not JSON: {_short(text, 80)}")
        return None

    # ----------------------------------------------------------------------------------
    # lanes and attribution

    def _lane(self, key: Any) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        return lane

    @staticmethod
    def _lane_key(ev: dict) -> Any:
        sid = ev.get("stream_id")
        if sid is None or type(sid) is str:
            return sid
        return ("invalid", _short(sid))

    def _take_pending(self, key: Any) -> RequestState | None:
        lane = self._lanes.get(key)
        if lane is not None and lane.pending:
            return lane.pending.popleft()
        best: _Lane | None = None
        for other in self._lanes.values():
            if other.pending and (best is None or other.pending[0].index < best.pending[0].index):
                best = other
        if best is not None:
            return best.pending.popleft()
        return None

    def _begin(self, rs: RequestState, rid: Any, first_type: str) -> None:
        """rs starts streaming (response.created, or an implicit start by another event)."""
        lane = self._lane(rs.lane)
        if rs.state == STREAMING:
            return
        if lane.streaming:
            other = lane.streaming[-1]
            self._add("QUEUE-ONE-IN-FLIGHT",
                      f"response {rid!r} started while {other.response_id!r} (request {other.index}) "
                      f"of the same lane was still streaming", rs)
        rs.state = STREAMING
        lane.streaming.append(rs)
        if type(rid) is str:
            rs.response_id = rid
            self._by_id.setdefault(rid, rs)
        if first_type not in _LIFECYCLE_START and not rs.g.queued:
            self._add("STREAM-CREATED-FIRST",
                      f"first event of the response is {first_type}, not response.created", rs)

    def _implicit(self, ev: dict, typ: str) -> RequestState | None:
        """An event of a response that has not started: take the pending create it answers."""
        rs = self._take_pending(self._lane_key(ev))
        if rs is None:
            return None
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        self._begin(rs, rid, typ)
        return rs

    def _route(self, ev: dict) -> RequestState | None:
        """Attribution of an item/part/delta event (no response id in it)."""
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None:
            s = lane.streaming
            if len(s) == 1:
                return s[0]
        return self._route_slow(ev, lane)

    def _route_slow(self, ev: dict, lane: _Lane | None) -> RequestState | None:
        iid = ev.get("item_id")
        if iid is None and ev["type"] == "response.output_item.done":
            item = ev.get("item")
            iid = item.get("id") if type(item) is dict else None
        if type(iid) is str:
            owner = self._item_owner.get(iid)
            if owner is not None:
                return owner
        if lane is not None and lane.streaming:
            if len(lane.streaming) > 1:  # overlapping responses on one lane: follow the numbering
                seq = ev.get("sequence_number")
                for rs in lane.streaming:
                    if rs.g.seq is not None and rs.g.seq + 1 == seq:
                        return rs
            return lane.streaming[-1]
        if lane is not None and lane.pending:
            return self._implicit(ev, ev["type"])
        rs = self._sole_streaming()
        if rs is not None:
            return rs
        if lane is not None and lane.last is not None:
            return lane.last
        rs = self._implicit(ev, ev["type"])
        if rs is None:
            self._unattributed(ev, f"{ev['type']} outside any response (no response.created before it)")
        return rs

    def _sole_streaming(self) -> RequestState | None:
        """The only streaming response of the connection (any lane); None when there are none or several."""
        streaming = [rs for ln in self._lanes.values() for rs in ln.streaming]
        return streaming[0] if len(streaming) == 1 else None

    def _unattributed(self, ev: dict, message: str) -> None:
        """An event that belongs to no request; STREAM-CREATED-FIRST once per connection and type."""
        self.unattributed.append(ev)
        key = ("unattributed", ev["type"])
        if key not in self._once:
            self._once.add(key)
            self._add("STREAM-CREATED-FIRST", message)

    def _misrouted(self, rs: RequestState, ev: dict, iid: Any) -> bool:
        """An item event whose item belongs to another, finished response: terminal-last."""
        if type(iid) is not str:
            return False
        owner = self._item_owner.get(iid)
        if owner is None or owner is rs or owner.state == STREAMING:
            return False
        self._after_end(owner, ev)
        return True

    def _lane_check(self, rs: RequestState, ev: dict) -> None:
        sid = ev.get("stream_id")
        if sid == rs.lane:
            return
        if rs.lane is None:
            self._once_add(rs, "lane", "LANE-DEFAULT-UNTAGGED",
                           f"{ev['type']} carries stream_id {_short(sid)} but its create named no lane")
        else:
            self._once_add(rs, "lane", "LANE-TAGGED",
                           f"{ev['type']} carries stream_id {_short(sid)}, expected {rs.lane!r}")

    def _attach(self, rs: RequestState, ev: dict, typ: str) -> None:
        """Common checks of a streaming event attributed to a live response."""
        rs.events.append(ev)
        self._obs.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)
        g = rs.g
        seq = ev.get("sequence_number")
        last = g.seq
        if last is not None and type(seq) is int and seq == last + 1:
            g.seq = seq
        else:
            self._seq_check(rs, g, seq, typ)
        if g.ip == 0 and typ != "response.created":
            g.ip = 1
            if typ != "response.in_progress" and not self._is_empty_terminal(ev, typ):
                self._add("STREAM-IN-PROGRESS-FOLLOWS",
                          f"{typ} follows response.created; response.in_progress expected first", rs)

    def _seq_check(self, rs: RequestState, g: _Grammar, seq: Any, typ: str) -> None:
        """sequence_number of a streaming event, other than the expected next number."""
        if type(seq) is int and seq >= 0:
            last = g.seq
            if last is None:
                if seq != 0:
                    self._once_add(rs, "seq", "SEQ-FROM-ZERO-BY-ONE",
                                   f"first sequence_number of the response is {seq}, not 0 ({typ})")
                g.seq = seq
            elif seq <= last:
                self._once_add(rs, "seq", "SEQ-MONOTONIC",
                               f"sequence_number {seq} of {typ} does not exceed the previous {last}")
            else:
                self._once_add(rs, "seq1", "SEQ-FROM-ZERO-BY-ONE",
                               f"sequence_number jumps from {last} to {seq} ({typ})")
                g.seq = seq
        else:
            self._once_add(rs, "seqp", "SEQ-PRESENT",
                           f"{typ} has no non-negative integer sequence_number ({_short(seq)})")
            # count it as numbered: the next event's gap is this defect, not another one
            g.seq = 0 if g.seq is None else g.seq + 1

    @staticmethod
    def _is_empty_terminal(ev: dict, typ: str) -> bool:
        if typ not in _TERMINAL_STATUS:
            return False
        resp = ev.get("response")
        return type(resp) is dict and not resp.get("output")

    def _shared_seq(self, rs: RequestState, ev: dict, typ: str) -> None:
        """steer/inject/extension events: part of the target's numbering, any time."""
        seq = ev.get("sequence_number")
        if type(seq) is int and seq >= 0:
            last = rs.g.seq
            if last is not None and seq <= last:
                self._once_add(rs, "seq", "SEQ-MONOTONIC",
                               f"sequence_number {seq} of {typ} does not exceed the previous {last}")
            else:
                if last is not None and seq != last + 1:
                    self._once_add(rs, "seq1", "SEQ-FROM-ZERO-BY-ONE",
                                   f"sequence_number jumps from {last} to {seq} ({typ})")
                rs.g.seq = seq

    def _after_end(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self._obs.request = rs.index
        self._once_add(rs, "after-end", "STREAM-TERMINAL-LAST",
                       f"{ev['type']} arrived after the response ended ({rs.terminal_type or 'error event'})")

    def _end(self, rs: RequestState, state: str, terminal_type: str | None) -> None:
        lane = self._lane(rs.lane)
        if rs in lane.streaming:
            lane.streaming.remove(rs)
        rs.state = state
        rs.terminal_type = terminal_type
        if state == DONE:
            lane.last = rs

    def _check_previous(self, rs: RequestState, resp: dict, typ: str) -> None:
        if rs.origin == "unsolicited":
            return
        expected = rs.create.get("previous_response_id")
        got = resp.get("previous_response_id")
        if expected != got:
            self._once_add(rs, "prev", "PREVIOUS-ID-ECHOED",
                           f"{typ}: response.previous_response_id is {_short(got)}, the create sent {_short(expected)}")

    # ----------------------------------------------------------------------------------
    # lifecycle handlers

    def _new_response_owner(self, ev: dict, rid: Any) -> RequestState | None:
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        resp = ev.get("response")
        prev = resp.get("previous_response_id") if type(resp) is dict else None
        if lane is not None:
            for rs in lane.streaming:  # implicitly started without an id
                if rs.response_id is None:
                    return rs
            if lane.steered:
                for target in lane.steered:
                    if prev is not None and target.response_id == prev and not (
                        lane.pending and lane.pending[0].create.get("previous_response_id") == prev
                    ):
                        return self._successor(lane, target)
            if lane.pending:
                return lane.pending.popleft()
            if lane.steered:
                return self._successor(lane, lane.steered[0])
        rs = self._take_pending(key)
        if rs is not None:
            return rs
        if ev.get("type") == "response.created":
            rs = RequestState(len(self.requests), {}, key if type(key) is str else None, origin="unsolicited")
            self.requests.append(rs)
            self.notes.append(f"frame {self._obs.index}: response.created {_short(rid)} answers no create "
                              f"(request {rs.index} opened as unsolicited)")
            return rs
        return None

    def _successor(self, lane: _Lane, target: RequestState) -> RequestState:
        lane.steered.remove(target)
        create: dict | None = None
        for i, steer in enumerate(self._steers_sent):
            if steer.get("previous_response_id") == target.response_id:
                create = self._steers_sent.pop(i)
                break
        if create is None:
            create = {"type": "response.steer", "previous_response_id": target.response_id}
        rs = RequestState(len(self.requests), create, target.lane, origin="steer")
        self.requests.append(rs)
        return rs

    def _h_queued(self, ev: dict, typ: str) -> None:
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is None:
            rs = self._new_response_owner(ev, rid)
            if rs is None:
                self.unattributed.append(ev)
                return
            if type(rid) is str:
                rs.response_id = rid
                self._by_id[rid] = rs
        if rs.state == DONE:
            self._after_end(rs, ev)
            return
        if rs.state == STREAMING:
            self._attach(rs, ev, typ)
            self._add("STREAM-CREATED-FIRST", "response.queued after the response started", rs)
            return
        rs.g.queued = True
        self._attach(rs, ev, typ)

    def _h_created(self, ev: dict, typ: str) -> None:
        resp = ev.get("response")
        if type(resp) is not dict:
            resp = {}
        rid = resp.get("id")
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is not None and rs.state != PENDING:
            if rs.state == DONE:
                self._after_end(rs, ev)
                return
            self._attach(rs, ev, typ)
            if rs.created is not None:
                self._add("STREAM-CREATED-FIRST", f"second response.created for {rid!r}", rs)
            else:
                rs.created = resp
            return
        if rs is None:
            rs = self._new_response_owner(ev, rid)
        if rs.state == STREAMING:  # adopted an implicitly started response
            if type(rid) is str:
                rs.response_id = rid
                self._by_id.setdefault(rid, rs)
            rs.created = resp
            self._attach(rs, ev, typ)
            return
        self._begin(rs, rid, typ)
        rs.created = resp
        self._attach(rs, ev, typ)
        rs.g.ip = 0
        self._check_previous(rs, resp, typ)

    def _lifecycle_owner(self, ev: dict, typ: str) -> tuple[RequestState | None, Any]:
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is not None:
            return rs, rid
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        if lane is not None and lane.streaming:
            return lane.streaming[-1], rid
        rs = self._sole_streaming() or self._implicit(ev, typ)
        if rs is None:
            self._unattributed(ev, f"{typ} for {_short(rid)} outside any started response")
        return rs, rid

    def _h_in_progress(self, ev: dict, typ: str) -> None:
        rs, _ = self._lifecycle_owner(ev, typ)
        if rs is None:
            return
        if rs.state == PENDING:  # queued, then in_progress without created
            self._begin(rs, rs.response_id, typ)
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)

    def _h_terminal(self, ev: dict, typ: str) -> None:
        rs, rid = self._lifecycle_owner(ev, typ)
        if rs is None:
            return
        resp = ev.get("response")
        g = rs.g
        if rs.state == PENDING:
            self._begin(rs, rid, typ)
        if rs.state != STREAMING:
            rs.events.append(ev)
            self._obs.request = rs.index
            if rs.terminal_type is None and rs.error is not None:
                rs.terminal_type = typ  # error mid-stream, then its terminal event: accepted (once)
                if type(resp) is dict:
                    rs.response = resp
                self._shared_seq(rs, ev, typ)
            elif rs.state == DONE:
                self._add("STREAM-ONE-TERMINAL",
                          f"{typ} is a second terminal event (first: {rs.terminal_type})", rs)
            else:
                self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)
        if type(resp) is not dict:
            self._end(rs, DONE, typ)
            return
        want = _TERMINAL_STATUS[typ]
        status = resp.get("status")
        if status != want:
            self._add("STREAM-TERMINAL-RESPONSE", f"{typ} carries response.status {_short(status)}, expected {want!r}",
                      rs, pointer="/response/status")
        if rs.response_id is not None and rid != rs.response_id:
            self._add("STREAM-TERMINAL-RESPONSE",
                      f"{typ} carries response id {_short(rid)}, response.created had {rs.response_id!r}",
                      rs, pointer="/response/id")
        if typ == "response.completed" and type(resp.get("usage")) is not dict:
            self._add("STREAM-TERMINAL-RESPONSE", "response.completed without usage", rs, pointer="/response/usage")
        if typ == "response.completed":
            open_items = [it for it in g.order if not it.done]
            if open_items:
                self._add("STREAM-ITEM-LIFECYCLE",
                          f"response.completed while items are open: {[it.id for it in open_items]}", rs)
        if g.incomplete_item is not None and typ != "response.incomplete":
            self._add("STREAM-INCOMPLETE-ITEM-LAST",
                      f"item {g.incomplete_item.id!r} ended incomplete but the response ends with {typ}", rs)
        if typ != "response.failed" and g.order:
            self._compare_output(rs, resp)
        self._check_previous(rs, resp, typ)
        rs.response = resp
        self._end(rs, DONE, typ)

    def _compare_output(self, rs: RequestState, resp: dict) -> None:
        output = resp.get("output")
        if type(output) is not list:
            return
        by_id = {o["id"]: o for o in output if type(o) is dict and type(o.get("id")) is str}
        missing: list = []
        for pos, it in enumerate(rs.g.order):
            if not it.done:
                continue
            out = by_id.get(it.id) if it.id is not None else None
            if out is None and it.id is None and pos < len(output) and type(output[pos]) is dict:
                out = output[pos]
            if out is None:
                missing.append(it.id if it.id is not None else f"#{pos}")
                continue
            for (base, idx), value in it.vals.items():
                got = _output_value(out, base, idx)
                if got != value:
                    self._add("STREAM-DONE-MATCHES-OUTPUT",
                              f"terminal response.output item {it.id!r}: {_family_label(base, idx)} is {_short(got)}, "
                              f"the .done event had {_short(value)}", rs)
        if missing:
            self._add("STREAM-DONE-MATCHES-OUTPUT",
                      f"terminal response.output lacks streamed items {missing}"
                      + (" (output is empty)" if not output else ""), rs)

    # ----------------------------------------------------------------------------------
    # item, part and delta handlers

    def _routed_item(self, ev: dict, typ: str, by_index: bool = False) -> tuple[RequestState | None, _Item | None]:
        """Route an item/part event (rule 3) and find its announced, open item: ``(rs, item)``,
        with item None when there is none (the finding is made) or the event has no response."""
        rs = self._route(ev)
        if rs is None:
            return None, None
        return rs, self._item_for(rs, ev, typ, by_index)

    def _item_for(self, rs: RequestState, ev: dict, typ: str, by_index: bool = False) -> _Item | None:
        """Attach ``ev`` to ``rs`` and find the announced, open item it references."""
        g = rs.g
        if by_index:
            oi = ev.get("output_index")
            it = g.by_oi.get(oi) if type(oi) is int else None
            if rs.state != STREAMING:
                self._after_end(rs, ev)
                return None
            self._attach(rs, ev, typ)
            if it is None:
                self._once_add(rs, ("oi", _short(oi)), "STREAM-ANNOUNCED-ITEM",
                               f"{typ} references output_index {_short(oi)}, not announced by output_item.added")
                return None
            if it.done:
                self._once_add(rs, ("done", it.oi), "STREAM-ANNOUNCED-ITEM",
                               f"{typ} references output_index {_short(oi)} after its output_item.done")
                return None
            return it
        iid = ev.get("item_id")
        if type(iid) is not str:
            iid = None
        it = g.items.get(iid)
        if (it is None or it.done) and self._misrouted(rs, ev, iid):
            return None
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return None
        self._attach(rs, ev, typ)
        if it is None:
            self._once_add(rs, ("id", iid), "STREAM-ANNOUNCED-ITEM",
                           f"{typ} references item_id {_short(iid)}, not announced by output_item.added")
            return None
        if it.done:
            self._once_add(rs, ("done", iid), "STREAM-ANNOUNCED-ITEM",
                           f"{typ} references item {iid!r} after its output_item.done")
            return None
        oi = ev.get("output_index")
        if oi != it.oi:
            self._once_add(rs, ("oi", iid), "STREAM-ANNOUNCED-ITEM",
                           f"{typ} for item {iid!r} has output_index {_short(oi)}, the item was announced at {it.oi}")
        return it

    def _h_item_added(self, ev: dict, typ: str) -> None:
        rs = self._h_plain(ev, typ)
        if rs is None:
            return
        g = rs.g
        item = ev.get("item")
        if type(item) is not dict:
            return
        iid = item.get("id")
        if type(iid) is not str:
            iid = None
        oi = ev.get("output_index")
        if g.incomplete_item is not None:
            self._add("STREAM-INCOMPLETE-ITEM-LAST",
                      f"item {iid!r} added after item {g.incomplete_item.id!r} ended incomplete", rs)
        if oi != len(g.order):
            self._add("STREAM-INDEXES-IN-ORDER",
                      f"output_item.added has output_index {_short(oi)}, expected {len(g.order)}", rs,
                      pointer="/output_index")
        if iid is not None and (iid in g.items or iid in self._item_owner):
            self._add("STREAM-ITEM-LIFECYCLE", f"output_item.added repeats item id {iid!r}", rs)
        it = _Item(iid, oi)
        g.order.append(it)
        if type(oi) is int:
            g.by_oi.setdefault(oi, it)
        if iid is not None:
            g.items.setdefault(iid, it)
            self._item_owner.setdefault(iid, rs)

    def _h_item_done(self, ev: dict, typ: str) -> None:
        rs = self._route(ev)
        if rs is None:
            return
        g = rs.g
        item = ev.get("item")
        if type(item) is not dict:
            item = {}
        iid = item.get("id")
        if type(iid) is not str:
            iid = None
        oi = ev.get("output_index")
        it = g.items.get(iid) if iid is not None else (g.by_oi.get(oi) if type(oi) is int else None)
        if (it is None or it.done) and self._misrouted(rs, ev, iid):
            return
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)
        if it is None:
            self._add("STREAM-ITEM-LIFECYCLE", f"output_item.done for item {_short(iid)} that was never added", rs)
            return
        if it.done:
            self._add("STREAM-ITEM-LIFECYCLE", f"second output_item.done for item {_short(iid)}", rs)
            return
        if oi != it.oi:
            self._add("STREAM-ANNOUNCED-ITEM",
                      f"output_item.done for {iid!r} has output_index {_short(oi)}, announced at {it.oi}", rs)
        for label, parts in (("content part", it.parts), ("summary part", it.summ)):
            for idx, state in parts.items():
                if state != _P_CLOSED:
                    self._add("STREAM-ITEM-LIFECYCLE",
                              f"output_item.done for {iid!r} while its {label} {idx} is still open", rs)
        for (base, idx), deltas in it.acc.items():
            if (base, idx) not in it.vals and _FAMILIES[base][2] is None:  # parts: see content_part.done
                self._add("STREAM-ITEM-LIFECYCLE",
                          f"output_item.done for {iid!r} without {base}.done after its deltas", rs)
        for (base, idx), value in it.vals.items():
            got = _output_value(item, base, idx)
            if got != value:
                self._add("STREAM-DONE-MATCHES-OUTPUT",
                          f"output_item.done {iid!r}: {_family_label(base, idx)} is {_short(got)}, "
                          f"the .done event had {_short(value)}", rs)
        it.done = True
        if item.get("status") == "incomplete":
            g.incomplete_item = it

    def _h_part_added(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is None:
            return
        summary = typ == "response.reasoning_summary_part.added"
        parts = it.summ if summary else it.parts
        field_ = "summary_index" if summary else "content_index"
        idx = ev.get(field_)
        expected = it.next_summ if summary else it.next_part
        try:
            added = idx in parts
        except TypeError:  # not even hashable, so not an index (the schema reports it)
            return
        if added:
            self._add("STREAM-ITEM-LIFECYCLE", f"{typ}: {field_} {_short(idx)} of {it.id!r} added twice", rs)
            return
        for other, state in parts.items():
            if state != _P_CLOSED:
                self._add("STREAM-ITEM-LIFECYCLE",
                          f"{typ} {_short(idx)} of {it.id!r} while part {other} is still open", rs)
                break
        if idx != expected:
            self._add("STREAM-INDEXES-IN-ORDER", f"{typ} of {it.id!r} has {field_} {_short(idx)}, expected {expected}",
                      rs, pointer="/" + field_)
        parts[idx] = _P_OPEN
        nxt = (idx + 1) if type(idx) is int else expected + 1
        if summary:
            it.next_summ = max(it.next_summ, nxt)
        else:
            it.next_part = max(it.next_part, nxt)

    def _h_part_done(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is None:
            return
        summary = typ == "response.reasoning_summary_part.done"
        parts = it.summ if summary else it.parts
        idx = ev.get("summary_index" if summary else "content_index")
        try:
            state = parts.get(idx)
        except TypeError:
            return
        if state is None:
            self._add("STREAM-ITEM-LIFECYCLE", f"{typ} for part {_short(idx)} of {it.id!r} that was never added", rs)
            return
        if state == _P_CLOSED:
            self._add("STREAM-ITEM-LIFECYCLE", f"second {typ} for part {idx} of {it.id!r}", rs)
            return
        if state == _P_DELTAS:
            self._add("STREAM-ITEM-LIFECYCLE", f"{typ} for part {idx} of {it.id!r} before the .done of its deltas", rs)
        parts[idx] = _P_CLOSED
        part = ev.get("part")
        if type(part) is not dict:
            return
        if summary:
            base, fld = "response.reasoning_summary_text", "text"
        else:
            ptype = part.get("type")
            fam = _PART_FAMILY.get(ptype) if type(ptype) is str else None
            if fam is None:
                return
            base, fld = fam
        value = it.vals.get((base, idx))
        if value is not None and part.get(fld) != value:
            self._add("STREAM-DONE-MATCHES-OUTPUT",
                      f"{typ} part {idx} of {it.id!r}: {fld} is {_short(part.get(fld))}, "
                      f"the .done event had {_short(value)}", rs)

    def _h_delta(self, ev: dict, typ: str) -> None:
        # the hottest path: one live response on the lane, announced open item, next number
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid) if sid is None or type(sid) is str else None
        if lane is not None and len(lane.streaming) == 1:
            rs = lane.streaming[0]
        else:
            rs = self._route_slow(ev, lane)
            if rs is None:
                return
        g = rs.g
        iid = ev.get("item_id")
        it = g.items.get(iid) if type(iid) is str else None
        seq = ev.get("sequence_number")
        last = g.seq
        if (it is not None and not it.done and rs.state is STREAMING and g.ip and sid == rs.lane
                and last is not None and type(seq) is int and seq == last + 1):
            rs.events.append(ev)
            self._obs.request = rs.index
            g.seq = seq
            if ev.get("output_index") != it.oi:
                self._once_add(rs, ("oi", iid), "STREAM-ANNOUNCED-ITEM",
                               f"{typ} for item {iid!r} has output_index {_short(ev.get('output_index'))}, "
                               f"the item was announced at {it.oi}")
        else:
            it = self._item_for(rs, ev, typ)
            if it is None:
                return
        base, fld, idx_field, container = _DELTA_INFO[typ]
        idx = ev.get(idx_field) if idx_field is not None else -1
        if container is not None:
            parts = it.parts if container == "part" else it.summ
            try:
                state = parts.get(idx)
            except TypeError:
                return
            if state is None or state > _P_DELTAS:
                self._once_add(rs, ("delta-part", it.id, base, _short(idx)), "STREAM-ITEM-LIFECYCLE",
                               f"{typ} for {idx_field} {_short(idx)} of {it.id!r} "
                               + ("before its part was added" if state is None else "after its part's .done"))
                if state is None:
                    return
            elif state == _P_OPEN:
                parts[idx] = _P_DELTAS
            key = (base, idx)
        else:
            key = (base, -1)
            if key in it.vals:
                self._once_add(rs, ("delta-after", it.id, base), "STREAM-ITEM-LIFECYCLE",
                               f"{typ} for {it.id!r} after {base}.done")
        delta = ev.get("delta")
        acc = it.acc.get(key)
        if acc is None:
            acc = it.acc[key] = []
        acc.append(delta if type(delta) is str else "")

    def _h_text_done(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is None:
            return
        base, fld, idx_field, container = _DONE_INFO[typ]
        idx = ev.get(idx_field) if idx_field is not None else -1
        key = (base, idx)
        try:
            if key in it.vals:
                self._add("STREAM-ITEM-LIFECYCLE", f"second {typ} for {it.id!r}", rs)
                return
        except TypeError:
            return
        if container is not None:
            parts = it.parts if container == "part" else it.summ
            state = parts.get(idx)
            if state is None or state > _P_DELTAS:
                self._add("STREAM-ITEM-LIFECYCLE",
                          f"{typ} for {idx_field} {_short(idx)} of {it.id!r} "
                          + ("without an open part" if state is None else "after its part closed"), rs)
            else:
                parts[idx] = _P_TEXT_DONE
        value = ev.get(fld)
        it.vals[key] = value
        acc = it.acc.get(key)
        joined = "".join(acc) if acc else ""
        if type(value) is str and joined != value:
            self._add("STREAM-DELTAS-ADD-UP",
                      f"{typ} for {it.id!r}: deltas add up to {_short(joined)}, .done has {_short(value)}", rs,
                      pointer="/" + fld)

    def _h_item_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ)

    def _h_index_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ, by_index=True)

    def _h_plain(self, ev: dict, typ: str) -> RequestState | None:
        """An event without an item reference: attached to its live response, which is returned
        (None when it has none, or it ended: then STREAM-TERMINAL-LAST)."""
        rs = self._route(ev)
        if rs is None:
            return None
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return None
        self._attach(rs, ev, typ)
        return rs

    def _h_generic(self, ev: dict, typ: str) -> None:
        """A type the schemas know but the grammar has no rule for."""
        if "item_id" in ev:
            self._h_item_event(ev, typ)
        elif "output_index" in ev:
            self._h_index_event(ev, typ)
        else:
            self._h_plain(ev, typ)

    # ----------------------------------------------------------------------------------
    # error, steer, inject, extensions

    def _h_error(self, ev: dict, typ: str) -> None:
        err = ev.get("error")
        if type(err) is not dict and "code" in ev:
            self._add("ERR-CODE-NESTED",
                      f"error event uses the flat legacy shape (top-level code {_short(ev.get('code'))}, no error object)",
                      pointer="/code")
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        has_seq = "sequence_number" in ev
        rs: RequestState | None = None
        if lane is not None and lane.streaming and (has_seq or not lane.pending):
            if has_seq or not self._unanswered_other:
                rs = lane.streaming[-1]
        if rs is None and key is None and has_seq:
            rs = self._sole_streaming()
        if rs is not None:  # mid-stream error of a live response
            rs.g.ip = 1
            if has_seq:
                self._attach(rs, ev, typ)
            else:
                self._attach_unsequenced(rs, ev)
            rs.error = ev
            self._end(rs, DONE, None)
            return
        rs = self._take_pending(key)  # the lane's oldest pending create, else any lane's
        if rs is None:
            if self._unanswered_other:
                self._unanswered_other -= 1
            self.connection_errors.append(ev)
            return
        rs.events.append(ev)
        self._obs.request = rs.index
        rs.error = ev
        rs.state = REJECTED
        sid = ev.get("stream_id")
        if sid != rs.lane:
            code = err.get("code") if type(err) is dict else ev.get("code")
            exempt = sid is None and rs.lane is not None and (
                not _valid_lane_name(rs.lane) or (type(code) is str and code in _CONNECTION_LEVEL_CODES)
            )
            if not exempt:
                self._lane_check(rs, ev)

    def _attach_unsequenced(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self._obs.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)

    def _side_event(self, rid: Any, ev: dict, typ: str) -> RequestState | None:
        """A steer/inject event (rule 5): attached to the response ``rid`` names (else the lane's
        only streaming one) and numbered with it; returns that response."""
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is None:
            lane = self._lanes.get(self._lane_key(ev))
            if lane is not None and len(lane.streaming) == 1:
                rs = lane.streaming[0]
        if rs is None:
            self.unattributed.append(ev)
            return None
        self._attach_unsequenced(rs, ev)
        self._shared_seq(rs, ev, typ)
        return rs

    def _h_steer(self, ev: dict, typ: str) -> None:
        if self._unanswered_other:
            self._unanswered_other -= 1
        steer = ev.get("steer")
        if type(steer) is not dict:
            steer = {}
        rs = self._side_event(steer.get("previous_response_id"), ev, typ)
        if rs is None:
            return
        lane = self._lane(rs.lane)
        if typ == "response.steer.accepted":
            if rs not in lane.steered:
                lane.steered.append(rs)
        elif rs in lane.steered and (typ == "response.steer.pending" or steer.get("id") is not None):
            lane.steered.remove(rs)

    def _h_inject(self, ev: dict, typ: str) -> None:
        self._side_event(ev.get("response_id"), ev, typ)

    def _h_extension(self, ev: dict, typ: str) -> None:
        if typ not in self._ext_seen:
            self._ext_seen.add(typ)
            self._add("EXT-UNKNOWN-TOLERATED", f"unknown event type {_short(typ)}", kind=EXTENSION, pointer="/type")
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None and len(lane.streaming) == 1:
            rs = lane.streaming[0]
            rs.events.append(ev)
            self._obs.request = rs.index
            self._shared_seq(rs, ev, typ)


def _output_value(item: dict, base: str, idx: Any) -> Any:
    """The value of a delta family in an output item (None when absent)."""
    fld, idx_field, container = _FAMILIES[base]
    if container is None:
        return item.get(fld)
    seq = item.get("content" if container == "part" else "summary")
    if type(seq) is not list or type(idx) is not int or not 0 <= idx < len(seq):
        return None
    part = seq[idx]
    return part.get(fld) if type(part) is dict else None


def _family_label(base: str, idx: Any) -> str:
    fld, idx_field, container = _FAMILIES[base]
    if container is None:
        return fld
    return f"{'content' if container == 'part' else 'summary'}[{idx}].{fld}"
