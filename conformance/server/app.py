"""aiohttp wiring: one port serving the WebSocket upgrade and HTTP on the same path
(spec §1.1-1.3, §4.1 items 1-2), plus ``ReferenceServer`` and ``ServerThread``.

Routes: ``GET /v1/responses`` (WebSocket upgrade; 426 without upgrade headers),
``POST /v1/responses`` (JSON or SSE when ``stream:true``), ``POST /v1/responses/compact``,
``GET``/``DELETE /v1/responses/{id}``.  Authentication is ``Authorization: Bearer KEY``,
checked before the upgrade (401 with an OpenAI-style error body otherwise).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import threading
import weakref

from aiohttp import WSMsgType, web

from .config import ServerConfig, Settings
from .core import Core
from .errors import ApiError, bad_request, http_error_body
from .session import Session
from .stream import dumps, processing_s
from .validate import parse_body, validate_create

log = logging.getLogger("conformance.server")

LIFETIME_HEADER = "X-Conformance-Lifetime"
TURN_DELAY_HEADER = "X-Conformance-Turn-Delay-Ms"
PAUSE_HEADER = "X-Conformance-Pause-Ms"
_SESSIONS = web.AppKey("sessions", weakref.WeakSet)
_CORE = web.AppKey("core", Core)
_HOOK = web.AppKey("scenario_hook", object)


def _json_response(body, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def _error_response(err: ApiError) -> web.Response:
    return _json_response(http_error_body(err), err.status)


def _authenticate(request: web.Request, core: Core) -> str:
    """The key's tenant (the owner of what this client stores, §4.5 item 35a); raises the
    401 to send."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if core.flags.no_auth:
        return key or "anonymous"
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "invalid_api_key",
                       "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", None)
    keys = core.settings.api_keys
    if keys and key not in keys:
        raise ApiError(401, "invalid_api_key", "Incorrect API key provided.", None)
    return core.settings.tenant_of(key)


def _route(handler):
    """Every route: authenticate, then ``handler(request, core, owner)``; an ``ApiError``
    raised before a response is started becomes its HTTP error body."""

    @functools.wraps(handler)
    async def route(request: web.Request) -> web.StreamResponse:
        core: Core = request.app[_CORE]
        try:
            return await handler(request, core, _authenticate(request, core))
        except ApiError as err:
            return _error_response(err)

    return route


