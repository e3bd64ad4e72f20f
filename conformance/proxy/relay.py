"""The proxy's I/O: it relays the bytes of each connection both ways as they arrive and gives
a copy to the ``Observer`` (observe.py), frame by frame.

Transport facts from §1 of docs/spec.md. The client's upgrade request goes upstream as the
client wrote it (handshake.py: every header, the ``Authorization: Bearer`` key, the
``Sec-WebSocket-*`` offers; the client's query added to the upstream URL's, ``Host`` the
upstream's) and the upstream's answer comes back unchanged: a 101 opens the relay, a refusal
reaches the client as the upstream sent it (status, headers, body). A plain HTTP request (the
HTTP API beside the socket) goes upstream with its own path and is relayed both ways, unobserved. An upstream that cannot be
reached, or does not answer with an HTTP head within the open timeout, gets the client a 502.
From then on every chunk read from one side is written to the other at once, one write per
chunk, and only then cut into frames (frames.py) for the observer, so the client and the
upstream exchange exactly what they sent: frames, fragments, pings, compression and close
frames are theirs. A side that closes its TCP connection after its close frame has the other
side's closed after what is buffered for it; one that vanishes without a close frame has the
other's dropped (its peer sees 1006). Writes that back up pause reading from the other side.
Nothing here logs a header. ``check_upstream`` is the start-up check (TCP, and TLS for wss,
with a deadline): the CLI warns when it fails and serves anyway, since the upstream may come up
later.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conformance.proxy import handshake
from conformance.proxy.frames import FrameReader, Kind, deflate_params
from conformance.proxy.observe import Observer, Watch, bearer_key
from conformance.target import TargetError, derive_urls

UPSTREAM_OPEN_TIMEOUT = 15.0
UPSTREAM_CHECK_TIMEOUT = 3.0     # the start-up reachability check: a warning, never a wait
CLOSE_TIMEOUT = 5.0
REFUSAL_LINGER = 5.0             # a refusal's body without Content-Length: relayed until EOF or this


def upstream_url(upstream: str, client_path: str) -> str:
    """The upstream URL with the client's query parameters added (the path stays the upstream's)."""
    up = urlsplit(upstream)
    query = parse_qsl(up.query, keep_blank_values=True) + parse_qsl(urlsplit(client_path).query,
                                                                     keep_blank_values=True)
    return urlunsplit((up.scheme, up.netloc, up.path, urlencode(query), ""))


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
    if not urlsplit(url).hostname:
        raise ValueError(f"--upstream {url!r}: no host")
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


class Phase(enum.Enum):
    REQUEST = "reading the client's upgrade request"
    UPSTREAM = "waiting for the upstream's answer"
    RELAY = "relaying"
    PLAIN = "relaying a plain HTTP exchange, unobserved"
    REFUSED = "relaying the upstream's refusal"
    OVER = "over"


class _End(asyncio.Protocol):
    """One socket of a ``Link``: the client's or the upstream's."""

    def __init__(self, link: "Link", from_client: bool) -> None:
        self.link, self.from_client = link, from_client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.from_client:
            self.link.client_made(transport)

    def data_received(self, data: bytes) -> None:
        self.link.received(self.from_client, data)

    def eof_received(self) -> None:
        self.link.ended(self.from_client)          # returning None closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.ended(self.from_client)

    def pause_writing(self) -> None:
        self.link.pause(reading_from_client=not self.from_client)

    def resume_writing(self) -> None:
        self.link.resume(reading_from_client=not self.from_client)


class Link:
    """One client connection: its upgrade, then the relay of its bytes (see the module docstring)."""

    def __init__(self, relay: "Relay") -> None:
        self.relay, self.observer = relay, relay.observer
        self.phase = Phase.REQUEST
        self.client: Any = None
        self.upstream: Any = None
        self.peer, self.secret = "unknown peer", ""
        self.watch: Watch | None = None
        self.plain = False                     # no upgrade asked: relayed, not observed
        self.readers: dict[bool, FrameReader] = {}
        self._head = bytearray()
        self._head_rest = b""                  # client bytes after its request head
        self._task: asyncio.Task | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal_left: int | None = None
        self._gone: set[bool] = set()

    # --- the upgrade

    def client_made(self, transport: Any) -> None:
        self.client = transport
        try:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = f"{host}:{port}"
        except Exception:  # noqa: BLE001 - a peer without an address is still served
            pass
        self._deadline = asyncio.get_running_loop().call_later(self.relay.open_timeout + 5, self._too_slow)

    def _too_slow(self) -> None:
        if self.phase is Phase.REQUEST:
            self._abort()
        elif self.phase is Phase.UPSTREAM:
            self._unreachable(f"TimeoutError: no answer within {self.relay.open_timeout:g} s")

    def received(self, from_client: bool, data: bytes) -> None:
        if self.phase is Phase.RELAY:
            if from_client:
                self.upstream.write(data)
            else:
                self.client.write(data)
            if self.watch is not None and not self.watch.closed:
                self._observe(from_client, data)
        elif self.phase is Phase.PLAIN:
            (self.upstream if from_client else self.client).write(data)
        elif self.phase is Phase.REQUEST and from_client:
            self._request_bytes(data)
        elif self.phase is Phase.UPSTREAM:
            if from_client:                       # early frames: after the request, in order
                if self.upstream is not None:
                    self.upstream.write(data)
                else:
                    self._head_rest += data
            else:
                self._response_bytes(data)
        elif self.phase is Phase.REFUSED and not from_client:
            self._refusal_bytes(data)

    def _request_bytes(self, data: bytes) -> None:
        self._head += data
        try:
            split = handshake.split_head(self._head)
            if split is None:
                return
            head, self._head_rest = split
            request = handshake.parse(head, request=True)
        except handshake.HeadError as exc:
            self.client.write(handshake.plain_response(400, "Bad Request", f"proxy: {exc}\n"))
            self._close_both()
            return
        self._head = bytearray()
        self.secret = bearer_key(request.headers)
        self.plain = not handshake.is_upgrade(request)
        self.phase = Phase.UPSTREAM
        self.client.pause_reading()
        self._task = asyncio.ensure_future(self._connect(request))
        self.relay.tasks.add(self._task)
        self._task.add_done_callback(self.relay.tasks.discard)

    async def _connect(self, request: handshake.Head) -> None:
        parts = urlsplit(self.relay.upstream)
        secure = parts.scheme == "wss"
        loop = asyncio.get_running_loop()
        try:
            _, end = await asyncio.wait_for(loop.create_connection(
                lambda: _End(self, False), parts.hostname, parts.port or (443 if secure else 80),
                ssl=self.relay.tls() if secure else None,
                server_hostname=parts.hostname if secure else None), self.relay.open_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - DNS, TCP, TLS: the client gets a 502
            self._unreachable(f"{type(exc).__name__}: {exc}")
            return
        if self.phase is not Phase.UPSTREAM:         # the client left meanwhile
            end.transport.abort()
            return
        self.upstream = end.transport
        self.upstream.write(handshake.upstream_request(request, self.relay.upstream) + self._head_rest)
        self._head_rest = b""
        if self.plain:
            if self._deadline is not None:
                self._deadline.cancel()
            self.phase = Phase.PLAIN
            self.client.resume_reading()

    def _response_bytes(self, data: bytes) -> None:
        self._head += data
        try:
            split = handshake.split_head(self._head)
            if split is None:
                return
            head, rest = split
            response = handshake.parse(head, request=False)
        except handshake.HeadError as exc:
            self._unreachable(f"InvalidHandshake: {exc}")
            return
        self._head = bytearray()
        if self._deadline is not None:
            self._deadline.cancel()
        status = int(response.first[1])
        self.client.write(bytes(head) + handshake.END)
        if status != 101:
            self.observer.refused_handshake(self.peer, status, self.secret)
            self.phase = Phase.REFUSED
            self._refusal_left = handshake.body_length(response)
            if self._refusal_left is None:
                self._deadline = asyncio.get_running_loop().call_later(REFUSAL_LINGER, self._close_both)
            self._refusal_bytes(rest)
            return
        extensions = response.values("Sec-WebSocket-Extensions")
        self.watch = self.observer.open(self.peer, self.secret)
        for from_client in (True, False):
            params = deflate_params(extensions, from_client)
            if isinstance(params, str):
                self.watch.note(f"{params} negotiated: frames relayed, not observed")
                self.watch.close("not observed", judge=False)
                params = None
            self.readers[from_client] = FrameReader(masked=from_client, deflate=params)
        self.phase = Phase.RELAY
        self.client.resume_reading()
        if rest:
            self.received(False, rest)

    def _refusal_bytes(self, data: bytes) -> None:
        left = self._refusal_left
        if left is not None:
            data = data[:left]
            self._refusal_left = left - len(data)
        if data:
            self.client.write(data)
        if self._refusal_left == 0:
            self._close_both()

    def _unreachable(self, detail: str) -> None:
        if self.phase is not Phase.UPSTREAM:
            return
        if not self.plain:
            self.observer.unreachable_upstream(self.peer, detail, self.secret)
        name = detail.split(":", 1)[0]
        self.client.write(handshake.plain_response(502, "Bad Gateway", f"proxy: upstream unreachable ({name})\n"))
        self._close_both()

    # --- the relay

    def _observe(self, from_client: bool, data: bytes) -> None:
        watch = self.watch
        frame = watch.client_frame if from_client else watch.upstream_frame
        for kind, payload in self.readers[from_client].feed(data):
            if kind is Kind.TEXT or kind is Kind.BINARY:
                frame(payload)
            elif kind is Kind.CLOSE:
                code, reason = payload
                who = "client" if from_client else "upstream"
                watch.close(f"{who} closed: code {code} reason {reason!r}", judge=None if from_client else True)
                return
            else:
                watch.unread(from_client, kind is Kind.TOO_BIG, payload)

    def pause(self, reading_from_client: bool) -> None:
        side = self.client if reading_from_client else self.upstream
        if side is not None and self.phase in (Phase.RELAY, Phase.PLAIN):
            side.pause_reading()

    def resume(self, reading_from_client: bool) -> None:
        side = self.client if reading_from_client else self.upstream
        if side is not None and self.phase in (Phase.RELAY, Phase.PLAIN):
            side.resume_reading()

    def ended(self, from_client: bool) -> None:
        """One side's TCP connection ended (EOF, reset, or closed by us)."""
        if from_client in self._gone:
            return
        self._gone.add(from_client)
        if self.phase is Phase.RELAY:
            watch = self.watch
            if watch is not None and not watch.closed:
                who = "client" if from_client else "upstream"
                watch.close(f"{who} disconnected without a close frame", judge=None if from_client else True)
            # closed after what is buffered for it: without a close frame before, its peer sees 1006
            other = self.upstream if from_client else self.client
            other.close()
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, other.abort)   # a peer that reads nothing
            self._over()
        elif self.phase is Phase.PLAIN or (self.phase is Phase.REFUSED and not from_client):
            self._close_both()
        elif self.phase is Phase.UPSTREAM and not from_client:
            self._unreachable("EOFError: the upstream closed the connection before answering")
        elif self.phase is not Phase.OVER:
            self._abort()

    def stop(self) -> None:
        """The proxy stops: nothing more is judged, both sockets are dropped."""
        if self.watch is not None:
            self.watch.close("proxy stopped with the connection open", judge=False)
        self._abort()

    def _close_both(self) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.close()
        self._over()

    def _abort(self) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.abort()
        self._over()

    def _over(self) -> None:
        self.phase = Phase.OVER
        if self._deadline is not None:
            self._deadline.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.relay.links.discard(self)


class Relay:
    """The proxy server: ``await start()``, ``await stop()``; findings go to ``observer``."""

    def __init__(self, upstream: str, observer: Observer, host: str = "127.0.0.1", port: int = 0,
                 open_timeout: float = UPSTREAM_OPEN_TIMEOUT) -> None:
        self.upstream, self.observer = socket_url(upstream), observer
        self.host, self.port, self.open_timeout = host, port, open_timeout
        self.links: set[Link] = set()
        self.tasks: set[asyncio.Task] = set()
        self._server: Any = None
        self._tls: ssl.SSLContext | None = None

    def tls(self) -> ssl.SSLContext:
        """The TLS context of wss upstreams (system CAs), made once: loading the CAs takes a while."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{urlsplit(self.upstream).path}"

    def _accept(self) -> _End:
        link = Link(self)
        self.links.add(link)
        return _End(link, True)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for link in list(self.links):
            link.stop()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        self._server = None


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
