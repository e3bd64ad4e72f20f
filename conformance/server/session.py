"""One WebSocket connection (spec §1.4 framing, §1.5 lifetime, §2 client events, §4.4
lanes and queueing, §4.9 steering, §4.1 item 4 errors keep the connection usable).

The session owns the connection-local cache and one FIFO of jobs per lane (``stream_id``;
``None`` is the default lane).  The frame reader (the I/O layer) hands every frame to
``on_text``/``on_binary`` and keeps reading while turns stream.  Inside a lane jobs run one
at a time, in order (§4.4 item 20); different lanes run concurrently, so their events
interleave, with at most ``MAX_ACTIVE`` responses active per connection — further creates
wait for a slot, they are not rejected (item 21).  Errors take their place in the FIFO of
the lane they belong to: a named lane's request errors in that lane, connection-level errors
(bad frames, unknown events, ``invalid_stream_id``) in the default lane (item 23a), so every
answer of a lane arrives in the order of the frames that caused it.  Under
``busy_policy="reject"`` a create that arrives while a response is in flight is rejected at
once instead.

Steering (``settings.steering``, §4.9) is the session's ``Steering`` part (``steering.py``):
a ``response.steer`` goes to it, each response it may steer is started and ended through it,
and the automatic successor it returns runs next on the target's lane.

With ``control_events`` the unsequenced control events of §3.4 go out before every create's
answer and after it; a paced turn (test-control delay or pause, simulated model latency)
follows ``stream.schedule``.

I/O is behind the small ``Transport`` protocol (send a frame, close), implemented by
``app.py`` for aiohttp.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import logging
from collections import deque
from typing import Protocol

from .config import BusyPolicy, lifetime_phrase
from .core import Core
from .errors import ApiError, bad_request, connection_limit, ws_error_event
from .state import ConnectionCache
from .steering import LiveResponse, Steering
from .stream import (
    CONTROL_AFTER,
    Framer,
    control_before,
    processing_s,
    schedule,
    steered_cut,
)
from .validate import STREAM_ID_RE, parse_frame, validate_create

log = logging.getLogger("conformance.server")

MAX_NAMED_LANES = 32  # distinct named stream_ids per connection, never released (§4.4 items 22, 23a)
MAX_ACTIVE = 16  # responses active at once per connection, across lanes (§4.4 item 21)


class Transport(Protocol):
    async def send(self, data: bytes, binary: bool) -> None: ...

    async def send_many(self, frames: list) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def abort(self) -> None: ...


class ConnState(enum.Enum):
    OPEN = "open"
    EXPIRED = "expired"  # lifetime reached; the limit error goes out once the worker is idle
    CLOSED = "closed"


class _ErrorJob:
    """An answer that is an error event.  ``stream_id`` tags it (and picks its lane);
    ``evict_id`` is the parent a failed continuation names, evicted only when it is the
    latest response of ``evict_lane``, the failing request's own lane (§4.4 item 23a)."""

    __slots__ = ("error", "stream_id", "evict_id", "evict_lane")

    def __init__(self, error: ApiError, stream_id: str | None = None, evict_id: str | None = None,
                 evict_lane: str | None = None) -> None:
        self.error = error
        self.stream_id = stream_id
        self.evict_id = evict_id
        self.evict_lane = evict_lane


IDLE_DEFECT_S = 1.0  # how long a socket may idle under the idle-* defects


class _Lane:
    """The FIFO of one lane and whether a worker task is draining it."""

    __slots__ = ("jobs", "running")

    def __init__(self) -> None:
        self.jobs: deque = deque()
        self.running = False


