"""Self-test helper: a relay with adversarial endings between the suite and a standalone
reference server (issue 21). It is ``MessageRelay`` (tests/_message_relay.py: the
handshake, refusals and closes are mirrored as they are) with one change to the frames:

==================  =========================================================================
ending              what the client gets instead of the reference server's stream
==================  =========================================================================
``drop``            every terminal event is dropped
``rewrite-id``      the terminal event's ``response.id`` names another response
``twice``           the terminal event is sent twice
``delay``           the terminal event (and what follows it) is held back ``delay_s`` seconds
``errors-only``     errors pass at once; a generating response sends ``response.created`` and
                    then nothing more
``rate-limit``      the first ``response.create`` of every fourth connection is answered with
                    a 429 ``rate_limit_exceeded`` error event ("try again in 1s") and not sent on
==================  =========================================================================

Test-only: nothing under ``conformance/`` imports it.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from conformance.monitor import TERMINAL_TYPES
from conformance.monitor.events import valid_lane_name
from _message_relay import MessageRelay
from conformance.proxy.relay import ProxyThread

ENDINGS = ("drop", "rewrite-id", "twice", "delay", "errors-only", "rate-limit")
RATE_LIMIT_EVERY = 4
RATE_LIMIT_EVENT = {"type": "error", "status": 429,
                    "error": {"type": "requests", "code": "rate_limit_exceeded", "param": None,
                              "message": "Rate limit reached for requests. Please try again in 1s."}}


class _Watch:
    """The proxy's per-connection observer, reduced to nothing: these relays judge nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class _Observer:
    def open(self, *a: Any, **k: Any) -> _Watch:
        return _Watch()

    def refused_handshake(self, *a: Any, **k: Any) -> None:
        pass

    def unreachable_upstream(self, *a: Any, **k: Any) -> None:
        pass


def _parse(message: Any) -> dict | None:
    if not isinstance(message, str):
        return None
    try:
        ev = json.loads(message)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


class EndingRelay(MessageRelay):
    """``MessageRelay`` whose upstream-to-client frames pass through ``ending``."""

    def __init__(self, upstream: str, ending: str, delay_s: float = 0.0) -> None:
        if ending not in ENDINGS:
            raise ValueError(f"unknown ending {ending!r}: one of {', '.join(ENDINGS)}")
        super().__init__(upstream, _Observer())   # type: ignore[arg-type]
        self.ending, self.delay_s = ending, delay_s
        self.connections = 0
        self.refused = 0          # 429 events sent (rate-limit)
        self.inner_port = 0
        self._splices: set = set()

    # --- a byte-level front: WebSocket upgrades go to the relay, plain HTTP to the upstream

    async def start(self) -> None:
        await super().start()
        self.inner_port = self.port
        self._front = await asyncio.start_server(self._splice, self.host, 0)
        self.port = self._front.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        front = getattr(self, "_front", None)
        if front is not None:
            front.close()
            for task in list(self._splices):
                task.cancel()
        await super().stop()

    async def _splice(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._splices.add(asyncio.current_task())
        out: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            up = urlsplit(self.upstream)
            port = self.inner_port if b"upgrade: websocket" in head.lower() else up.port
            r2, out = await asyncio.open_connection(self.host if port == self.inner_port else up.hostname, port)
            out.write(head)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, out), pipe(r2, writer), return_exceptions=True)
        except Exception:  # noqa: BLE001 - a dropped connection ends its splice
            pass
        finally:
            for w in (writer, out):
                if w is not None:
                    w.close()
            self._splices.discard(asyncio.current_task())

    # --- the WebSocket relay with its ending

    async def _handle(self, client: Any) -> None:
        up = getattr(client, "upstream", None)
        if up is None:
            return
        self.connections += 1
        state = {"number": self.connections, "creates": 0}
        to_up = asyncio.create_task(self._client_side(client, up, state))
        to_client = asyncio.create_task(self._upstream_side(up, client, state))
        try:
            done, _ = await asyncio.wait({to_up, to_client}, return_when=asyncio.FIRST_COMPLETED)
            ended = (to_up if to_up in done else to_client).result()
            await self._mirror_close(client.watch, ended, up if ended is client else client, ended is up)
        finally:
            for t in (to_up, to_client):
                t.cancel()
            await asyncio.gather(to_up, to_client, return_exceptions=True)

    async def _client_side(self, src: Any, dst: Any, state: dict) -> Any:
        try:
            async for message in src:
                ev = _parse(message)
                if ev is not None and ev.get("type") == "response.create":
                    state["creates"] += 1
                    if self.ending == "rate-limit" and state["creates"] == 1 \
                            and state["number"] % RATE_LIMIT_EVERY == 0:
                        self.refused += 1
                        # a lane-tagged create's error carries its stream_id (clause LANE-TAGGED), as a server's would
                        # (only a valid lane name: a refused create with stream_id "" gets no lane)
                        lane = {"stream_id": ev["stream_id"]} if valid_lane_name(ev.get("stream_id")) else {}
                        await src.send(json.dumps(RATE_LIMIT_EVENT | lane))
                        continue
                try:
                    await dst.send(message)
                except ConnectionClosed:
                    return dst       # the upstream closed (e.g. 1009 on a big frame): mirror its close
        except Exception:  # noqa: BLE001 - either side closing ends the pump
            pass
        return src

    async def _upstream_side(self, src: Any, dst: Any, state: dict) -> Any:
        held: list[Any] = []          # delay: the terminal event and what follows it
        release: asyncio.Task | None = None

        async def later(frames: list) -> None:
            await asyncio.sleep(self.delay_s)
            for m in frames:
                await dst.send(m)

        try:
            async for message in src:
                ev = _parse(message)
                typ = ev.get("type") if ev else None
                resp = ev.get("response") if ev else None
                rid = resp.get("id") if isinstance(resp, dict) else None
                if self.ending == "errors-only" and isinstance(typ, str) and typ.startswith("response.") \
                        and typ != "response.created":
                    continue                 # a generating response starts, and nothing more comes
                if typ in TERMINAL_TYPES:
                    if self.ending == "drop":
                        continue
                    if self.ending == "rewrite-id" and isinstance(resp, dict):
                        ev["response"] = dict(resp, id=f"{rid}_rewritten")
                        message = json.dumps(ev)
                    if self.ending == "twice":
                        await dst.send(message)
                    if self.ending == "delay":
                        if release is not None and not release.done():
                            await release
                        held = [message]
                        release = asyncio.create_task(later(held))
                        continue
                if release is not None and not release.done():
                    held.append(message)      # keep the order behind a held terminal event
                    continue
                await dst.send(message)
        except Exception:  # noqa: BLE001
            pass
        if release is not None:
            release.cancel()
        return src


class EndingProxy(ProxyThread):
    def __init__(self, upstream: str, ending: str, delay_s: float = 0.0) -> None:
        super().__init__(upstream, _Observer())   # type: ignore[arg-type]
        self.relay = EndingRelay(upstream, ending, delay_s)


@contextmanager
def ending_relay(upstream: str, ending: str, delay_s: float = 0.0) -> Iterator[EndingRelay]:
    """A started relay in front of ``upstream`` (``relay.url`` is the suite's --target)."""
    proxy = EndingProxy(upstream, ending, delay_s).start()
    try:
        yield proxy.relay
    finally:
        proxy.stop()
