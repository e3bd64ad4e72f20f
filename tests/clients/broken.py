"""Deliberately broken contract clients for the client kill matrix
(tests/test_client_kill_matrix.py): ``python tests/clients/broken.py BREAK``.

Without a break (``correct``) this is a correct contract client (docs/clients.md) written on
the bare ``websockets`` client; each BREAK changes one behaviour, so that one client clause
fails and no other. Every wait is bounded: a "hanging" break hangs only until the scenario's
deadline kills it. It claims lanes and steering: with CONFORMANCE_CLIENT_LANES=K it holds K
conversations at once on one connection, one named lane each (``run_lanes``); with
CONFORMANCE_CLIENT_STEER=K it steers its second request's response K times once it begins.
"""

from __future__ import annotations

import json
import os
import sys
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus, PayloadTooBig
from websockets.sync.client import connect

BREAKS = ("correct", "trailing-garbage", "nested-create", "stream-field", "key-in-url", "drops-chain",
          "full-history", "no-tool-output", "socket-per-turn", "stops-early", "loops-on-dead-id", "no-reconnect",
          "tight-reconnect", "ignores-error", "ignores-failed", "unknown-breaks", "caps-1mib", "impatient",
          "pipelines", "stale-store-false", "reads-abandoned", "forgets-lost-request", "bad-lane-name",
          "too-many-lanes", "serial-lanes", "crossed-lanes", "steers-finished", "slow-steer")
BREAK = sys.argv[1] if len(sys.argv) > 1 else "correct"
URL = os.environ["CONFORMANCE_WS_URL"]
KEY = os.environ["OPENAI_API_KEY"]
TURNS = int(os.environ.get("CONFORMANCE_CLIENT_TURNS", "4"))
MODEL = os.environ.get("CONFORMANCE_MODEL", "gpt-5.6")
STORE = os.environ.get("CONFORMANCE_CLIENT_STORE", "true") != "false"
PAUSE_S = float(os.environ.get("CONFORMANCE_CLIENT_PAUSE_S", "0"))
ABANDON = int(os.environ.get("CONFORMANCE_CLIENT_ABANDON", "0"))     # abandon this request after its first event
LANES = int(os.environ.get("CONFORMANCE_CLIENT_LANES", "0"))     # conversations at once, one lane each
STEER = int(os.environ.get("CONFORMANCE_CLIENT_STEER", "0"))     # steers of the second request's response
STEERED_REQUEST = 2
TOO_MANY_LANES = 17     # too-many-lanes: one more request in flight than a connection may carry (16)
SLOW_STEER_S = 1.0      # slow-steer (no break): steers this long after response.created, past the first token
IMPATIENT_S = 1.0       # impatient: how long it waits for a response's first event
TERMINAL = ("response.completed", "response.failed", "response.incomplete")
BUSY = "response_already_in_flight"
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}, "strict": True}
KNOWN_PREFIXES = ("response.", "error", "codex.", "rate_limits")
CLOSED = (ConnectionClosed, InvalidStatus, OSError)


class GaveUp(Exception):
    pass


def user(turn: int) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"Turn {turn}: weather in Paris?"}]}


