"""A pass-through gateway for the Responses WebSocket mode, for the gateway sandwich
(docs/clients.md "Gateways"): ``pytest --gateway-command "python examples/gateway_relay.py"``.

It listens on CONFORMANCE_GATEWAY_LISTEN (HOST:PORT) and relays every WebSocket to its
upstream, CONFORMANCE_WS_URL (``ws://…/v1/responses``), written with websockets' asyncio API:

* the upgrade is relayed before it is answered: the client's headers go upstream (but the
  hop-by-hop ones), the client's query is added to the upstream URL, and a refusal comes back
  as the upstream sent it (status, body); an upstream that cannot be reached is HTTP 502;
* messages pass unchanged both ways (text as text, binary as binary, no size limit);
* a close on one side closes the other with the same code and reason.

The key travels as the client sent it, in the ``Authorization`` header. A gateway with keys of
its own would check the client's key and send its own upstream key (OPENAI_API_KEY) instead.
``Relay`` is the policy (``for_connection`` gives each client connection its own, for a policy
with state); tests/clients/broken_gateway.py overrides one method of it at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request, Response

HOP_BY_HOP = frozenset({"host", "connection", "upgrade", "keep-alive", "transfer-encoding", "content-length",
                        "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                        "sec-websocket-protocol", "sec-websocket-accept", "user-agent"})
UNSENDABLE = frozenset({1005, 1006, 1015})      # close codes a peer reports but never sends
OPEN_TIMEOUT_S = 10.0


class Relay:
    """What the gateway does with a connection; one method per decision."""

    # no limit on what the upstream sends: a terminal event carries the whole output and can be
    # larger than websockets' default of 1 MiB (docs/spec.md §1.4)
    upstream_max_size: int | None = None

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    def upstream_url(self, request: Request) -> str:
        """The upstream socket URL with the client's query added."""
        base = urlsplit(self.upstream)
        query = urlsplit(request.path).query
        joined = "&".join(part for part in (base.query, query) if part)
        return urlunsplit((base.scheme, base.netloc, base.path, joined, ""))

    def upstream_headers(self, request: Request) -> list[tuple[str, str]]:
        return [(name, value) for name, value in request.headers.raw_items() if name.lower() not in HOP_BY_HOP]

    def for_connection(self) -> "Relay":
        """The policy of one client connection: this one (it keeps no state); a policy that
        keeps state per connection returns a fresh object here."""
        return self

    def to_upstream(self, message: str | bytes) -> str | bytes:
        return message

    def to_client(self, message: str | bytes) -> str | bytes:
        return message


async def _pump(source, sink, transform) -> None:
    async for message in source:
        await sink.send(transform(message))


async def _close_like(peer, closed) -> None:
    """Close ``peer`` the way ``closed`` was closed."""
    code = closed.close_code
    if code is None or code in UNSENDABLE:
        peer.transport.abort() if code == 1006 else await peer.close()
        return
    await peer.close(code, closed.close_reason or "")


class Gateway:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.upstreams: dict[int, ClientConnection] = {}

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Open the upstream before answering the client: a refusal is the client's answer."""
        offered = request.headers.get_all("Sec-WebSocket-Protocol")
        protocols = [p.strip() for value in offered for p in value.split(",") if p.strip()] or None
        try:
            upstream = await connect(self.relay.upstream_url(request),
                                     additional_headers=self.relay.upstream_headers(request), subprotocols=protocols, max_size=self.relay.upstream_max_size,
                                     open_timeout=OPEN_TIMEOUT_S,
                                     user_agent_header=request.headers.get("User-Agent"), proxy=None,
                                     ping_interval=None)
        except InvalidStatus as exc:
            answer = exc.response
            headers = Headers([(k, v) for k, v in answer.headers.raw_items() if k.lower() not in HOP_BY_HOP])
            headers["Content-Length"] = str(len(answer.body or b""))
            return Response(answer.status_code, answer.reason_phrase, headers, answer.body or b"")
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return connection.respond(502, f"upstream unreachable: {type(exc).__name__}\n")
        self.upstreams[id(connection)] = upstream
        return None

    def process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        upstream = self.upstreams.get(id(connection))
        if upstream is not None and upstream.response is not None:
            for name, value in upstream.response.headers.raw_items():
                if name.lower().startswith(("x-", "openai-")):
                    response.headers[name] = value

    def select_subprotocol(self, connection: ServerConnection, offered):
        upstream = self.upstreams.get(id(connection))
        return upstream.subprotocol if upstream is not None else None

    async def handle(self, client: ServerConnection) -> None:
        upstream = self.upstreams.pop(id(client), None)
        if upstream is None:
            return
        relay = self.relay.for_connection()
        upward = asyncio.create_task(_pump(client, upstream, relay.to_upstream))
        downward = asyncio.create_task(_pump(upstream, client, relay.to_client))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
            # whichever side closed first: a send that failed on the other side ends a pump too
            if upstream.close_code is not None and client.close_code is None:
                await _close_like(client, upstream)
            else:
                await _close_like(upstream, client)
        except ConnectionClosed:
            pass
        finally:
            for task in (upward, downward):
                task.cancel()
            await asyncio.gather(upward, downward, return_exceptions=True)
            await upstream.close()


async def run(relay: Relay, listen: str, gateway_class: type[Gateway] = Gateway) -> None:
    host, _, port = listen.rpartition(":")
    gateway = gateway_class(relay)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    async with serve(gateway.handle, host or "127.0.0.1", int(port), process_request=gateway.process_request,
                     process_response=gateway.process_response, select_subprotocol=gateway.select_subprotocol,
                     max_size=None, ping_interval=None, server_header=None):
        print(f"gateway: listening on {listen}, upstream {relay.upstream}", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass


def main(relay_class: type[Relay] = Relay, gateway_class: type[Gateway] = Gateway) -> int:
    upstream = os.environ.get("CONFORMANCE_WS_URL")
    listen = os.environ.get("CONFORMANCE_GATEWAY_LISTEN", "127.0.0.1:8765")
    if not upstream:
        print("gateway: set CONFORMANCE_WS_URL to the upstream socket URL", file=sys.stderr)
        return 2
    asyncio.run(run(relay_class(upstream), listen, gateway_class))
    return 0


if __name__ == "__main__":
    sys.exit(main())
