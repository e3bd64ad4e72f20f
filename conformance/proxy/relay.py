"""The proxy's I/O: a WebSocket server that opens one upstream socket per client and relays
messages both ways unchanged, telling the ``Observer`` (observe.py) about every frame.

Transport facts from §1 of docs/spec.md: the client's handshake (its headers, the
``Authorization: Bearer`` key, its query, its subprotocols and its permessage-deflate offer) is
replayed upstream before the client's upgrade is answered, so a refusal reaches the client as
the upstream sent it (status, headers, body) and the negotiated subprotocol is the upstream's.
Text and binary messages are forwarded as they arrived (same type, same bytes); close frames are
mirrored (code and reason; a peer that vanishes without one is mirrored by dropping the other
side's TCP connection). Pings are answered on each hop, never forwarded. Nothing here logs a
header. ``check_upstream`` is the start-up check (TCP, and TLS for wss, with a deadline): the
CLI warns when it fails and serves anyway, since the upstream may come up later.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Response

from conformance.proxy.observe import Observer, Watch, bearer_key
from conformance.target import TargetError, derive_urls

# handshake headers that belong to one hop, never forwarded (websockets sets its own)
HOP_HEADERS = frozenset({
    "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-accept", "content-length",
    "transfer-encoding", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "date",
})
UPSTREAM_OPEN_TIMEOUT = 15.0
UPSTREAM_CHECK_TIMEOUT = 3.0     # the start-up reachability check: a warning, never a wait
CLOSE_TIMEOUT = 5.0
NO_STATUS = 1005


def _forwarded(headers: Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.raw_items() if k.lower() not in HOP_HEADERS]


def _offered(headers: Headers, name: str) -> list[str]:
    return [p.strip() for v in headers.get_all(name) for p in v.split(",") if p.strip()]


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


def upstream_url(upstream: str, client_path: str) -> str:
    """The upstream URL with the client's query parameters added (the path stays the upstream's)."""
    parts = urlsplit(upstream)
    query = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(urlsplit(client_path).query,
                                                                        keep_blank_values=True)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def socket_url(upstream: str) -> str:
    """The upstream's socket URL from any form ``--target`` accepts (``ws(s)://`` as is, an
    ``http(s)://`` API base gets ``/responses``, §1.1); ``ValueError`` naming ``--upstream``."""
    try:
        url = derive_urls(upstream)[0]
        urlsplit(url).port            # raises on a port that is not a number
    except TargetError as exc:
        raise ValueError(str(exc).replace("--target ", "--upstream ", 1)) from None
    except ValueError:
        raise ValueError(f"--upstream {upstream!r}: the port is not a number (1-65535)") from None
    return url


async def check_upstream(upstream: str, timeout: float = UPSTREAM_CHECK_TIMEOUT) -> str | None:
    """Can a connection reach the upstream now? Name lookup, TCP connect and, for wss, the TLS
    handshake, within ``timeout`` seconds; no WebSocket handshake (the proxy has no key of its
    own). None when it can, else one line saying what failed."""
    parts = urlsplit(upstream)
    secure = parts.scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return f"the upstream's port is not a number ({parts.netloc})"
    where = f"{parts.hostname}:{port}"
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, ssl=True if secure else None,
                                    server_hostname=parts.hostname if secure else None), timeout)
    except asyncio.TimeoutError:
        return f"{where} did not accept a connection within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return f"{where} cannot be reached ({type(exc).__name__}: {exc})"
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (asyncio.TimeoutError, OSError):
        pass
    return None


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:  # noqa: BLE001
        return "unknown peer"


