"""``StreamMonitor``: the checks of one WebSocket connection's frames (sans-I/O facade).

The harness calls ``sent(event)`` for every client message and ``feed(frame)`` for every
received frame, then ``finish()``, and reads findings; the monitor never raises on input
(internal errors go to ``internal_errors``). Each frame passes framing and schema dispatch
(framing.py), attribution to a request (attribution.py), and that response's grammar
(grammar.py); docs/interfaces.md describes the API.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from conformance.monitor.clauses import CREATE_ANSWERED, STREAM_ONE_TERMINAL
from conformance.monitor.attribution import PENDING, STREAMING, Attribution
from conformance.monitor.events import (DELTA_INFO, DONE_INFO, INDEX_EVENTS, INJECT_EVENTS, ITEM_EVENTS,
                                        PART_EVENTS, PLAIN_EVENTS, STEER_EVENTS, SUMMARY_PART_EVENTS,
                                        TERMINAL_STATUS)
from conformance.monitor.framing import GENERIC, GRAMMAR, SchemaDispatch, decode
from conformance.monitor.grammar import Leniency
from conformance.monitor.records import Finding, Observed

Handler = Callable[[dict, str], None]
_loads = json.loads
# schema issues an optional terminal output makes moot: (event type, pointer)
TERMINAL_OUTPUT = frozenset((typ, "/response/output") for typ in TERMINAL_STATUS)


class StreamMonitor(Attribution):
    """Checks the frames of one WebSocket connection.

    ``schemas``: a schema set (see ``SchemaDispatch``), ``None`` for conformance.schemas, or
    ``False`` / ``PERMISSIVE`` for the grammar only. ``setup_events`` and ``terminal_output``:
    ``"required"`` (default) or ``"optional"``, the target's leniencies of §4.3 item 16a (the
    harness passes its profile's ``[stream]`` keys); ValueError for another value."""

    def __init__(self, schemas: Any = None, *, setup_events: str = "required",
                 terminal_output: str = "required") -> None:
        super().__init__(Leniency(setup_events, terminal_output))
        self._schemas = SchemaDispatch(schemas, self.notes, self.internal_errors,
                                       tolerated=TERMINAL_OUTPUT if self.lenient.terminal_output else frozenset())
        self._is_valid: Callable[[Any], bool] | None = None  # the schema set's, once resolved
        self._count = 0
        self._finished = False
        self._dedupe_keys: dict[int, tuple] = {}  # id(finding) -> once-key, for loose findings
        # type -> (handler, known top-level fields or None); filled lazily per type
        self._dispatch: dict[str, tuple[Handler, frozenset | None]] = {}
        self._rules: dict[str, Handler] = self._handler_table()

    # --- public API

    def sent(self, event: Any) -> int | None:
        """The client sent ``event``; returns the request number of a ``response.create``."""
        try:
            if type(event) is dict and event.get("type") == "response.create":
                sid = event.get("stream_id")
                lane = sid if type(sid) is str else None
                rs = self._request(event, lane)
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
            ev = typ = None
            if type(data) is str:  # the common case first: a text frame holding an event
                try:
                    ev = _loads(data)
                    typ = ev.get("type") if type(ev) is dict else None
                except Exception:
                    pass
            if type(typ) is not str:
                ev = decode(data, self._add)  # framing findings (parses again)
                if ev is None:
                    return obs
                typ = ev["type"]
            obs.message = ev
            is_valid = self._is_valid
            if is_valid is None:
                is_valid = self._is_valid = self._schemas.resolve()
            if not is_valid(ev):
                self._schemas.issues(ev, typ, self._add, self._dedupe_keys)
            entry = self._dispatch.get(typ)
            if entry is None:
                entry = self._resolve_type(typ)
            handler, known = entry
            if known is not None and not known.issuperset(ev):
                self._schemas.unknown_fields(ev, typ, known, self._add)
            handler(ev, typ)
        except Exception as exc:  # the monitor never raises on input
            self.internal_errors.append(f"frame {idx}: {type(exc).__name__}: {exc}")
        finally:
            if self._loose:
                self._settle_loose(obs)
        return obs

    def finish(self) -> list[Finding]:
        """The stream is over: responses that started and never ended get their findings
        (creates never answered get none here: the harness judges timeouts)."""
        if self._finished:
            return []
        self._finished = True
        self._obs = None
        out: list[Finding] = []
        for rs in self.requests:
            if rs.state == STREAMING:
                out.append(self._add(STREAM_ONE_TERMINAL,
                                     "the stream ended without a terminal event for this response", rs))
        return out

    def timed_out(self, request: int, limit: str) -> Finding | None:
        """A full turn's deadline (``limit``, as the harness words it) passed while ``request``
        had not ended and the connection stayed open: the finding that makes, recorded with the
        request's (None when the request was answered but is not streaming)."""
        rs = self.requests[request]
        if rs.state == STREAMING:  # started, then no terminal event: missing, not late
            miss = Finding(STREAM_ONE_TERMINAL, f"response {rs.response_id} started but sent no terminal event "
                                                f"({limit})", response_id=rs.response_id)
        elif rs.state == PENDING and not rs.events:  # not even created/queued or an error (§1.5)
            miss = Finding(CREATE_ANSWERED, f"request {request} (response.create) got no answer at all: no "
                                            f"response.created, response.queued or error ({limit})")
        else:
            return None
        rs.findings.append(miss)
        self.findings.append(miss)
        return miss

    # --- dispatch

    def _handler_table(self) -> dict[str, Handler]:
        t: dict[str, Handler] = {
            "error": self._h_error,
            "response.queued": self._h_queued,
            "response.created": self._h_created,
            "response.in_progress": self._h_in_progress,
            "response.output_item.added": self._h_item_added,
            "response.output_item.done": self._h_item_done,
        }
        for added, done in (PART_EVENTS, SUMMARY_PART_EVENTS):
            t[added] = self._h_part_added
            t[done] = self._h_part_done
        for types, handler in (
            (TERMINAL_STATUS, self._h_terminal),
            (DELTA_INFO, self._h_delta),
            (DONE_INFO, self._h_text_done),
            (ITEM_EVENTS, self._h_item_event),
            (INDEX_EVENTS, self._h_index_event),
            (PLAIN_EVENTS, self._h_plain),
            (STEER_EVENTS, self._h_steer),
            (INJECT_EVENTS, self._h_inject),
        ):
            for typ in types:
                t[typ] = handler
        return t

    def _resolve_type(self, typ: str) -> tuple[Handler, frozenset | None]:
        rule = self._rules.get(typ)
        role, known = self._schemas.classify(typ, rule is not None)
        if role == GRAMMAR:
            handler = rule
        elif role == GENERIC:
            handler = self._h_generic
        else:
            handler = self._h_extension
        entry = (handler, known)
        self._dispatch[typ] = entry
        return entry

    def _h_extension(self, ev: dict, typ: str) -> None:
        self._schemas.unknown_type(typ, self._add)
        self._h_extension_event(ev, typ)

    # --- findings of the frame before it was attributed

    def _settle_loose(self, obs: Observed) -> None:
        """Findings made before the frame was attributed (framing, schema) join its request.

        A schema issue (same event type, pointer and rule) is reported once per request, or
        once per connection for frames of no request, to keep reports small."""
        loose, self._loose = self._loose, []
        rs = self.requests[obs.request] if obs.request is not None else None
        once = rs.grammar.once if rs is not None else self._once
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