class Client:
    def __init__(self) -> None:
        self.ws = None
        self.previous = None
        self.history: list = []
        self.pending = [user(1)]
        self.done = 0
        self.tried_nested = False
        self.sent = 0               # response.create frames sent
        self.abandoned: set = set()     # ids of responses it stopped waiting for

    def open(self):
        attempts = 0
        while self.ws is None:
            try:
                url = URL + (f"?api_key={KEY}" if BREAK == "key-in-url" else "")
                self.ws = connect(url, additional_headers={"Authorization": f"Bearer {KEY}"},
                                  max_size=2**20 if BREAK == "caps-1mib" else None, open_timeout=5,
                                  close_timeout=1)
            except CLOSED as exc:
                attempts += 1
                limit = 30 if BREAK == "tight-reconnect" else 3
                if attempts > limit:
                    raise GaveUp(f"no connection after {attempts} attempts: {exc}") from None
                time.sleep(0 if BREAK == "tight-reconnect" else 0.2 * 2 ** (attempts - 1))
        return self.ws

    def drop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close()
        if BREAK == "forgets-lost-request" and self.previous:
            self.pending = [user(self.done + 1)]    # as if the request on the closed socket had been answered
        if not STORE and self.previous and BREAK != "stale-store-false":
            # the connection's cache held the store=false chain: a new chain with the full context
            self.previous, self.pending, self.history = None, self.history + self.pending, []

    def request(self) -> dict:
        ws = self.open()
        create = {"type": "response.create", "model": MODEL, "store": STORE, "tools": [TOOL], "input": self.pending}
        if BREAK == "full-history" and self.previous:
            create["input"] = self.history + self.pending
        if self.previous and BREAK != "drops-chain":
            create["previous_response_id"] = self.previous
        if BREAK == "drops-chain" and self.previous:
            create["input"] = self.history + self.pending
        if BREAK == "stream-field":
            create["stream"] = True
        if BREAK == "nested-create" and not self.tried_nested:
            # the Realtime API's shape; refused (no model at the top level), then the flat one
            self.tried_nested = True
            create = {"type": "response.create", "response": {k: v for k, v in create.items() if k != "type"}}
        ws.send(json.dumps(create))
        self.sent += 1
        if BREAK == "pipelines":
            ws.send(json.dumps(create))     # the same request again at once, without waiting
        first = True
        target, accepted = None, 0      # the response it steered and how many steers were accepted
        while True:
            if BREAK == "impatient" and first:
                try:
                    event = json.loads(ws.recv(timeout=IMPATIENT_S))
                except TimeoutError:
                    raise ConnectionError("no first event in time: abandoned") from None
            else:
                event = json.loads(ws.recv(timeout=30))
            first = False
            etype = event.get("type", "")
            if etype == "response.created" and STEER and self.sent == STEERED_REQUEST and target is None:
                target = event["response"]["id"]
                if BREAK != "steers-finished":
                    self.steer(ws, target)
            accepted += etype == "response.steer.accepted"
            if (etype in TERMINAL and event["response"]["id"] == target and accepted
                    and not any(i.get("type") == "function_call" for i in event["response"].get("output") or ())):
                continue        # the steered response ended: the successor the server starts answers this request
            if etype in TERMINAL and event["response"]["id"] == target and BREAK == "steers-finished":
                self.steer(ws, target)      # too late: the response has ended
            if etype == "response.created" and self.sent == ABANDON:
                self.abandoned.add(event["response"]["id"])
                return {"type": "abandoned"}        # a user pressing stop: the request is sent again
            if (etype in ("response.completed", "response.failed", "response.incomplete")
                    and event["response"]["id"] in self.abandoned and BREAK != "reads-abandoned"):
                continue        # the rest of the abandoned response: not this request's reply
            if BREAK == "unknown-breaks" and not etype.startswith(KNOWN_PREFIXES):
                raise GaveUp(f"unexpected event {etype}")
            if etype in ("response.completed", "response.failed", "response.incomplete"):
                return event
            if etype == "error":
                code = (event.get("error") or {}).get("code")
                if BREAK == "ignores-error" and code not in ("previous_response_not_found",
                                                             "websocket_connection_limit_reached"):
                    continue        # waits for a terminal event that never comes
                if BREAK == "pipelines" and code == BUSY:
                    continue        # its duplicate was refused; the first runs
                return event

    def steer(self, ws, target: str) -> None:
        if BREAK == "slow-steer":
            time.sleep(SLOW_STEER_S)        # a user typing: correct, as long as the response still runs
        for number in range(STEER):
            ws.send(json.dumps({"type": "response.steer", "previous_response_id": target,
                                "input": [{"role": "user", "content": f"Steer {number + 1}: answer in Celsius."}]}))

    def run(self) -> None:
        lost = 0
        turns = TURNS - 1 if BREAK == "stops-early" else TURNS
        while self.done < turns:
            try:
                event = self.request()
            except CLOSED as exc:
                if BREAK == "no-reconnect":
                    raise GaveUp(f"connection closed: {exc}") from None
                lost += 1
                if lost > 3:
                    raise GaveUp(f"connection kept closing: {exc}") from None
                self.drop()
                time.sleep(0.2 * 2 ** (lost - 1))
                continue
            except PayloadTooBig as exc:
                raise GaveUp(f"frame too big: {exc}") from None
            lost = 0
            etype = event["type"]
            if etype == "abandoned":
                continue
            if etype == "error":
                code = (event.get("error") or {}).get("code")
                if code == "previous_response_not_found":
                    if BREAK != "loops-on-dead-id":
                        self.previous, self.pending, self.history = None, self.history + self.pending, []
                    continue
                if code == "websocket_connection_limit_reached":
                    self.drop()
                    continue
                if code == "missing_required_parameter" and BREAK == "nested-create":
                    continue        # its nested create was refused: send the same turn flat
                raise GaveUp(f"error {code}")
            if etype != "response.completed" and BREAK != "ignores-failed":
                raise GaveUp(etype)
            response = event["response"]
            output = response.get("output") or []
            self.history += self.pending + output
            self.previous = response["id"]
            self.done += 1
            calls = [i for i in output if i.get("type") == "function_call"]
            outputs = [{"type": "function_call_output", "call_id": c["call_id"], "output": '{"temp_c": 18}'}
                       for c in calls]
            self.pending = outputs if outputs and BREAK != "no-tool-output" else [user(self.done + 1)]
            if BREAK == "socket-per-turn":
                self.drop()
            if PAUSE_S and self.done < turns:
                time.sleep(PAUSE_S)     # a user or a tool taking its time: the socket idles
        if BREAK == "trailing-garbage" and self.ws is not None:
            self.ws.send("bye")


