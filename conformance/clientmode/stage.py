"""The reference server's side of a client-mode scenario: the ``scenario_hook`` of
``conformance.server.ServerConfig`` (docs/clients.md "Scenarios").

``ScenarioHook.connect`` is called for every upgrade (it authenticates the client itself, so
that a key sent in the URL is seen rather than refused unseen); ``ConnectionStage`` wraps the
connection's transport, records every frame in and out (``conformance.clientmode.record``),
and plays the scenario's ``Act`` for each ``response.create``: it answers some requests
itself (``previous_response_not_found``, a top-level error), reshapes the reference server's
events for others (a failed or incomplete ending, unknown events, a padded terminal event) or
closes the socket, delays a response's first event, holds a response until the client's
steers arrived (§4.9 item 46: a steer must find its response running) or a connection's first
response until a second lane's create arrived (§4.4 item 20), or sends the lifetime error
unsolicited once the socket idles. Everything else is the reference server's usual
behaviour.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType

from conformance.clientmode.record import Connection, Direction, Frame, Recording
from conformance.clientmode.scenarios import (IDLE_LIMIT_AFTER_S, LANE_WAIT_S, REFUSED_UPGRADE_STATUS, SLOW_FIRST_S,
                                               STALL_S, STEER_WAIT_S, Act, Scenario)
from conformance.server.config import lifetime_phrase
from conformance.server.defects import Flags
from conformance.server.errors import ApiError, connection_limit, ws_error_event

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
KEPT_CHARS = 20_000         # characters of one frame kept in the recording
LARGE_TERMINAL_BYTES = 2**20 + 64 * 1024
UNKNOWN_EVENT = {"type": "conformance.unknown_event", "note": "an event type this client does not know"}
_FLAGS = Flags()


def _parse(data: Any) -> dict | None:
    try:
        value = json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _error(err: ApiError, **kwargs: Any) -> dict:
    return ws_error_event(err, _FLAGS, **kwargs)


def not_found(previous_id: str) -> dict:
    return _error(ApiError(400, "previous_response_not_found",
                           f"Previous response with id '{previous_id}' not found.", "previous_response_id"))


def server_error() -> dict:
    return _error(ApiError(500, "server_error", "The server had an error while processing your request. "
                           "(scenario top-level-error)", None, type="server_error"))


def limit_error() -> dict:
    """The lifetime limit error, about the connection (no request's status or param)."""
    return _error(connection_limit(lifetime_phrase(3600)), omit_param=True, request_scoped=False)


def reshape_terminal(event: dict, act: Act) -> dict:
    """The terminal event of a response reshaped for ``act`` (FAILED, INCOMPLETE, LARGE_TERMINAL)."""
    event = json.loads(json.dumps(event))
    response = event.get("response") or {}
    if act is Act.FAILED:
        event["type"] = "response.failed"
        response.update(status="failed", error={"code": "server_error",
                                                "message": "The model failed to generate a response (scenario)."})
    elif act is Act.INCOMPLETE:
        event["type"] = "response.incomplete"
        response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    elif act is Act.LARGE_TERMINAL:
        # a long answer: the terminal event carries the whole output (§3.6), here over 1 MiB
        filler = "lorem " * (LARGE_TERMINAL_BYTES // 6)
        response.setdefault("output", []).append({
            "id": "msg_conformance_large", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": filler, "annotations": []}]})
    return event


class ScenarioHook:
    """One scenario's stage: shared by every connection of the run."""

    def __init__(self, scenario: Scenario, key: str, clock=time.monotonic, per_connection: bool = False) -> None:
        self.scenario = scenario
        # the gateway sandwich's upstream plays the scenario on each connection: its request
        # numbers count the creates of one connection (client mode counts across the run)
        self.per_connection = per_connection
        self.recording = Recording()
        self._key = key
        self._clock = clock
        self._t0 = clock()
        self.t0 = self._t0          # the clock's reading at the start: frames' times count from it
        self.requests = 0           # response.create frames seen, across connections

    def now(self) -> float:
        return round(self._clock() - self._t0, 4)

    def connect(self, request: Any) -> "ConnectionStage":
        """Record the upgrade; refuse it (an ``ApiError`` becomes the HTTP answer) when the key is
        not in the header or the scenario refuses upgrades from now on."""
        url = str(request.rel_url)
        record = Connection(index=len(self.recording.connections), opened=self.now(), path=request.path,
                            key_in_header=request.headers.get("Authorization", "") == f"Bearer {self._key}",
                            key_in_url=bool(self._key) and (self._key in url or self._key in unquote(url)))
        self.recording.connections.append(record)
        limit = self.scenario.refuse_upgrades_after
        if limit is not None and record.index >= limit:
            record.refused = REFUSED_UPGRADE_STATUS
            raise ApiError(REFUSED_UPGRADE_STATUS, "server_overloaded",
                           "The server is overloaded (scenario reconnect-refused).", None, type="server_error")
        if not record.key_in_header:
            record.refused = 401
            raise ApiError(401, "invalid_api_key", "Send the key as 'Authorization: Bearer KEY'.", None)
        return ConnectionStage(self, record)


class ConnectionStage:
    """One accepted connection: the transport the reference server's session writes to."""

    def __init__(self, hook: ScenarioHook, record: Connection) -> None:
        self.hook, self.record = hook, record
        self.inner: Any = None
        self.act: Act | None = None      # the act of the request being answered
        self.done = False                # the stage closed the socket
        self.slow_pending = False        # the next response's first event waits SLOW_FIRST_S
        self.stall_pending = False       # the next batch of the stalled response waits STALL_S
        self.idle_limit: asyncio.Task | None = None    # the unsolicited limit error, armed
        self.limit_going = False         # the unsolicited limit error is being sent
        self.steers_seen = 0             # response.steer frames received on this connection
        self.steered = asyncio.Event()   # the scenario's steers have all arrived
        self.lanes_seen: set = set()     # lanes (stream_id, None: the default) of the creates received
        self.second_lane = asyncio.Event()   # a create of a second lane arrived
        self.lane_hold_done = False      # the first response of a lanes scenario has waited
        self.requests = 0                # response.create frames seen on this connection
        self.running = 0                 # its creates passed on whose answer has not gone out

    def wrap(self, transport: Any) -> "ConnectionStage":
        self.inner = transport
        return self

    # -- frames in ---------------------------------------------------------------------------
    async def received(self, mtype: Any, data: Any) -> bool:
        """Record a client frame; True when the stage answered it itself."""
        if mtype not in (WSMsgType.TEXT, WSMsgType.BINARY):
            if mtype in (WSMsgType.CLOSE, WSMsgType.CLOSING) and not self.record.closed_by:
                self.record.closed_by = "client"
            return False
        text = mtype is WSMsgType.TEXT
        payload = data if text else bytes(data).decode("utf-8", "replace")
        event = _parse(payload) if text else None
        self.record.frames.append(Frame(self.hook.now(), Direction.IN, text, payload[:KEPT_CHARS],
                                        len(data if not text else data.encode()), event))
        if event is not None and event.get("type") == "response.steer":
            self.steers_seen += 1
            if self.steers_seen >= self.hook.scenario.steers:
                self.steered.set()
        if self.done or event is None or event.get("type") != "response.create":
            return False
        self.lanes_seen.add(event.get("stream_id"))
        if len(self.lanes_seen) > 1:
            self.second_lane.set()
        hook = self.hook
        hook.requests += 1
        self.requests += 1
        number = self.requests if hook.per_connection else hook.requests
        if self.idle_limit is not None and not self.idle_limit.done() and not self.limit_going:
            # the socket was not idle after all: the limit error answers this create (§4.6 item 38)
            self.idle_limit.cancel()
            hook.recording.limit_errors.append(f"as the answer to request {hook.requests}")
            await self._send([limit_error()])
            await self._close(1000, "Connection lifetime exceeded")
            return True
        act = hook.scenario.act(number)
        if hook.per_connection and (self.running or event.get("stream_id") is not None):
            # a create queued behind a running response, or on a lane, is answered as usual: the
            # stage's act would land on the response that runs (the sandwich's cases pipeline)
            self.running += 1
            return False
        previous = event.get("previous_response_id")
        if isinstance(previous, str) and previous in hook.recording.dead_ids:
            await self._send([not_found(previous)])      # a dead id stays dead
            return True
        if act is Act.NOT_FOUND and isinstance(previous, str):
            hook.recording.dead_ids.append(previous)
            await self._send([not_found(previous)])
            return True
        if act is Act.TOP_ERROR:
            await self._send([server_error()])
            return True
        if act is Act.LIMIT_ANSWER:
            hook.recording.limit_errors.append(f"as the answer to request {hook.requests}")
            await self._send([limit_error()])
            await self._close(1000, "Connection lifetime exceeded")
            return True
        self.act = act
        self.slow_pending = act is Act.SLOW_FIRST
        self.running += 1
        return False

    async def _limit_when_idle(self) -> None:
        """§4.6 item 38a: the limit error on a socket with no request in flight, then the close."""
        await asyncio.sleep(IDLE_LIMIT_AFTER_S)
        if self.done:
            return
        self.limit_going = True         # from here on a create that arrives gets no second error
        self.hook.recording.limit_errors.append("unsolicited on the idle socket")
        try:
            await self._send([limit_error()])
            await self._close(1000, "Connection lifetime exceeded")
        except (ConnectionError, RuntimeError):
            pass        # the client closed first

    # -- frames out (the Transport of conformance.server.session) ----------------------------
    async def send(self, data: bytes, binary: bool) -> None:
        await self.send_many([(data, binary)])

    async def send_many(self, frames: list) -> None:
        if self.done:
            raise ConnectionResetError("closed by the scenario")
        if self.slow_pending:
            self.slow_pending = False
            await asyncio.sleep(SLOW_FIRST_S)      # a slow first token: the client must wait
        if self.stall_pending:
            self.stall_pending = False
            await asyncio.sleep(STALL_S)           # time for the client to abandon and send again
        events = []
        for data, binary in frames:
            event = None if binary else _parse(data)
            events.append(event if event is not None else (data, binary))
        act, out, after = self.act, [], None
        for position, event in enumerate(events):
            if not isinstance(event, dict):
                out.append(event)
                continue
            etype = event.get("type")
            if etype in TERMINAL or etype == "error":
                self.running = max(0, self.running - 1)
            if etype in TERMINAL and act in (Act.FAILED, Act.INCOMPLETE, Act.LARGE_TERMINAL):
                event = reshape_terminal(event, act)
            out.append(event)
            if act is Act.EXTRA_EVENTS and etype not in TERMINAL and "sequence_number" in event:
                out.append(dict(UNKNOWN_EVENT))
            if act is Act.CLOSE_MID and etype == "response.in_progress":
                after = "close-mid"
                break
            if act is Act.STALL and etype == "response.in_progress":
                self.stall_pending = True
            if etype in TERMINAL:
                self.act = None
                if act is Act.LIMIT_CLOSE:
                    self.hook.recording.limit_errors.append("after the terminal event")
                    out.append(limit_error())
                    after = "close"
                elif act is Act.IDLE_CLOSE:
                    after = "idle-close"
                elif act is Act.IDLE_LIMIT:
                    after = "idle-limit"
        await self._send(out)
        if act is Act.STEER_HOLD and any(isinstance(e, dict) and e.get("type") == "response.in_progress" for e in out):
            # the response runs on only once the steers are in: the reference server appends an
            # accepted steer before its next await, so the output that follows is cut for it
            try:
                await asyncio.wait_for(self.steered.wait(), STEER_WAIT_S)
            except asyncio.TimeoutError:
                pass        # a client that does not steer now: the response goes on
        if (self.hook.scenario.conversations > 1 and not self.lane_hold_done
                and any(isinstance(e, dict) and e.get("type") == "response.in_progress" for e in out)):
            # the connection's first response runs on once a second lane's create is in, so a
            # client that runs its lanes at once shows it however slowly it sends them
            self.lane_hold_done = True
            try:
                await asyncio.wait_for(self.second_lane.wait(), LANE_WAIT_S)
            except asyncio.TimeoutError:
                pass        # its lanes come one after another (CLIENT-LANES-IN-FLIGHT judges that)
        if after == "close-mid":
            await self._close(1011, "scenario: closed in the middle of a response")
            raise ConnectionResetError("closed by the scenario")
        if after == "close":
            await self._close(1000, "Connection lifetime exceeded")
        elif after == "idle-close":
            # at once: the socket is closed before the client's next request, as a pooled socket
            # that the server or a NAT closed while it was idle
            await self._close(1000, "idle connection closed")
        elif after == "idle-limit":
            self.idle_limit = asyncio.get_running_loop().create_task(self._limit_when_idle())

    async def _send(self, items: list) -> None:
        frames = []
        for item in items:
            if isinstance(item, dict):
                data = json.dumps(item, separators=(",", ":")).encode()
                frames.append((data, False))
                self._record_out(item, data.decode(), len(data), True)
            else:
                data, binary = item
                frames.append((data, binary))
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                self._record_out(None, text, len(data), not binary)
        if frames:
            await self.inner.send_many(frames)

    def _record_out(self, event: dict | None, text: str, size: int, is_text: bool) -> None:
        kept = event
        if event is not None and size > KEPT_CHARS:       # keep what the judge reads, not the padding
            kept = {"type": event.get("type"), "response": {"id": (event.get("response") or {}).get("id")},
                    "truncated": True}
        self.record.frames.append(Frame(self.hook.now(), Direction.OUT, is_text, text[:KEPT_CHARS], size, kept))

    async def close(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if not self.done:
            self.done = True
            if not self.record.closed_by:
                self.record.closed_by = "server"
            self.record.close_code = code
        await self.inner.close(code, reason)

    def ended(self, close_code: int | None) -> None:
        """The connection is gone (called once by the server, never raises)."""
        if self.idle_limit is not None:
            self.idle_limit.cancel()
        if self.record.closed is None:
            self.record.closed = self.hook.now()
        if self.record.close_code is None:
            self.record.close_code = close_code
        if not self.record.closed_by:
            self.record.closed_by = "client"