def _frame_header(length: int, binary: bool) -> bytes:
    """RFC 6455 header of an unmasked, unfragmented, uncompressed server frame."""
    first = 0x82 if binary else 0x81
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class _AiohttpTransport:
    """Frames out through aiohttp.  ``send_many`` writes a whole turn with one
    ``transport.write`` (one syscall instead of one per event) when aiohttp's writer exposes
    its transport, and falls back to ``send_frame`` per frame otherwise."""

    __slots__ = ("ws", "_transport", "_protocol", "_limit")

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        self.ws = websocket
        writer = getattr(websocket, "_writer", None)
        self._transport = getattr(writer, "transport", None)
        self._protocol = getattr(writer, "protocol", None)
        self._limit = 64 * 1024
        if self._transport is None or not hasattr(self._protocol, "_drain_helper"):
            self._transport = None

    async def send(self, data: bytes, binary: bool) -> None:
        await self.ws.send_frame(data, WSMsgType.BINARY if binary else WSMsgType.TEXT)

    async def send_many(self, frames: list) -> None:
        transport = self._transport
        if transport is None:
            for data, binary in frames:
                await self.send(data, binary)
            return
        if transport.is_closing() or self.ws.closed:
            raise ConnectionResetError("Cannot write to closing transport")
        parts = []
        for data, binary in frames:
            parts.append(_frame_header(len(data), binary))
            parts.append(data)
        transport.write(b"".join(parts))
        if transport.get_write_buffer_size() > self._limit:
            await self._protocol._drain_helper()

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame (the binary-frame-drops-connection defect)."""
        transport = getattr(getattr(self.ws, "_writer", None), "transport", None)
        if transport is not None:
            transport.abort()
        else:
            await self.ws.close(code=1011)


def _float_header(request: web.Request, name: str) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


@_route
async def handle_get_root(request: web.Request, core: Core, owner: str) -> web.StreamResponse:
    if core.flags.requires_model_query and not request.query.get("model"):
        raise bad_request("missing_required_parameter", "Missing required query parameter: 'model'.", "model")
    hook = request.app.get(_HOOK)
    watch = hook.connect(request) if hook is not None else None   # client mode; may raise ApiError
    max_frame = core.settings.max_frame_bytes
    # the oversize-frame-dropped defect reads frames of any size and drops the big ones itself
    websocket = web.WebSocketResponse(compress=False,
                                      max_msg_size=0 if core.flags.oversize_frame_dropped else max_frame,
                                      autoping=True, autoclose=True)
    if not websocket.can_prepare(request).ok:
        raise ApiError(426, "websocket_upgrade_required",
                       "GET /v1/responses is the WebSocket endpoint; send an upgrade request.", None)
    await websocket.prepare(request)
    lifetime = core.settings.lifetime_s
    delay = pause = 0.0
    if core.settings.test_controls:
        asked_lifetime = _float_header(request, LIFETIME_HEADER)
        if asked_lifetime is not None:
            lifetime = min(lifetime, asked_lifetime) if asked_lifetime > 0 else 0.001
        delay_ms = _float_header(request, TURN_DELAY_HEADER)
        if delay_ms is not None:
            delay = delay_ms / 1000.0
        pause_ms = _float_header(request, PAUSE_HEADER)
        if pause_ms is not None:
            pause = pause_ms / 1000.0
    transport = _AiohttpTransport(websocket)
    session = Session(core, owner, transport if watch is None else watch.wrap(transport),
                      lifetime_s=lifetime, turn_delay_s=delay, pause_s=pause)
    sessions = request.app[_SESSIONS]
    sessions.add(session)
    try:
        while True:
            msg = await websocket.receive()
            mtype = msg.type
            if mtype in (WSMsgType.TEXT, WSMsgType.BINARY) and len(msg.data) > max_frame:
                continue  # only with the oversize-frame-dropped defect: aiohttp closes 1009 otherwise
            try:
                if watch is not None and await watch.received(mtype, msg.data):
                    continue    # the scenario answered this frame itself
                if mtype is WSMsgType.TEXT:
                    await session.on_text(msg.data)
                elif mtype is WSMsgType.BINARY:
                    await session.on_binary(msg.data)
                elif mtype in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
            except ConnectionError:
                break
            except Exception:  # a frame must never take the connection handler down
                log.exception("error while handling a client frame")
    finally:
        session.finish()
        sessions.discard(session)
        if watch is not None:
            watch.ended(websocket.close_code)
        if not websocket.closed:
            try:
                await websocket.close()
            except Exception:
                pass
    return websocket


@_route
async def handle_post_create(request: web.Request, core: Core, owner: str) -> web.StreamResponse:
    req = validate_create(parse_body(await request.read()), websocket=False)
    outcome = core.execute(req, owner, None)
    cost = processing_s(outcome.events, core.settings.per_token_s)   # --per-token-us
    if not req.stream:
        if cost:
            await asyncio.sleep(cost)
        return _json_response(outcome.response)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache"})
    await resp.prepare(request)
    chunks = []
    for index, event in enumerate(outcome.events):
        chunks.append(b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n")
        if cost and event["type"] == "response.in_progress" and index + 1 < len(outcome.events):
            await resp.write(b"".join(chunks))    # created and in_progress first, then the cost
            chunks = []
            await asyncio.sleep(cost)
    await resp.write(b"".join(chunks))
    await resp.write_eof()
    return resp


@_route
async def handle_compact(request: web.Request, core: Core, owner: str) -> web.Response:
    return _json_response(core.compact(parse_body(await request.read()), owner))


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, None, f"Response with id '{response_id}' not found.", None)


@_route
async def handle_get_one(request: web.Request, core: Core, owner: str) -> web.Response:
    rid = request.match_info["response_id"]
    response = core.get_stored(rid, owner)
    if response is None:
        raise _not_found(rid)
    return _json_response(response)


@_route
async def handle_delete_one(request: web.Request, core: Core, owner: str) -> web.Response:
    rid = request.match_info["response_id"]
    if core.settings.zdr or not core.store.delete(rid, owner, any_owner=core.flags.tenant_delete_across):
        raise _not_found(rid)
    return _json_response({"id": rid, "object": "response", "deleted": True})


async def _on_shutdown(app: web.Application) -> None:
    for session in list(app[_SESSIONS]):
        await session.close(1001, "server shutting down")


def build_app(core: Core, scenario_hook: object | None = None) -> web.Application:
    app = web.Application(client_max_size=core.settings.max_frame_bytes)
    app[_CORE] = core
    if scenario_hook is not None:
        app[_HOOK] = scenario_hook
    app[_SESSIONS] = weakref.WeakSet()
    app.router.add_get("/v1/responses", handle_get_root, allow_head=False)
    app.router.add_post("/v1/responses", handle_post_create)
    app.router.add_post("/v1/responses/compact", handle_compact)
    app.router.add_get("/v1/responses/{response_id}", handle_get_one, allow_head=False)
    app.router.add_delete("/v1/responses/{response_id}", handle_delete_one)
    app.on_shutdown.append(_on_shutdown)
    return app


class ReferenceServer:
    """The reference server on an (ephemeral by default) loopback port, in the running loop."""

    def __init__(self, config: ServerConfig | None = None, **overrides) -> None:
        if config is None:
            config = ServerConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a ServerConfig or keyword overrides, not both")
        self.config = config
        self.settings: Settings = config.resolve()  # raises on unknown defects/profiles
        self.core: Core | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def base_url(self) -> str:
        return f"http://{self._url_host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/v1/responses"

    @property
    def _url_host(self) -> str:
        host = self.settings.host
        return f"[{host}]" if ":" in host else host

    async def start(self) -> "ReferenceServer":
        logging.getLogger("conformance.server").setLevel(self.settings.log_level)
        self.core = Core(self.settings)
        app = build_app(self.core, self.config.scenario_hook)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, backlog=2048)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("reference server listening on %s", self.ws_url)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "ReferenceServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


class ServerThread:
    """``ReferenceServer`` in a background thread with its own event loop."""

    def __init__(self, config: ServerConfig | None = None, **overrides) -> None:
        self.server = ReferenceServer(config, **overrides)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    port = property(lambda self: self.server.port)
    base_url = property(lambda self: self.server.base_url)
    ws_url = property(lambda self: self.server.ws_url)
    settings = property(lambda self: self.server.settings)
    config = property(lambda self: self.server.config)

    def start(self, timeout: float = 10.0) -> "ServerThread":
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="reference-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("reference server did not start in time")
        if self._error is not None:
            raise RuntimeError("reference server failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._stop = asyncio.Event()
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # report to start()
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(self.server.stop())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