class Relay:
    """The proxy server: ``await start()``, ``await stop()``; findings go to ``observer``."""

    def __init__(self, upstream: str, observer: Observer, host: str = "127.0.0.1", port: int = 0,
                 open_timeout: float = UPSTREAM_OPEN_TIMEOUT) -> None:
        upstream = socket_url(upstream)
        if not urlsplit(upstream).hostname:
            raise ValueError(f"--upstream {upstream!r}: no host")
        self.upstream, self.observer = upstream, observer
        self.host, self.port, self.open_timeout = host, port, open_timeout
        self._server: Any = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{urlsplit(self.upstream).path}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._open_upstream,
            process_response=self._answer, select_subprotocol=self._subprotocol, compression="deflate",
            max_size=None, ping_interval=None, close_timeout=CLOSE_TIMEOUT, server_header=None,
            open_timeout=self.open_timeout + 5)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for conn in list(self._server.connections):
            upstream = getattr(conn, "upstream", None)
            for ws in (conn, upstream):
                if ws is not None and ws.transport is not None:
                    ws.transport.abort()
        try:
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            pass      # a handler still winding down: the report is written from what was seen
        self._server = None

    # --- handshake: the upstream first, then the client's answer

    async def _open_upstream(self, conn: ServerConnection, request: Any) -> Response | None:
        headers = request.headers
        peer, secret = _peer(conn), bearer_key(headers)
        offered = _offered(headers, "Sec-WebSocket-Protocol")
        deflate = any(e.split(";")[0].strip() == "permessage-deflate"
                      for e in _offered(headers, "Sec-WebSocket-Extensions"))
        url = upstream_url(self.upstream, request.path)
        kwargs: dict[str, Any] = dict(
            additional_headers=_forwarded(headers), subprotocols=offered or None,
            compression="deflate" if deflate else None, open_timeout=self.open_timeout, max_size=None,
            ping_interval=None, close_timeout=CLOSE_TIMEOUT, user_agent_header=None)
        if _is_loopback(urlsplit(url).hostname):
            kwargs["proxy"] = None    # never route loopback through an environment proxy
        try:
            upstream = await ws_connect(url, **kwargs)
        except InvalidStatus as exc:
            refusal = exc.response
            self.observer.refused_handshake(peer, refusal.status_code, secret)
            return Response(refusal.status_code, refusal.reason_phrase, Headers(_forwarded(refusal.headers)),
                            refusal.body or b"")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, EOFError) as exc:
            self.observer.unreachable_upstream(peer, f"{type(exc).__name__}: {exc}", secret)
            return conn.respond(502, f"proxy: upstream unreachable ({type(exc).__name__})\n")
        conn.upstream = upstream                               # type: ignore[attr-defined]
        conn.watch = self.observer.open(peer, secret)    # type: ignore[attr-defined]
        return None

    @staticmethod
    def _subprotocol(conn: ServerConnection, offered: Any) -> Any:
        upstream = getattr(conn, "upstream", None)
        chosen = upstream.subprotocol if upstream is not None else None
        return chosen if chosen in offered else None

    async def _answer(self, conn: ServerConnection, request: Any, response: Response) -> Response:
        upstream = getattr(conn, "upstream", None)
        if upstream is None:
            return response
        if response.status_code != 101:      # the client's handshake failed here: drop the upstream
            await upstream.close()
            watch: Watch = conn.watch            # type: ignore[attr-defined]
            watch.close(f"client handshake failed: HTTP {response.status_code}", judge=False)
            return response
        for k, v in _forwarded(upstream.response.headers):
            if k.lower() != "server" or "Server" not in response.headers:
                response.headers[k] = v
        return response

    # --- the relay

    async def _handle(self, client: ServerConnection) -> None:
        upstream = getattr(client, "upstream", None)
        if upstream is None:
            return
        watch: Watch = client.watch          # type: ignore[attr-defined]
        to_up = asyncio.create_task(self._pump(client, upstream, watch.client_frame))
        to_client = asyncio.create_task(self._pump(upstream, client, watch.upstream_frame))
        try:
            done, _ = await asyncio.wait({to_up, to_client}, return_when=asyncio.FIRST_COMPLETED)
            ended = (to_up if to_up in done else to_client).result()
            await self._mirror_close(watch, ended, upstream if ended is client else client, ended is upstream)
        finally:    # also when the proxy stops: no pump outlives its connection
            for t in (to_up, to_client):
                t.cancel()
            await asyncio.gather(to_up, to_client, return_exceptions=True)

    @staticmethod
    async def _mirror_close(watch: Watch, ended: Any, other: Any, by_upstream: bool) -> None:
        """``ended`` closed (or vanished): tell the watch, and do the same to ``other``."""
        who = "upstream" if by_upstream else "client"
        rcvd = ended.protocol.close_rcvd
        judge = True if by_upstream else None
        try:
            if rcvd is not None:
                watch.close(f"{who} closed: code {rcvd.code} reason {rcvd.reason!r}", judge=judge)
                await other.close(None if rcvd.code == NO_STATUS else rcvd.code, rcvd.reason)
            else:
                watch.close(f"{who} disconnected without a close frame", judge=judge)
                if other.transport is not None:
                    other.transport.abort()
        except Exception as exc:  # noqa: BLE001 - a half-dead socket must not crash the proxy
            watch.note(f"closing the {'client' if by_upstream else 'upstream'} side: {type(exc).__name__}")

    @staticmethod
    async def _pump(src: Any, dst: Any, observe: Any) -> Any:
        """Relay src's messages to dst until one side ends; returns the side that ended."""
        try:
            async for message in src:
                observe(message)
                try:
                    await dst.send(message)
                except ConnectionClosed:
                    return dst
        except ConnectionClosed:
            pass
        return src


class ProxyThread:
    """A ``Relay`` in a background thread with its own event loop (for tests and embedding)."""

    def __init__(self, upstream: str, observer: Observer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.relay = Relay(upstream, observer, host, port)
        self.observer = observer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    url = property(lambda self: self.relay.url)
    port = property(lambda self: self.relay.port)

    def base_url(self, path: str = "/v1") -> str:
        return f"http://{self.relay.host}:{self.relay.port}{path}"

    def start(self, timeout: float = 10.0) -> "ProxyThread":
        self._thread = threading.Thread(target=self._run, name="conformance-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("proxy did not start in time")
        if self._error is not None:
            raise RuntimeError(f"proxy failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._stopped = asyncio.Event()
            try:
                loop.run_until_complete(self.relay.start())
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(self.relay.stop())
        finally:
            pending = asyncio.all_tasks(loop)    # pumps of aborted sockets: let them end first
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            # `async for` over a socket is an async generator: finalise it on this loop, not in GC
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return                                   # stopped already (stop is idempotent)
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)

    def __enter__(self) -> "ProxyThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
