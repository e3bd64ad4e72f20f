"""``StreamMonitor``: the checks of one WebSocket connection's frames (sans-I/O facade).

The harness calls ``sent(event)`` for every client message and ``feed(frame)`` for every
received frame, then ``finish()``, and reads findings; the monitor never raises on input
(internal errors go to ``internal_errors``). Each frame passes framing and schema dispatch
(framing.py), attribution to a request (attribution.py), and that response's grammar
(grammar.py); docs/interfaces.md describes the API.
"""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from conformance.monitor.attribution import Attribution, Handler
from conformance.monitor.clauses import CREATE_ANSWERED, STREAM_ONE_TERMINAL
from conformance.monitor.events import TERMINAL_STATUS
from conformance.monitor.framing import GENERIC, GRAMMAR, SchemaDispatch, decode
from conformance.monitor.grammar import Leniency
from conformance.monitor.records import Finding, Observed
from conformance.monitor.requests import PENDING, STREAMING

# msgspec parses a frame 3-4x faster than json.loads, to the same result for every text it
# accepts (integers of any size included; tests/test_monitor_json.py). What it refuses and
# json.loads accepts (NaN, Infinity, a lone surrogate escape) json.loads decides below, so the
# monitor accepts exactly what json.loads accepts
_fast_loads = msgspec.json.Decoder().decode
# schema issues an optional terminal output makes moot: (event type, pointer)
TERMINAL_OUTPUT = frozenset((typ, "/response/output") for typ in TERMINAL_STATUS)


