"""A contract client (docs/clients.md) written with the official Python SDK's WebSocket mode,
``client.responses.connect()``.

It holds a conversation of CONFORMANCE_CLIENT_TURNS requests over one WebSocket: each
request continues the last response with ``previous_response_id`` and sends only the new
input (the answer to the function calls it got, or the next user message). What it does when
the server does something else:

* ``previous_response_not_found``: it starts a new chain carrying the whole conversation it
  kept, and never names the dead id again;
* the connection closes (lifetime limit, idle close, a close in the middle of a response): it
  opens a new connection, at most CONFORMANCE_CLIENT_RETRIES times in a row, waiting
  CONFORMANCE_CLIENT_BACKOFF_S seconds, doubled each time, and sends the unanswered request
  again;
* ``response.failed``, ``response.incomplete`` or any other ``error``: it gives up, prints the
  reason on stderr and exits 1.

With CONFORMANCE_CLIENT_STORE=false it sends store=false, and after a new connection it starts
a new chain with the whole conversation (the closed connection's cache held the old one).
CONFORMANCE_CLIENT_PAUSE_S makes it wait that long between a response and its next request.
CONFORMANCE_CLIENT_ABANDON=N makes it abandon its Nth request after the first event (a user
pressing stop) and send it again; the abandoned response's remaining events, which still
arrive first, are told apart by their response id and skipped.

It claims lanes and steering (``--client-claims lanes,steering``). With
CONFORMANCE_CLIENT_LANES=K it holds K conversations at once on one connection, each on its own
named lane (the SDK's typed ``stream_id`` of ``response.create``), and tells their events apart
by ``stream_id``. With CONFORMANCE_CLIENT_STEER=K it steers its second request's response K
times once it begins (the SDK's typed ``conn.response.steer``); when the steered response ends
without function calls, the successor the server starts on its own answers the request.

The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY; the key travels in the Authorization header.
"""

from __future__ import annotations

import json
import os
import sys
import time

import openai

TURNS = int(os.environ.get("CONFORMANCE_CLIENT_TURNS", "4"))
MODEL = os.environ.get("CONFORMANCE_MODEL", "gpt-5.6")
RETRIES = int(os.environ.get("CONFORMANCE_CLIENT_RETRIES", "3"))
BACKOFF_S = float(os.environ.get("CONFORMANCE_CLIENT_BACKOFF_S", "0.2"))
STORE = os.environ.get("CONFORMANCE_CLIENT_STORE", "true") != "false"
PAUSE_S = float(os.environ.get("CONFORMANCE_CLIENT_PAUSE_S", "0"))
ABANDON = int(os.environ.get("CONFORMANCE_CLIENT_ABANDON", "0"))
LANES = int(os.environ.get("CONFORMANCE_CLIENT_LANES", "0"))
STEER = int(os.environ.get("CONFORMANCE_CLIENT_STEER", "0"))
STEERED_REQUEST = 2     # the request whose response it steers
WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False},
    "strict": True,
}
# the connection is gone: open another one and send the request again
CLOSED = (openai.APIConnectionError, ConnectionError, OSError)
try:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    CLOSED = CLOSED + (ConnectionClosed, InvalidStatus)
except ImportError:  # pragma: no cover - openai[realtime] brings websockets
    pass
TERMINAL = ("response.completed", "response.failed", "response.incomplete")


class GaveUp(Exception):
    """The conversation cannot go on: the caller sees why (stderr) and the exit code."""


