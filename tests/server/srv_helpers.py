"""Helpers for the reference server's self-tests: a raw WebSocket client with deadlines and a
small, independent stream-grammar checker (the suite's monitor is not used here, so that
server and suite stay able to disagree)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conformance.schemas import get_schemas

KEY_A = "sk-test-alpha"
KEY_B = "sk-test-bravo"
MODEL = "gpt-test"
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
SCHEMAS = get_schemas()  # schemas/ is the one source of event shapes (docs/design.md); its self-tests may read it


def parse_frame(raw) -> dict | None:
    """Tolerant decoding (defective servers send odd frames): a dict, or None."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = raw
    if text.startswith("event:") or text.startswith("data:"):
        for line in text.splitlines():
            if line.startswith("data:"):
                text = line[5:].strip()
                break
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return value if isinstance(value, dict) else None


@dataclass
class Turn:
    events: list = field(default_factory=list)  # parsed dicts, in order
    raw: list = field(default_factory=list)  # the frames as received (str or bytes)
    timed_out: bool = False
    closed: bool = False

    @property
    def last(self) -> dict | None:
        return self.events[-1] if self.events else None

    @property
    def terminal(self) -> dict | None:
        for e in reversed(self.events):
            if e.get("type") in TERMINAL:
                return e
        return None

    @property
    def response(self) -> dict | None:
        t = self.terminal
        return t.get("response") if t else None

    @property
    def error(self) -> dict | None:
        for e in self.events:
            if e.get("type") == "error":
                return e
        return None

    @property
    def error_code(self):
        e = self.error
        if e is None:
            return None
        inner = e.get("error")
        return inner.get("code") if isinstance(inner, dict) else e.get("code")

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        r = self.response
        if r is not None:
            return r.get("status")
        return "closed" if self.closed else "timeout"

    @property
    def id(self) -> str | None:
        for e in self.events:
            if e.get("type") == "response.created":
                return e["response"]["id"]
        return None

    @property
    def text(self) -> str:
        out = []
        for item in (self.response or {}).get("output", ()):
            for part in item.get("content", ()) or ():
                if part.get("type") == "output_text":
                    out.append(part["text"])
        return "".join(out)

    @property
    def calls(self) -> list:
        return [i for i in (self.response or {}).get("output", ()) if i.get("type") == "function_call"]

    def types(self) -> list[str]:
        return [e.get("type") for e in self.events]


class WS:
    """A raw client on ``websockets.sync.client``; every wait has a deadline."""

    def __init__(self, url: str, key: str | None = KEY_A, headers: dict | None = None,
                 query: str = "", open_timeout: float = 5.0) -> None:
        h = {}
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        self.ws = connect(url + query, additional_headers=h, open_timeout=open_timeout,
                          close_timeout=2, max_size=None, compression=None)

    def __enter__(self) -> "WS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass

    @property
    def close_code(self):
        return self.ws.close_code

    def send(self, obj) -> None:
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def create(self, **fields) -> None:
        fields.setdefault("model", MODEL)
        self.send({"type": "response.create", **fields})

    def recv_raw(self, timeout: float = 5.0):
        return self.ws.recv(timeout=timeout)

    def recv(self, timeout: float = 5.0) -> dict | None:
        return parse_frame(self.recv_raw(timeout))

    def collect(self, timeout: float = 5.0, turns: int = 1, into: Turn | None = None) -> Turn:
        """Frames until ``turns`` responses ended (terminal or error event), the deadline, or close."""
        turn = into or Turn()
        deadline = time.monotonic() + timeout
        done = 0
        while done < turns:
            left = deadline - time.monotonic()
            if left <= 0:
                turn.timed_out = True
                break
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                turn.timed_out = True
                break
            except ConnectionClosed:
                turn.closed = True
                break
            turn.raw.append(raw)
            event = parse_frame(raw)
            if event is None:
                continue
            turn.events.append(event)
            if event.get("type") in TERMINAL or event.get("type") == "error":
                done += 1
        return turn

    def turn(self, timeout: float = 5.0, **fields) -> Turn:
        self.create(**fields)
        return self.collect(timeout)

    def quiet(self, timeout: float = 0.3) -> bool:
        """True if no frame arrives within ``timeout``."""
        try:
            self.ws.recv(timeout=timeout)
        except TimeoutError:
            return True
        except ConnectionClosed:
            return True
        return False


def handshake_status(url: str, key: str | None = KEY_A, query: str = "", headers=None) -> int:
    """101 when the upgrade succeeds, else the HTTP status of the refusal."""
    try:
        ws = WS(url, key=key, query=query, headers=headers)
    except InvalidStatus as exc:
        return exc.response.status_code
    ws.close()
    return 101


