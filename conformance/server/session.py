"""One WebSocket connection (spec §1.4 framing, §1.5 lifetime, §2 client events, §4.4
sequential processing, §4.1 item 4 errors keep the connection usable).

The session owns the connection-local cache and a FIFO of jobs.  The frame reader (the I/O
layer) hands every frame to ``on_text``/``on_binary`` and keeps reading while a turn
streams; jobs run one at a time in a worker task, so a ``response.create`` sent while a
response is in flight is queued and answered after it, in order.  Errors for bad frames
take their place in the same FIFO, so every answer arrives in the order of the frames
that caused it.  Under ``busy_policy="reject"`` a create that arrives while busy is
rejected at once instead.

I/O is behind the small ``Transport`` protocol (send a frame, close), implemented by
``app.py`` for aiohttp.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Protocol

from .config import BusyPolicy, lifetime_phrase
from .core import Core
from .errors import ApiError, bad_request, connection_limit, ws_error_event
from .state import ConnectionCache
from .stream import Framer
from .validate import parse_frame, validate_create

log = logging.getLogger("conformance.server")

MAX_NAMED_LANES = 32  # distinct named stream_ids per connection (§4.4 item 22)


class Transport(Protocol):
    async def send(self, data: bytes, binary: bool) -> None: ...

    async def send_many(self, frames: list) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class ConnState(enum.Enum):
    OPEN = "open"
    EXPIRED = "expired"  # lifetime reached; the limit error goes out once the worker is idle
    CLOSED = "closed"


class _ErrorJob:
    """An answer that is an error event; ``evict_id`` is the id a failed continuation names."""

    __slots__ = ("error", "stream_id", "evict_id")

    def __init__(self, error: ApiError, stream_id: str | None = None, evict_id: str | None = None) -> None:
        self.error = error
        self.stream_id = stream_id
        self.evict_id = evict_id


class Session:
    def __init__(self, core: Core, owner: str, transport: Transport, *, lifetime_s: float,
                 turn_delay_s: float = 0.0) -> None:
        self.core = core
        self.flags = core.flags
        self.settings = core.settings
        self.owner = owner
        self.transport = transport
        self.framer = Framer(core.flags)
        self.cache = ConnectionCache()
        self.jobs: deque = deque()
        self.worker: asyncio.Task | None = None
        self.inline = False  # a turn is running in the reader (fast path, no pacing)
        self.state = ConnState.OPEN
        self.turn_delay_s = turn_delay_s
        self.lifetime_s = lifetime_s
        self.seq_next = 0  # only used by the sequence-per-connection defect
        self.named_lanes: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._timer = None
        if not self.flags.never_expires:
            self._timer = asyncio.get_running_loop().call_later(lifetime_s, self._on_expire)

    # -- frames in -----------------------------------------------------------------------
    async def on_text(self, text: str) -> None:
        if self.state is not ConnState.OPEN or self.flags.silent_after_handshake:
            return
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
            s = self.settings
            try:
                job = validate_create(
                    event, websocket=True,
                    rejected_fields=s.profile.rejected_fields,
                    stream_rejected=self.flags.stream_true_rejected,
                    background_accepted=self.flags.background_accepted,
                    generate_supported=s.profile.generate_false,
                    conversation_ignored=self.flags.conversation_ignored,
                )
            except ApiError as err:
                sid = event.get("stream_id")
                prev = event.get("previous_response_id")
                job = _ErrorJob(
                    err,
                    sid if isinstance(sid, str) and err.code != "invalid_stream_id" else None,
                    prev if (isinstance(prev, str) and err.evicts and not self.flags.no_eviction) else None,
                )
            else:
                if self.flags.flat_fields_ignored:
                    job.instructions = None  # the defect: the flat instructions field is not read
                sid = job.stream_id
                if sid is not None and sid not in self.named_lanes:
                    if len(self.named_lanes) >= MAX_NAMED_LANES:
                        job = _ErrorJob(ApiError(
                            400, "websocket_stream_limit_reached",
                            f"This WebSocket connection has reached its maximum number of distinct stream "
                            f"IDs ({MAX_NAMED_LANES}). Reuse an existing stream_id or open a new WebSocket "
                            "connection.", "stream_id", evicts=False), sid)
                    else:
                        self.named_lanes.add(sid)
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
            if self.flags.unknown_event_ignored:
                return  # the defect: an unknown client event gets no answer
            job = _ErrorJob(bad_request(
                "unknown_event_type", f"Unknown client event type: '{etype[:100]}'.", "type"))
        await self._submit(job)

    async def on_binary(self, data: bytes) -> None:
        if self.state is not ConnState.OPEN or self.flags.silent_after_handshake:
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
        return self.worker is not None or self.inline

    async def _submit(self, job) -> None:
        if self.busy and self.settings.busy_policy is BusyPolicy.REJECT:
            if isinstance(job, _ErrorJob):
                await self._run_error(job)
            else:
                s = self.settings
                err = ApiError(
                    s.busy_error_status, s.busy_error_code,
                    "A response is already in flight on this connection; wait for its terminal "
                    "event before sending another response.create.", None, evicts=False,
                )
                await self._send_error(err, job.stream_id)
            return
        if self.flags.interleave_responses and not isinstance(job, _ErrorJob):
            self._spawn(self._run_quietly(job))
            return
        if self.worker is None and not self.inline and self.turn_delay_s == 0:
            # Fast path: nothing queued and the turn is written in one go without waiting, so
            # running it here is indistinguishable from a worker task (and cheaper).
            self.inline = True
            try:
                await self._run_one(job)
            finally:
                self.inline = False
            if self.state is ConnState.EXPIRED and self.worker is None:
                await self._expire_now()
            return
        self.jobs.append(job)
        if self.worker is None:
            self.worker = self._spawn(self._work())

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _work(self) -> None:
        try:
            while self.jobs and self.state is ConnState.OPEN:
                await self._run_one(self.jobs.popleft())
        except ConnectionError:  # the peer went away mid-turn
            self.state = ConnState.CLOSED
        finally:
            self.worker = None
            if self.state is not ConnState.OPEN:
                self.jobs.clear()  # no turn starts past the lifetime limit or after close
        if self.state is ConnState.EXPIRED:
            await self._expire_now()

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
            self.cache.evict(job.evict_id)
        await self._send_error(job.error, job.stream_id)

    async def _run_create(self, req) -> None:
        try:
            outcome = self.core.execute(req, self.owner, self.cache, self.seq_next)
        except ApiError as err:
            await self._send_error(err, req.stream_id)
            return
        events = outcome.events
        if self.flags.closes_mid_response and len(events) > 2:
            # the defect: the response starts, then the socket closes without an error
            await self.transport.send_many([self.framer.frame(e) for e in events[:2]])
            await self.close(1000, "")
            return
        if self.flags.sequence_per_connection:
            self.seq_next += len(events)
        frame = self.framer.frame
        send = self.transport.send
        delay = self.turn_delay_s
        if delay > 0 and len(events) > 1:
            step = delay / (len(events) - 1)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i, event in enumerate(events):
                if i:
                    wait = start + i * step - loop.time()
                    await asyncio.sleep(wait if wait > 0 else 0)
                data, binary = frame(event)
                await send(data, binary)
        elif self.flags.interleave_responses:
            for event in events:
                data, binary = frame(event)
                await send(data, binary)
                await asyncio.sleep(0)
        else:
            await self.transport.send_many([frame(event) for event in events])

    async def _send_error(self, err: ApiError, stream_id: str | None = None) -> None:
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.jobs.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.core.closed_caches is not None:  # the cache-survives-reconnect defect
            self.core.closed_caches.keep(self.owner, self.cache)
        self.cache.clear()