def user_message(turn: int) -> dict:
    return {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": f"Turn {turn}: what is the weather in Paris?"}]}


def tool_outputs(output: list) -> list[dict]:
    """The answer to each function call of a response."""
    return [{"type": "function_call_output", "call_id": item.call_id,
             "output": json.dumps({"city": json.loads(item.arguments or "{}").get("city"), "temp_c": 18})}
            for item in output if item.type == "function_call"]


def as_input(item) -> dict:
    """An output item as an input item of a later request (the context kept for recovery)."""
    return item.to_dict(exclude_none=True) if hasattr(item, "to_dict") else dict(item)


class Conversation:
    def __init__(self) -> None:
        self.client = openai.OpenAI(max_retries=0, timeout=30)
        self.manager = None
        self.conn = None
        self.previous: str | None = None
        self.history: list[dict] = []       # every item of the conversation so far
        self.pending: list[dict] = [user_message(1)]
        self.done = 0
        self.sent = 0                       # requests sent
        self.abandoned: set[str] = set()    # ids of responses it stopped waiting for

    def connection(self):
        failures = 0
        while self.conn is None:
            try:
                self.manager = self.client.responses.connect()
                self.conn = self.manager.enter()
            except CLOSED as exc:
                failures += 1
                if failures > RETRIES:
                    raise GaveUp(f"could not reconnect after {RETRIES} attempt(s): {exc}") from None
                time.sleep(BACKOFF_S * 2 ** (failures - 1))
        return self.conn

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is gone either way
                pass

    def reconnect(self) -> None:
        """Leave the connection; the next request opens a new one. A store=false chain lived in
        the old connection's cache only: the next request starts a new chain with everything."""
        self.drop()
        if not STORE and self.previous:
            self.new_chain()

    def new_chain(self) -> None:
        self.previous = None
        self.pending = self.history + self.pending
        self.history = []

    def request(self):
        """Send the pending input; return the terminal event or the error event."""
        conn = self.connection()
        params = {"model": MODEL, "store": STORE, "tools": [WEATHER_TOOL], "input": self.pending}
        if self.previous:
            params["previous_response_id"] = self.previous
        conn.response.create(**params)
        self.sent += 1
        target, accepted = None, 0      # the response it steered, and the steers accepted
        for event in conn:
            if event.type == "response.created" and STEER and self.sent == STEERED_REQUEST and target is None:
                target = event.response.id
                for number in range(STEER):
                    conn.response.steer(previous_response_id=target, input=[
                        {"role": "user", "content": f"Steer {number + 1}: answer in Celsius."}])
            if event.type == "response.steer.accepted":
                accepted += 1
            if (event.type in TERMINAL and event.response.id == target and accepted
                    and not any(item.type == "function_call" for item in event.response.output or ())):
                continue    # steered: the successor the server starts on its own answers this request
            if event.type == "response.created" and self.sent == ABANDON:
                self.abandoned.add(event.response.id)
                return None         # stopped waiting: the caller sends the request again
            if event.type in TERMINAL and event.response.id in self.abandoned:
                continue            # the abandoned response ends: not this request's reply
            if event.type in TERMINAL:
                return event
            if event.type == "error":
                return event
        raise ConnectionError("the connection closed before the response ended")

    def run(self) -> None:
        lost = 0
        while self.done < TURNS:
            try:
                event = self.request()
            except CLOSED as exc:
                lost += 1
                if lost > RETRIES:
                    raise GaveUp(f"the connection kept closing: {exc}") from None
                self.reconnect()
                time.sleep(BACKOFF_S * 2 ** (lost - 1))
                continue
            lost = 0
            if event is None:
                continue
            if event.type == "error":
                self.on_error(event)
                continue
            if event.type != "response.completed":
                reason = event.response.error or event.response.incomplete_details
                raise GaveUp(f"{event.type}: {reason}")
            response = event.response
            self.history += self.pending + [as_input(item) for item in response.output]
            self.previous = response.id
            self.done += 1
            self.pending = tool_outputs(response.output) or [user_message(self.done + 1)]
            if PAUSE_S and self.done < TURNS:
                time.sleep(PAUSE_S)     # a user or a tool taking its time: the socket idles

    def on_error(self, event) -> None:
        error = event.error
        code = getattr(error, "code", None)
        if code == "previous_response_not_found":
            # the chain is gone: a new chain that carries the whole conversation
            self.new_chain()
            return
        if code == "websocket_connection_limit_reached":
            self.reconnect()    # the request was not run: send it again on a new connection
            return
        raise GaveUp(f"error {code}: {getattr(error, 'message', '')}")


def run_lanes(conversation: Conversation) -> None:
    """LANES conversations at once over one connection, one named lane each: every lane's first
    request goes out at once, each lane's next one when its own answer arrived."""
    conn = conversation.connection()
    lanes = {f"lane-{number}": {"previous": None, "pending": [user_message(1)], "done": 0}
             for number in range(LANES)}

    def send(name: str) -> None:
        lane = lanes[name]
        params = {"model": MODEL, "store": STORE, "tools": [WEATHER_TOOL], "input": lane["pending"],
                  "stream_id": name}
        if lane["previous"]:
            params["previous_response_id"] = lane["previous"]
        conn.response.create(**params)

    for name in lanes:
        send(name)
    for event in conn:
        if event.type == "error":
            raise GaveUp(f"error {getattr(event.error, 'code', None)}: {getattr(event.error, 'message', '')}")
        if event.type not in TERMINAL:
            continue
        name = getattr(event, "stream_id", None)
        if name not in lanes or event.type != "response.completed":
            raise GaveUp(f"{event.type} on lane {name!r}")
        lane, response = lanes[name], event.response
        lane["previous"], lane["done"] = response.id, lane["done"] + 1
        lane["pending"] = tool_outputs(response.output) or [user_message(lane["done"] + 1)]
        conversation.previous = response.id
        if lane["done"] < TURNS:
            send(name)
        if all(other["done"] >= TURNS for other in lanes.values()):
            conversation.done = TURNS
            return
    raise GaveUp("the connection closed before every lane was done")


def main() -> int:
    conversation = Conversation()
    try:
        if LANES:
            run_lanes(conversation)
        else:
            conversation.run()
    except GaveUp as exc:
        print(f"gave up after {conversation.done} turn(s): {exc}", file=sys.stderr)
        return 1
    finally:
        conversation.drop()
    print(f"done: {conversation.done} turns, last response {conversation.previous}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