class StreamMonitor:
    """Checks the frames of one WebSocket connection.

    ``schemas``: a schema set (see ``SchemaDispatch``), ``None`` for conformance.schemas, or
    ``False`` / ``PERMISSIVE`` for the grammar only. ``setup_events`` and ``terminal_output``:
    ``"required"`` (default) or ``"optional"``, the target's leniencies of §4.3 item 16a (the
    harness passes its profile's ``[stream]`` keys); ValueError for another value.
    ``after_terminal``: ``"discouraged"`` (default) or ``"forbidden"``: a private frame after a
    response's terminal event breaks a SHOULD or, where the profile forbids it (P-open), a MUST
    (§4.3 item 15a). ``retain``: ``"all"`` (default) keeps every request's events, response
    objects and create for the harness to read; ``"live"`` (the proxy, which reads none of
    them) counts events instead of keeping them and releases an ended response's bulk, with
    the same findings, states and attribution."""

    def __init__(self, schemas: Any = None, *, setup_events: str = "required",
                 terminal_output: str = "required", after_terminal: str = Attribution.DISCOURAGED,
                 retain: str = "all") -> None:
        # its parts: the requests and the rules that attribute and check each event, the schemas
        self._attribution = attribution = Attribution(Leniency(setup_events, terminal_output))
        attribution.forbid_trailing(after_terminal)
        attribution.retain(retain)
        self.lenient = attribution.lenient
        self.requests = attribution.requests
        self.findings = attribution.findings
        self.connection_errors = attribution.connection_errors
        self.notes = attribution.notes
        self.internal_errors = attribution.internal_errors
        self.unattributed = attribution.unattributed
        self._add = attribution.add
        self._schemas = SchemaDispatch(schemas, self.notes, self.internal_errors,
                                       tolerated=TERMINAL_OUTPUT if self.lenient.terminal_output else frozenset())
        self._is_valid: Callable[[Any], bool] | None = None  # the schema set's, once resolved
        self._count = 0
        self._finished = False
        self._dedupe_keys: dict[int, tuple] = {}  # id(finding) -> once-key, for loose findings
        # type -> (handler, known top-level fields or None, schema check or None); filled lazily
        self._dispatch: dict[str, tuple[Handler, frozenset | None, Callable[[Any], bool] | None]] = {}
        self._rules: dict[str, Handler] = attribution.handlers()

    # --- public API

    def sent(self, event: Any) -> int | None:
        """The client sent ``event``; returns the request number of a ``response.create``."""
        try:
            return self._attribution.sent(event)
        except Exception as exc:  # pragma: no cover - defensive; never raise on input
            self.internal_errors.append(f"sent: {exc!r}")
        return None

    def feed(self, data: str | bytes, now: float | None = None) -> Observed:
        """One received frame; returns what the monitor made of it. Never raises."""
        idx = self._count
        self._count = idx + 1
        obs = Observed(idx, None, None, [], now)
        attribution = self._attribution
        attribution.frame = obs
        try:
            event = typ = None
            if type(data) is str:  # the common case first: a text frame holding an event
                try:
                    event = _fast_loads(data)
                except Exception:
                    event = None
                if type(event) is dict:
                    typ = event.get("type")
            if type(typ) is not str:
                event = decode(data, self._add)  # framing findings (parses again)
                if event is None:
                    return obs
                typ = event["type"]
            obs.message = event
            entry = self._dispatch.get(typ)
            if entry is None:
                entry = self._resolve_type(typ)
            handler, known, is_valid = entry
            if is_valid is not None and not is_valid(event):
                self._schemas.issues(event, typ, self._add, self._dedupe_keys)
            if known is not None and not known.issuperset(event):
                self._schemas.unknown_fields(event, typ, known, self._add)
            handler(event, typ)
        except Exception as exc:  # the monitor never raises on input
            self.internal_errors.append(f"frame {idx}: {type(exc).__name__}: {exc}")
        finally:
            if attribution.loose:
                attribution.settle(obs, self._dedupe_keys)
        return obs

    def finish(self) -> list[Finding]:
        """The stream is over: responses that started and never ended get their findings
        (creates never answered get none here: the harness judges timeouts)."""
        if self._finished:
            return []
        self._finished = True
        self._attribution.frame = None
        out: list[Finding] = []
        for request in self.requests:
            if request is not None and request.state == STREAMING:
                out.append(self._add(STREAM_ONE_TERMINAL,
                                     "the stream ended without a terminal event for this response", request))
        return out

    def release(self) -> None:
        """The caller has read what it needs (findings, after ``finish``): drop the book of
        requests, which then goes at once rather than at the next full garbage collection. The
        monitor takes no more frames after this."""
        self._finished = True
        self._attribution.clear()
        self._dispatch.clear()

    def timed_out(self, request: int, limit: str) -> Finding | None:
        """A full turn's deadline (``limit``, as the harness words it) passed while ``request``
        had not ended and the connection stayed open: the finding that makes, recorded with the
        request's (None when the request was answered but is not streaming)."""
        record = self.requests[request]
        if record.state == STREAMING:  # started, then no terminal event: missing, not late
            miss = Finding(STREAM_ONE_TERMINAL, f"response {record.response_id} started but sent no terminal event "
                                                f"({limit})", response_id=record.response_id)
        elif record.state == PENDING and not record.events:  # not even created/queued or an error (§1.5)
            miss = Finding(CREATE_ANSWERED, f"request {request} (response.create) got no answer at all: no "
                                            f"response.created, response.queued or error ({limit})")
        else:
            return None
        record.findings.append(miss)
        self.findings.append(miss)
        return miss

    # --- dispatch

    def _resolve_type(self, typ: str) -> tuple[Handler, frozenset | None, Callable[[Any], bool] | None]:
        if self._is_valid is None:
            self._is_valid = self._schemas.resolve()
        rule = self._rules.get(typ)
        role, known = self._schemas.classify(typ, rule is not None)
        if role == GRAMMAR:
            handler = rule
        elif role == GENERIC:
            handler = self._attribution.generic_event
        else:
            handler = self._h_extension
        entry = (handler, known, self._schemas.checker(typ))
        self._dispatch[typ] = entry
        return entry

    def _h_extension(self, event: dict, typ: str) -> None:
        self._schemas.unknown_type(typ, self._add)
        self._attribution.extension_event(event, typ)
