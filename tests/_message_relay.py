"""Self-test helper: a relay that decodes every WebSocket message and sends it on with
websockets (a hop each side), for relays that change frames on their way: tests/_endings.py
builds its adversarial endings on it. The proxy itself relays bytes
(conformance/proxy/relay.py), which costs a client far less.

The client's handshake (headers, the ``Authorization: Bearer`` key, query, subprotocols, the
permessage-deflate offer) is replayed upstream before the client's upgrade is answered, so a
refusal reaches the client as the upstream sent it. Close frames are mirrored (code and
reason; a peer that vanishes without one is mirrored by dropping the other side's TCP
connection). Pings are answered on each hop, never forwarded. Nothing here logs a header.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Response

from conformance.proxy.observe import Observer, Watch, bearer_key
from conformance.proxy.relay import CLOSE_TIMEOUT, UPSTREAM_OPEN_TIMEOUT, socket_url, upstream_url

# handshake headers that belong to one hop, never forwarded (websockets sets its own)
HOP_HEADERS = frozenset({
    "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-accept", "content-length",
    "transfer-encoding", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "date",
})
NO_STATUS = 1005


def _forwarded(headers: Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.raw_items() if k.lower() not in HOP_HEADERS]


def _offered(headers: Headers, name: str) -> list[str]:
    return [p.strip() for v in headers.get_all(name) for p in v.split(",") if p.strip()]


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:  # noqa: BLE001
        return "unknown peer"


class MessageRelay:
    """A message relay: ``await start()``, ``await stop()``; findings go to ``observer``."""

    def __init__(self, upstream: str, observer: Observer, host: str = "127.0.0.1", port: int = 0,
                 open_timeout: float = UPSTREAM_OPEN_TIMEOUT) -> None:
        self.upstream, self.observer = socket_url(upstream), observer
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
            up = getattr(conn, "upstream", None)
            for ws in (conn, up):
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
            up = await ws_connect(url, **kwargs)
        except InvalidStatus as exc:
            r = exc.response
            self.observer.refused_handshake(peer, r.status_code, secret)
            return Response(r.status_code, r.reason_phrase, Headers(_forwarded(r.headers)), r.body or b"")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, EOFError) as exc:
            self.observer.unreachable_upstream(peer, f"{type(exc).__name__}: {exc}", secret)
            return conn.respond(502, f"proxy: upstream unreachable ({type(exc).__name__})\n")
        conn.upstream = up                               # type: ignore[attr-defined]
        conn.watch = self.observer.open(peer, secret)    # type: ignore[attr-defined]
        return None

    @staticmethod
    def _subprotocol(conn: ServerConnection, offered: Any) -> Any:
        up = getattr(conn, "upstream", None)
        chosen = up.subprotocol if up is not None else None
        return chosen if chosen in offered else None

    async def _answer(self, conn: ServerConnection, request: Any, response: Response) -> Response:
        up = getattr(conn, "upstream", None)
        if up is None:
            return response
        if response.status_code != 101:      # the client's handshake failed here: drop the upstream
            await up.close()
            watch: Watch = conn.watch            # type: ignore[attr-defined]
            watch.close(f"client handshake failed: HTTP {response.status_code}", judge=False)
            return response
        for k, v in _forwarded(up.response.headers):
            if k.lower() != "server" or "Server" not in response.headers:
                response.headers[k] = v
        return response

    # --- the relay

    async def _handle(self, client: ServerConnection) -> None:
        up = getattr(client, "upstream", None)
        if up is None:
            return
        watch: Watch = client.watch          # type: ignore[attr-defined]
        to_up = asyncio.create_task(self._pump(client, up, watch.client_frame))
        to_client = asyncio.create_task(self._pump(up, client, watch.upstream_frame))
        try:
            done, _ = await asyncio.wait({to_up, to_client}, return_when=asyncio.FIRST_COMPLETED)
            ended = (to_up if to_up in done else to_client).result()
            await self._mirror_close(watch, ended, up if ended is client else client, ended is up)
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