class Session:
    def __init__(self, core: Core, owner: str, transport: Transport, *, lifetime_s: float,
                 turn_delay_s: float = 0.0, pause_s: float = 0.0) -> None:
        self.core = core
        self.flags = core.flags
        self.settings = core.settings
        self.owner = owner
        self.transport = transport
        self.framer = Framer(core.flags)
        self.cache = ConnectionCache(keep_older=core.flags.keeps_older_responses)
        self.lanes: dict[str | None, _Lane] = {}  # lanes with queued or running jobs
        self.workers = 0  # lane worker tasks running
        self.active = 0  # responses being produced (at most MAX_ACTIVE)
        self.max_active = MAX_ACTIVE + self.flags.active_limit_off_by_one
        self._slot_waiters: deque = deque()  # futures of creates waiting for an active slot
        self.inline = False  # a turn is running in the reader (fast path, no pacing)
        self.steering = Steering(core, owner, self.cache, self.framer, transport)  # §4.9
        self.state = ConnState.OPEN
        self.turn_delay_s = turn_delay_s
        self.pause_s = pause_s
        # a paced turn waits while it streams, so it runs in a worker, never inline
        settings = core.settings
        self.paced = (turn_delay_s > 0 or pause_s > 0 or settings.ttft_s > 0
                      or settings.tokens_per_second > 0 or settings.per_token_s > 0)
        self.lifetime_s = lifetime_s
        self.seq_next = 0  # only used by the sequence-per-connection defect
        self.last_input: list = []  # only used by the abandoned-input-carried defect
        self.first_events: list | None = None  # only used by the replay-first-response defect
        self.named_lanes: set[str] = set()
        self.created = False  # a response.create was handled (unknown-event-ignored-after-create)
        self._tasks: set[asyncio.Task] = set()
        self._timer = None
        if not self.flags.never_expires:
            self._timer = asyncio.get_running_loop().call_later(lifetime_s, self._on_expire)
        self._idle_timer = None  # only armed by the idle-* defects
        self._arm_idle()

    # -- frames in -----------------------------------------------------------------------
    async def on_text(self, text: str) -> None:
        if self.state is not ConnState.OPEN or self.flags.silent_after_handshake:
            return
        self._arm_idle()
        try:
            event = parse_frame(text)
        except ApiError as err:
            if self.flags.malformed_json_ignored and err.param is None:
                return  # the defect: a frame that is not a JSON object gets no answer
            await self._submit(_ErrorJob(err))
            return
        etype = event["type"]
        if etype == "response.create" and self.flags.create_never_answered:
            return  # the defect: a create gets no answer at all
        if etype == "response.create":
            self.created = True
            settings = self.settings
            try:
                job = validate_create(
                    event, websocket=True,
                    rejected_fields=settings.profile.rejected_fields,
                    stream_rejected=self.flags.stream_true_rejected,
                    background_accepted=self.flags.background_accepted,
                    generate_supported=settings.profile.generate_false,
                    conversation_ignored=self.flags.conversation_ignored,
                    stream_id_checked=not self.flags.stream_id_not_validated,
                    lanes=settings.lanes,
                    ranges_checked=not self.flags.validates_types_only,
                )
            except ApiError as err:
                sid = event.get("stream_id") if settings.lanes else None  # without lanes all is the default lane
                # a request error belongs to the create's lane only when that lane name is valid
                lane_known = sid is None or (isinstance(sid, str) and STREAM_ID_RE.fullmatch(sid) is not None)
                prev = event.get("previous_response_id")
                evicts = (isinstance(prev, str) and err.evicts and lane_known and not self.flags.no_eviction
                          and not (self.flags.named_lane_no_eviction and sid is not None))
                job = _ErrorJob(err, sid if lane_known else None, prev if evicts else None,
                                sid if lane_known else None)
            else:
                if self.flags.flat_fields_ignored:
                    job.instructions = None  # the defect: the flat instructions field is not read
                sid = job.stream_id
                if sid is not None and sid not in self.named_lanes:
                    if len(self.named_lanes) >= MAX_NAMED_LANES + self.flags.named_limit_off_by_one:
                        job = _ErrorJob(ApiError(
                            400, "websocket_stream_limit_reached",
                            f"This WebSocket connection has reached its maximum number of distinct stream "
                            f"IDs ({MAX_NAMED_LANES}). Reuse an existing stream_id or open a new WebSocket "
                            "connection.", "stream_id", evicts=False), sid)
                    else:
                        self.named_lanes.add(sid)
        elif etype == "response.steer" and self.settings.steering:
            try:
                steer = self.steering.read(event)
            except ApiError as err:  # a malformed steer is a connection-level error
                await self._submit(_ErrorJob(err))
            else:
                await self.steering.answer(*steer)
            return
        elif etype == "response.steer":
            job = _ErrorJob(bad_request(
                "steering_not_supported",
                "response.steer is not supported by this server (profile without steering).", "type"))
        elif etype == "response.inject":
            job = _ErrorJob(bad_request(
                "unsupported_event_type",
                "response.inject belongs to the beta multi-agent surface, which this server does not implement.",
                "type"))
        else:
            if self.flags.unknown_event_ignored or (self.created and self.flags.unknown_event_ignored_after_create):
                return  # the defect: an unknown client event gets no answer
            job = _ErrorJob(bad_request(
                "unknown_event_type", f"Unknown client event type: '{etype[:100]}'.", "type"))
        await self._submit(job)

    async def on_binary(self, data: bytes) -> None:
        if self.state is not ConnState.OPEN or self.flags.silent_after_handshake:
            return
        if self.flags.binary_frame_drops_connection:
            self.state = ConnState.CLOSED  # the defect: no error event, no close frame
            await self.transport.abort()
            return
        if self.flags.binary_frame_processed:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass  # not text at all: refused as usual
            else:
                await self.on_text(text)  # the defect: handled like a text frame
                return
        await self._submit(_ErrorJob(bad_request(
            "binary_frame_not_supported",
            "Binary frames are not supported; send each client event as a JSON text frame.")))

    # -- scheduling ----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.workers > 0 or self.inline

    async def _submit(self, job) -> None:
        if self.busy and self.settings.busy_policy is BusyPolicy.REJECT:
            if isinstance(job, _ErrorJob):
                await self._run_error(job)
            else:
                settings = self.settings
                err = ApiError(
                    settings.busy_error_status, settings.busy_error_code,
                    "A response is already in flight on this connection; wait for its terminal "
                    "event before sending another response.create.", None, evicts=False,
                )
                await self._send_error(err, job.stream_id)
            return
        creates = not isinstance(job, _ErrorJob)
        if creates and self.flags.abandoned_input_carried:
            if self.busy:   # the defect: the in-flight request's input goes along
                job.input_items = list(self.last_input) + list(job.input_items)
            self.last_input = list(job.input_items)
        if creates and (self.flags.interleave_responses
                        or (self.flags.lane_jobs_overlap and job.stream_id is not None)):
            self._spawn(self._run_quietly(job))
            return
        key = None if self.flags.lanes_serialised else job.stream_id
        if (not self.paced and not self.inline and key not in self.lanes
                and (isinstance(job, _ErrorJob) or self.active < self.max_active)):
            # Fast path: the lane is idle and the turn is written in one go without waiting,
            # so running it here is indistinguishable from a worker task (and cheaper).
            self.inline = True
            create = not isinstance(job, _ErrorJob)
            if create:
                self.active += 1
            try:
                await self._run_one(job)
            finally:
                self.inline = False
                if create:
                    self._release_slot()
            if self.state is ConnState.EXPIRED and self.workers == 0:
                await self._expire_now()
            return
        self._enqueue(key, job)

    def _enqueue(self, key: str | None, job, front: bool = False) -> None:
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = _Lane()
        if front:
            lane.jobs.appendleft(job)
        else:
            lane.jobs.append(job)
        if not lane.running:
            lane.running = True
            self.workers += 1
            self._spawn(self._work(key, lane))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _work(self, key: str | None, lane: _Lane) -> None:
        """Drain one lane's FIFO; a create first waits for one of the MAX_ACTIVE slots."""
        try:
            while lane.jobs and self.state is ConnState.OPEN:
                job = lane.jobs.popleft()
                if isinstance(job, _ErrorJob):
                    await self._run_one(job)
                    continue
                if self.flags.active_limit_rejects and self.active >= MAX_ACTIVE:
                    await self._send_error(bad_request(  # the defect: refused instead of waiting
                        "too_many_active_responses", f"This connection already has {MAX_ACTIVE} active "
                        "responses.", "stream_id"), job.stream_id)
                    continue
                await self._take_slot()
                try:
                    if self.state is ConnState.OPEN:
                        await self._run_one(job)
                finally:
                    self._release_slot()
        except ConnectionError:  # the peer went away mid-turn
            self.state = ConnState.CLOSED
        finally:
            lane.running = False
            self.workers -= 1
            if self.state is not ConnState.OPEN:
                lane.jobs.clear()  # no turn starts past the lifetime limit or after close
            if not lane.jobs and self.lanes.get(key) is lane:
                del self.lanes[key]
        if self.state is ConnState.EXPIRED and self.workers == 0:
            await self._expire_now()

    async def _take_slot(self) -> None:
        if self.active < self.max_active and not self._slot_waiters:
            self.active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(fut)
        try:
            await fut  # the releasing response hands its slot over (FIFO across lanes)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release_slot()
            raise

    def _release_slot(self) -> None:
        while self._slot_waiters:
            fut = self._slot_waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on; self.active is unchanged
                return
        self.active -= 1

    async def _run_quietly(self, job) -> None:
        try:
            await self._run_one(job)
        except ConnectionError:
            pass

    async def _run_one(self, job) -> None:
        try:
            if isinstance(job, _ErrorJob):
                await self._run_error(job)
            else:
                await self._run_create(job)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # never let one turn take the connection or the server down
            log.exception("internal error while serving a turn")
            try:
                await self._send_error(ApiError(500, "server_error", "The server had an error while "
                                                "processing your request.", None, type="server_error"),
                                       getattr(job, "stream_id", None))
            except Exception:
                pass

    async def _run_error(self, job: _ErrorJob) -> None:
        if job.evict_id is not None:
            self.cache.evict(job.evict_id, job.evict_lane)
        await self._send_error(job.error, job.stream_id)

    async def _run_create(self, req) -> None:
        control = self.settings.control_events
        frame = self.framer.frame
        if control:
            await self.transport.send_many([frame(e) for e in control_before(req.model)])
        self.steering.prepend_pending(req)
        try:
            outcome = self.core.execute(req, self.owner, self.cache, self.seq_next, websocket=True)
        except ApiError as err:
            if self.flags.not_found_as_response_failed and err.code == "previous_response_not_found":
                await self._stream(self.core.refusal_as_failed(req, err, self.seq_next))
            else:
                await self._send_error(err, req.stream_id)
        else:
            if self.flags.replay_first_response:
                if self.first_events is None:
                    self.first_events = copy.deepcopy(outcome.events)
                else:   # the defect: the first result answers every later create
                    outcome.events = copy.deepcopy(self.first_events)
            if self.flags.closes_mid_response and len(outcome.events) > 2:
                # the defect: the response starts, then the socket closes without an error
                await self.transport.send_many([frame(e) for e in outcome.events[:2]])
                await self.close(1000, "")
                return
            live = self.steering.start(outcome.response["id"], req) if self.settings.steering else None
            try:
                await self._stream(outcome.events, live)
            finally:
                if live is not None:
                    self.steering.end(live, outcome)
            if live is not None:
                if live.steers and self.state is ConnState.OPEN:
                    successor = await self.steering.after_steered(live, outcome)
                    if successor is not None:
                        self._enqueue(live.lane, successor, front=True)
                live.req = None  # an ended response answers steers from its status alone
        if self.flags.named_lanes_released and req.stream_id not in self.lanes:
            self.named_lanes.discard(req.stream_id)  # the defect: an idle lane's name stops counting
        if control and self.state is ConnState.OPEN:
            await self.transport.send_many([frame(dict(e)) for e in CONTROL_AFTER])

    async def _stream(self, events: list, live: LiveResponse | None = None) -> None:
        """Send one response's events, on the schedule of the pacing settings if any.  With
        steering, numbers are finalised as they go out: a steer event sent in between takes
        the next number and shifts the rest (``live.shift``)."""
        if self.flags.sequence_per_connection:
            self.seq_next += len(events)
        frame = self.framer.frame
        send = self.transport.send
        ttft_s = self.settings.ttft_s + processing_s(events, self.settings.per_token_s)
        offsets = schedule(events, turn_delay_s=self.turn_delay_s, ttft_s=ttft_s,
                           tokens_per_second=self.settings.tokens_per_second, pause_s=self.pause_s)
        if offsets is not None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            first, count = 0, len(events)
            while first < count:
                wait = start + offsets[first] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                stop = first + 1  # events due at the same moment go out in one write
                while stop < count and offsets[stop] <= offsets[first]:
                    stop += 1
                if live is not None and live.steers and live.cut is None:
                    boundary = steered_cut(events, first)
                    if boundary is not None:  # stop at the next safe boundary (§4.9 item 47)
                        events, offsets, count = self.steering.cut(live, events, offsets, boundary)
                        stop = min(stop, count)
                batch = events[first:stop]
                if live is not None:
                    self.steering.number(live, batch)
                await self.transport.send_many([frame(e) for e in batch])
                first = stop
        elif self.flags.interleave_responses:
            for event in events:
                if live is not None:  # a steer event later continues this numbering (§4.9)
                    self.steering.number(live, [event])
                data, binary = frame(event)
                await send(data, binary)
                await asyncio.sleep(0)
        else:
            if live is not None:
                self.steering.number(live, events)
            await self.transport.send_many([frame(event) for event in events])

    async def _send_error(self, err: ApiError, stream_id: str | None = None) -> None:
        if self.flags.lane_error_untagged:
            stream_id = None
        data, binary = self.framer.frame(ws_error_event(err, self.flags, stream_id))
        await self.transport.send(data, binary)
        if self.flags.closes_after_error:
            await self.close(1000, "closing after an error")

    # -- lifetime ------------------------------------------------------------------------
    def _on_expire(self) -> None:
        self._timer = None
        if self.state is not ConnState.OPEN:
            return
        if self.flags.turn_after_limit:
            # the defect: report the limit, then neither close nor refuse later creates
            self._spawn(self._report_limit_only())
            return
        self.state = ConnState.EXPIRED
        if not self.busy:
            self._spawn(self._expire_now())

    async def _send_limit_error(self) -> None:
        # the message names the nominal limit (a test-control header only makes it come sooner)
        err = connection_limit(lifetime_phrase(self.settings.lifetime_s))
        data, binary = self.framer.frame(ws_error_event(err, self.flags, omit_param=True,
                                                        request_scoped=False))
        await self.transport.send(data, binary)

    async def _expire_now(self) -> None:
        if self.state is ConnState.CLOSED:
            return
        self.state = ConnState.CLOSED
        try:
            await self._send_limit_error()
            await self.transport.close(1000, "Connection lifetime exceeded")
        except Exception:  # the peer may be gone already
            log.debug("connection closed before the lifetime error could be sent", exc_info=True)

    def _arm_idle(self) -> None:
        if not (self.flags.idle_close_without_error or self.flags.idle_limit_error_malformed):
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(IDLE_DEFECT_S, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self.state is not ConnState.OPEN:
            return
        if self.busy:
            self._arm_idle()
            return
        self._spawn(self._end_idle())

    async def _end_idle(self) -> None:
        if self.flags.idle_limit_error_malformed:
            # the defect: a limit error with a server-error envelope (§3.10 says 400, invalid_request_error)
            err = connection_limit(lifetime_phrase(self.settings.lifetime_s))
            event = ws_error_event(err, self.flags, omit_param=True, request_scoped=False)
            event["status"] = 500
            if isinstance(event.get("error"), dict):
                event["error"]["type"] = "server_error"
            try:
                data, binary = self.framer.frame(event)
                await self.transport.send(data, binary)
            except Exception:
                log.debug("the idle limit error could not be sent", exc_info=True)
        await self.close(1000, "")  # idle-close-without-error: no error at all

    async def _report_limit_only(self) -> None:
        try:
            await self._send_limit_error()
        except Exception:
            log.debug("the lifetime error could not be sent", exc_info=True)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.state = ConnState.CLOSED
        try:
            await self.transport.close(code, reason)
        except Exception:
            log.debug("close failed", exc_info=True)

    def finish(self) -> None:
        """The socket is gone: drop timers, queued jobs and the connection-local cache."""
        self.state = ConnState.CLOSED
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for lane in self.lanes.values():
            lane.jobs.clear()
        self.steering.forget()  # queued steering is connection-local (§4.9 item 50)
        for task in list(self._tasks):
            task.cancel()
        if self.core.closed_caches is not None:  # the cache-survives-reconnect defect
            self.core.closed_caches.keep(self.owner, self.cache)
        self.cache.clear()