class Lane:
    """One conversation of the lanes scenario, on its own named lane."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.previous = None
        self.pending = [user(1)]
        self.done = 0


def run_lanes(client: Client) -> None:
    """K conversations at once over one connection, one named lane each: the first create of
    every lane goes out at once, and each lane's next create when its own answer arrived."""
    ws = client.open()
    count = TOO_MANY_LANES if BREAK == "too-many-lanes" else LANES
    lanes = [Lane(f"lane-{number}") for number in range(count)]
    if BREAK == "bad-lane-name":
        lanes[0].name = "lane 0"        # a space: refused with invalid_stream_id, then sent as lane-0
    by_name = {lane.name: lane for lane in lanes}
    finished: list = []                 # (lane, response id) in the order the responses completed

    def send(lane: Lane) -> None:
        create = {"type": "response.create", "model": MODEL, "store": STORE, "tools": [TOOL],
                  "stream_id": lane.name, "input": lane.pending}
        if lane.previous:
            create["previous_response_id"] = lane.previous
            others = [rid for owner, rid in finished if owner is not lane]
            if BREAK == "crossed-lanes" and lane.done == 2 and others:
                create["previous_response_id"] = others[-1]     # another lane's latest response
        ws.send(json.dumps(create))

    for lane in lanes[:1] if BREAK == "serial-lanes" else lanes:
        send(lane)
    while any(lane.done < TURNS for lane in lanes):
        event = json.loads(ws.recv(timeout=30))
        etype = event.get("type", "")
        if etype == "error":
            code = (event.get("error") or {}).get("code")
            if code == "invalid_stream_id" and BREAK == "bad-lane-name" and lanes[0].name == "lane 0":
                lanes[0].name = "lane-0"
                by_name["lane-0"] = lanes[0]
                send(lanes[0])
                continue
            raise GaveUp(f"error {code}")
        if etype not in TERMINAL:
            continue
        lane = by_name.get(event.get("stream_id"))
        if lane is None or etype != "response.completed":
            raise GaveUp(f"{etype} on lane {event.get('stream_id')!r}")
        response = event["response"]
        output = response.get("output") or []
        lane.previous = response["id"]
        lane.done += 1
        finished.append((lane, response["id"]))
        calls = [i for i in output if i.get("type") == "function_call"]
        lane.pending = [{"type": "function_call_output", "call_id": c["call_id"], "output": '{"temp_c": 18}'}
                        for c in calls] or [user(lane.done + 1)]
        if lane.done < TURNS:
            send(lane)
        elif BREAK == "serial-lanes" and lanes.index(lane) + 1 < len(lanes):
            send(lanes[lanes.index(lane) + 1])      # the next lane only once this one is done
    client.done = TURNS


def main() -> int:
    if BREAK not in BREAKS:
        print(f"unknown break {BREAK!r}; one of {', '.join(BREAKS)}", file=sys.stderr)
        return 2
    client = Client()
    try:
        if LANES:
            run_lanes(client)
        else:
            client.run()
    except GaveUp as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            client.drop()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