def record_nonces_tool(name: str = "record_nonces") -> dict:
    return {"type": "function", "name": name, "description": "Record every nonce you have seen.",
            "parameters": {"type": "object", "properties": {"nonces": {"type": "array",
                                                                         "items": {"type": "string"}}},
                           "required": ["nonces"], "additionalProperties": False}}


def probe_fields(name: str = "record_nonces") -> dict:
    return {"tools": [record_nonces_tool(name)], "tool_choice": {"type": "function", "name": name}}


def nonces_of(turn: Turn) -> list:
    calls = turn.calls
    assert calls, f"no function call in {turn.types()}"
    return json.loads(calls[0]["arguments"])["nonces"]


def nonces_of_streamed(turn: Turn) -> list:
    """The probe's nonces from the streamed output_item.done (the terminal output may be empty)."""
    for e in turn.events:
        if e.get("type") == "response.output_item.done" and e["item"].get("type") == "function_call":
            return json.loads(e["item"]["arguments"])["nonces"]
    raise AssertionError(f"no function call in {turn.types()}")


WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Get current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False},
    "strict": True,
}


# --- an independent grammar check for one response's events ---------------------------------

def grammar_problems(events: list[dict], lane: str | None = None) -> list[str]:
    """Problems with the events of ONE response (spec §4.3); empty when it is well formed."""
    p: list[str] = []
    if not events:
        return ["no events"]
    if events[0].get("type") != "response.created":
        p.append(f"first event is {events[0].get('type')}")
    seqs = [e.get("sequence_number") for e in events]
    if seqs != list(range(len(events))):
        p.append(f"sequence numbers {seqs}")
    for e in events:
        if lane is None and "stream_id" in e:
            p.append(f"default-lane event tagged: {e.get('type')}")
        if lane is not None and e.get("stream_id") != lane:
            p.append(f"event not tagged with lane {lane}: {e.get('type')}")
    terminals = [i for i, e in enumerate(events) if e.get("type") in TERMINAL]
    if len(terminals) != 1 or terminals[0] != len(events) - 1:
        p.append(f"terminal events at {terminals} of {len(events)}")
        return p
    rid = events[0]["response"]["id"]
    final = events[-1]["response"]
    if final["id"] != rid:
        p.append("terminal id differs from created id")
    if final["status"] != events[-1]["type"].split(".", 1)[1]:
        p.append("terminal status does not match the event")
    if events[-1]["type"] == "response.completed" and not final.get("usage"):
        p.append("completed without usage")
    open_items: dict[int, dict] = {}
    done_items: list = []
    text: dict = {}
    for e in events[1:-1]:
        t = e["type"]
        if t in ("response.in_progress",):
            continue
        idx = e.get("output_index")
        if t == "response.output_item.added":
            if idx != len(done_items) + len(open_items) or open_items:
                p.append(f"output_index {idx} out of order")
            open_items[idx] = e["item"]
            continue
        if idx not in open_items:
            p.append(f"{t} for unannounced or closed output_index {idx}")
            continue
        item = open_items[idx]
        if "item_id" in e and e["item_id"] != item.get("id"):
            p.append(f"{t} item_id mismatch")
        key = (idx, e.get("content_index", e.get("summary_index")))
        if t.endswith(".delta"):
            text[key] = text.get(key, "") + e["delta"]
        elif t in ("response.output_text.done", "response.refusal.done",
                   "response.function_call_arguments.done", "response.reasoning_summary_text.done"):
            value = e.get("text", e.get("refusal", e.get("arguments")))
            if text.get(key, "") != value:
                p.append(f"{t}: deltas {text.get(key)!r} != done {value!r}")
            text[key] = value
        elif t == "response.output_item.done":
            del open_items[idx]
            done_items.append(e["item"])
            item = e["item"]
            for c, part in enumerate(item.get("content", ()) or ()):
                v = part.get("text", part.get("refusal"))
                if text.get((idx, c)) != v:
                    p.append(f"item {idx} part {c} differs from its .done value")
            if item.get("type") == "function_call" and text.get((idx, None)) != item.get("arguments"):
                p.append(f"item {idx} arguments differ from the .done value")
    if open_items:
        p.append(f"items never done: {sorted(open_items)}")
    if final.get("output") != done_items:
        p.append("terminal output differs from the output_item.done items")
    for e in events:
        for issue in SCHEMAS.validate(e):
            p.append(f"schema: {e.get('type')}: {issue}")
    return p


def split_by_response(events: list[dict]) -> list[list[dict]]:
    """Group a connection's events by response (non-interleaved streams), errors apart."""
    groups: list[list[dict]] = []
    for e in events:
        if e.get("type") == "response.created":
            groups.append([e])
        elif e.get("type") == "error":
            groups.append([e])
        elif groups:
            groups[-1].append(e)
    return groups
