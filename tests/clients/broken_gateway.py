"""Deliberately broken gateways for the sandwich self-tests (tests/test_sandwich.py):
``python tests/clients/broken_gateway.py BREAK``. Each is examples/gateway_relay.py with one
behaviour changed, so that one client clause fails on its upstream side:

* ``key-in-url``: the upstream URL also carries the client's key as ``?api_key=`` (the header
  stays, so the upstream accepts it): CLIENT-KEY-IN-HEADER;
* ``full-history``: each continuation is sent upstream with the output of the response it
  continues put back in front of its input: CLIENT-NEW-INPUT-ONLY (a SHOULD);
* ``new-chain``: each continuation it can rebuild is sent upstream as a new chain: without
  ``previous_response_id``, with the whole history of its chain in front of its input (what
  a gateway that keeps the conversation itself does): CLIENT-CONTINUES-CHAIN, and the
  response it relays back no longer echoes the id (PREVIOUS-ID-ECHOED);
* ``frame-cap``: it reads the upstream with websockets' default limit of 1 MiB per message, so
  a terminal event over 1 MiB (``--gateway-upstream-scenario large-terminal``) fails its
  upstream socket (close 1009), and the client's with it: CLIENT-READS-LARGE-FRAMES;
* ``known-types``: it passes on only the server events it knows (``response.*`` and
  ``error``); on any other type it stops relaying that connection and closes its upstream
  normally (1000), so under ``--gateway-upstream-scenario unknown-events`` its client's turn
  hangs: CLIENT-TOLERATES-UNKNOWN-EVENTS;
* ``impatient``: when a create's response has not begun 1.5 s after it went upstream, it
  sends the create again on the same socket (a gateway with a first-token timeout and a
  retry), so under ``--gateway-upstream-scenario slow-first-token`` the upstream gets a resend
  before the slow response's first event: CLIENT-WAITS-FOR-SLOW-RESPONSE;
* ``never-listens``: it prints a line and sleeps without listening (the run is NOT-USABLE);
* ``port-taken``: asks tests/clients/port_thief.py (in the suite's process) to take the port
  it was given and then tries to listen there, and fails, as a gateway that lost the race for
  its port; once the thief has taken one port, it is a plain relay (with the thief's ``always``
  mode, it fails on every port);
* ``slow-upgrade``: not broken, slow: it takes 0.8 s before it opens its upstream socket for a
  client's upgrade (a gateway on a loaded machine), so the upstream's clock for the
  connection starts late in the client's handshake; the server cases must still pass (a
  deadline counted from the start of the client's handshake fails LIFETIME-LIMIT-ERROR);
* ``dies``: a correct relay that exits 3 once its sixth connection opens (the run goes on
  against nothing and ends in bounded time; the certificate says the gateway exited).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import gateway_relay  # noqa: E402 - the example, from the repository's examples/

BREAK = sys.argv[1] if len(sys.argv) > 1 else ""


class KeyInUrl(gateway_relay.Relay):
    def upstream_url(self, request):
        url = super().upstream_url(request)
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return url + ("&" if "?" in url else "?") + "api_key=" + quote(key)


class FullHistory(gateway_relay.Relay):
    """Keeps the output of the last completed response of each connection... of all of them:
    a relay does not know connections in ``to_upstream``, so it keeps them by response id."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.outputs: dict[str, list] = {}

    def to_client(self, message):
        if isinstance(message, str) and '"response.completed"' in message[:200]:
            try:
                response = json.loads(message).get("response") or {}
                self.outputs[response.get("id")] = list(response.get("output") or [])
            except ValueError:
                pass
        return message

    def to_upstream(self, message):
        try:
            event = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            return message
        if not isinstance(event, dict) or event.get("type") != "response.create":
            return message
        history = self.outputs.get(event.get("previous_response_id"))
        if not history:
            return message
        given = event.get("input")
        given = [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        event["input"] = history + given
        return json.dumps(event)


def _as_items(given) -> list:
    return [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given or [])


def _parsed(message) -> dict | None:
    try:
        event = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class NewChain(gateway_relay.Relay):
    """Per connection (``for_connection``), the history of each response it saw complete: the
    whole input it was made from and its output. A continuation of such a response goes
    upstream as a new chain; one of a response it does not know (another connection's, an
    unknown id) passes unchanged, so that the server's own answers stay what the cases expect.
    It forgets what the server's connection-local cache would: the chain of a continuation
    that failed (and names an id the upstream cannot know in its place, so that the answer is
    the server's own previous_response_not_found), and a store=false response once another one
    completed (the cache keeps the latest). Named lanes (``stream_id``), and a connection once
    it steered (the pending steer belongs to the upstream's chain), pass unchanged."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.history: dict[str, tuple[list, bool]] = {}     # response id -> (items, store)
        self.waiting: list[tuple[list | None, str | None, bool]] = []   # creates not yet answered
        self.answering: dict[str, tuple[list | None, str | None, bool]] = {}    # response id -> its create
        self.evicted: set[str] = set()
        self.steered = False

    def for_connection(self) -> "NewChain":
        return NewChain(self.upstream)

    def to_upstream(self, message):
        event = _parsed(message)
        self.steered = self.steered or (event or {}).get("type") == "response.steer"
        if event is None or event.get("type") != "response.create" or event.get("stream_id") or self.steered:
            return message
        previous, given = event.get("previous_response_id"), _as_items(event.get("input"))
        if previous in self.evicted:
            event["previous_response_id"] = "resp_evicted_by_the_gateway"
            self.waiting.append((None, previous, True))
            return json.dumps(event)
        store = event.get("store") is not False
        if previous in self.history:
            items = self.history[previous][0] + given
            del event["previous_response_id"]
            event["input"] = items
            self.waiting.append((items, previous, store))
            return json.dumps(event)
        self.waiting.append((None if previous else given, previous, store))
        return message

    def to_client(self, message):
        if not isinstance(message, str) or '"stream_id"' in message[:300]:
            return message
        kind = message[:120]
        if not any(f'"{name}"' in kind for name in ("response.created", "response.completed", "response.failed",
                                                        "response.incomplete", "error")):
            return message
        event = _parsed(message) or {}
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        rid = response.get("id")
        if event.get("type") == "response.created" and self.waiting:
            self.answering[rid] = self.waiting.pop(0)
        elif event.get("type") == "response.completed" and rid in self.answering:
            items, _, store = self.answering.pop(rid)
            self.history = {key: value for key, value in self.history.items() if value[1]}
            if items is not None:
                self.history[rid] = (items + list(response.get("output") or []), store)
        elif event.get("type") == "response.failed" and rid in self.answering:
            self._evict(self.answering.pop(rid))
        elif event.get("type") == "error" and self.waiting and not self.answering:
            self._evict(self.waiting.pop(0))        # the create at the front was refused
        return message

    def _evict(self, create: tuple) -> None:
        items, previous, _ = create
        if items is not None and previous is not None:     # a continuation it rewrote failed
            self.history.pop(previous, None)
            self.evicted.add(previous)


class FrameCap(gateway_relay.Relay):
    upstream_max_size = 2**20


class UnknownEventType(ValueError):
    """A server event type this gateway does not know."""


class KnownTypes(gateway_relay.Relay):
    def to_client(self, message):
        kind = str((_parsed(message) or {}).get("type", ""))
        if kind != "error" and not kind.startswith("response."):
            raise UnknownEventType(kind)        # ends the relay of this connection
        return message


class Impatient(gateway_relay.Gateway):
    """The relay's connection handling with a first-event timeout: the create is sent again."""

    patience_s = 1.5

    async def handle(self, client):
        upstream = self.upstreams.pop(id(client), None)
        if upstream is None:
            return
        answered = asyncio.Event()

        async def resend_unless_answered(message) -> None:
            try:
                await asyncio.wait_for(answered.wait(), self.patience_s)
            except TimeoutError:
                await upstream.send(message)

        async def upward() -> None:
            async for message in client:
                await upstream.send(message)
                if isinstance(message, str) and '"response.create"' in message:
                    answered.clear()
                    watchers.add(asyncio.create_task(resend_unless_answered(message)))

        async def downward() -> None:
            async for message in upstream:
                answered.set()
                await client.send(message)

        watchers: set = set()
        pumps = {asyncio.create_task(upward()), asyncio.create_task(downward())}
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps | watchers:
                task.cancel()
            await asyncio.gather(*pumps, *watchers, return_exceptions=True)
            await upstream.close()


class SlowUpgrade(gateway_relay.Gateway):
    delay_s = 0.8

    async def process_request(self, connection, request):
        await asyncio.sleep(self.delay_s)
        return await super().process_request(connection, request)


class Dies(gateway_relay.Relay):
    opened = 0

    def upstream_url(self, request):
        Dies.opened += 1
        if Dies.opened > 5:
            print("gateway: exiting on purpose", flush=True)
            os._exit(3)
        return super().upstream_url(request)


def lose_the_port_race() -> None:
    """Have tests/clients/port_thief.py take the port this gateway was given, and wait for it."""
    mode, _, folder = os.environ.get("CONFORMANCE_TEST_PORT_THIEF", "").partition(":")
    if mode not in ("race", "always") or not folder:
        return      # the thief took the port before this gateway started, or there is none
    thief = Path(folder)
    port = os.environ["CONFORMANCE_GATEWAY_LISTEN"].rpartition(":")[2]
    if (thief / "done").exists() and mode != "always":
        return      # the thief took a port already: this start is a plain relay
    (thief / "go").write_text(port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if (thief / "done").read_text().strip() == port:
                return
        except OSError:
            pass
        time.sleep(0.02)


RELAYS = {"key-in-url": KeyInUrl, "full-history": FullHistory, "new-chain": NewChain, "frame-cap": FrameCap,
          "known-types": KnownTypes, "dies": Dies}
GATEWAYS = {"impatient": Impatient, "slow-upgrade": SlowUpgrade}

if __name__ == "__main__":
    if BREAK == "never-listens":
        print("gateway: starting, but never listening", flush=True)
        time.sleep(3600)
        sys.exit(0)
    if BREAK == "port-taken":
        lose_the_port_race()
        sys.exit(gateway_relay.main())
    if BREAK in GATEWAYS:
        sys.exit(gateway_relay.main(gateway_relay.Relay, GATEWAYS[BREAK]))
    if BREAK not in RELAYS:
        print(f"broken_gateway.py: give one of {', '.join([*RELAYS, *GATEWAYS, 'never-listens', 'port-taken'])}",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(gateway_relay.main(RELAYS[BREAK]))
