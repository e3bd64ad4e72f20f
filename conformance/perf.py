"""The WebSocket speed-up, measured (issue 12 part 2; the ``perf`` case group, ``--perf``).

The same agent loop — N turns, each forcing one call of the ``step`` tool and answering it —
runs over the WebSocket (``previous_response_id`` and only the new ``function_call_output``,
§4.1, §4.5 (docs/spec.md)) and over HTTP ``POST /responses`` with ``stream: true`` and the
full history every turn, interleaved turn by turn so both share the same noise. This module
holds the pure parts (the loop's requests, figures, the gain and its spread, the finding about
billed input tokens) and one I/O helper, ``post_streaming`` (an SSE POST with per-event
times); ``cases/test_perf.py`` runs the loop.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from conformance.usage import UsageMeter

STEP_TOOL = {"type": "function", "name": "step", "description": "Run one step of the task.",
             "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
                            "additionalProperties": False}, "strict": True}
FORCED = {"type": "function", "name": "step"}
TASK = "Call the step tool once per turn until told to stop."
# a tool result of a realistic size (~60 tokens), so the history grows turn by turn
OUTPUT = "step result: " + " ".join(f"row{i}=ok" for i in range(40))
# billed uncached input on the last WebSocket turn over the first continuation's above which the
# target re-sends the history upstream (a continuation sends one output of the same size each turn)
GROWTH_FACTOR = 3.0
SIDE_FIELDS = ("wall_s", "to_created_ms", "to_first_delta_ms", "to_terminal_ms", "bytes_sent", "input_tokens")


@dataclass
class TurnFigures:
    """One turn: times from send (seconds), bytes sent, billed input tokens (cached ones apart)."""

    to_created: float | None
    to_first_delta: float | None
    to_terminal: float | None
    bytes_sent: int
    input_tokens: int
    cached_tokens: int = 0
    ok: bool = True


@dataclass
class Loop:
    """One transport's run of the loop (one repetition)."""

    turns: list[TurnFigures] = field(default_factory=list)
    wall_s: float = 0.0


def step(loop: Loop, run: Callable[[], tuple[TurnFigures, dict | None]]) -> tuple[dict | None, dict | None]:
    """Run one turn of ``loop`` (timed into its wall time); returns the response and its first
    tool call (None when the turn did not end with one)."""
    started = time.monotonic()
    fig, response = run()
    loop.wall_s += time.monotonic() - started
    loop.turns.append(fig)
    calls = calls_of(response)
    return response, (calls[0] if fig.ok and calls else None)


def first_input() -> list[dict]:
    return [{"role": "user", "content": TASK}]


def tool_output(call: dict) -> dict:
    return {"type": "function_call_output", "call_id": call.get("call_id", ""), "output": OUTPUT}


def calls_of(response: dict | None) -> list[dict]:
    out = (response or {}).get("output") or []
    return [i for i in out if isinstance(i, dict) and i.get("type") == "function_call"]


def usage_tokens(response: dict | None) -> tuple[int, int]:
    usage = (response or {}).get("usage") or {}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    return int(usage.get("input_tokens") or 0), int(cached)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def side(loops: list[Loop]) -> dict:
    """Per turn, the median over repetitions of each figure (ms, bytes, tokens); wall time per
    repetition (seconds)."""
    turns = min(len(lp.turns) for lp in loops) if loops else 0

    def per_turn(get) -> list[float]:
        out = []
        for i in range(turns):
            vals = [get(lp.turns[i]) for lp in loops if get(lp.turns[i]) is not None]
            out.append(_median(vals))
        return out
    millis = lambda v: None if v is None else v * 1000.0  # noqa: E731
    return {"wall_s": [round(lp.wall_s, 4) for lp in loops],
            "to_created_ms": per_turn(lambda t: millis(t.to_created)),
            "to_first_delta_ms": per_turn(lambda t: millis(t.to_first_delta)),
            "to_terminal_ms": per_turn(lambda t: millis(t.to_terminal)),
            "bytes_sent": per_turn(lambda t: t.bytes_sent),
            "input_tokens": per_turn(lambda t: t.input_tokens)}


def gain(websocket: list[Loop], http: list[Loop]) -> dict:
    """HTTP wall time over WebSocket wall time, per repetition; its median and spread."""
    per = [round(h.wall_s / w.wall_s, 3) for w, h in zip(websocket, http) if w.wall_s > 0]
    return {"ratio": _median(per), "min": min(per, default=0.0), "max": max(per, default=0.0),
            "per_repetition": per}


def history_growth(websocket: list[Loop]) -> str | None:
    """An INFO message when the billed *uncached* input tokens of WebSocket continuations grow
    with the history: the target (or a gateway) re-sends the full context upstream instead of
    continuing from the connection's cache. None when they stay flat."""
    for loop in websocket:
        cont = [t for t in loop.turns[1:] if t.ok]
        if len(cont) < 3:
            continue
        first, last = cont[0], cont[-1]
        first_uncached = first.input_tokens - first.cached_tokens
        last_uncached = last.input_tokens - last.cached_tokens
        if first_uncached > 0 and last_uncached >= GROWTH_FACTOR * first_uncached:
            return (f"billed uncached input tokens over the WebSocket grow with the history: "
                    f"{first_uncached} on the first continuation, {last_uncached} on turn "
                    f"{len(loop.turns)} (cached: {first.cached_tokens} and {last.cached_tokens}); "
                    "a continuation sends only one "
                    "tool output, so the full context is being re-sent upstream")
    return None


def figures(turns: int, websocket: list[Loop], http: list[Loop]) -> dict:
    """The ``perf`` block of the certificate (schemas/certificate.json)."""
    finding = history_growth(websocket)
    return {"turns": turns, "repetitions": len(websocket), "ws": side(websocket), "http": side(http),
            "gain": gain(websocket, http), "findings": [finding] if finding else []}


def http_body(history: list[dict], model: str, max_output_tokens: int) -> dict:
    body = {"model": model, "input": history, "tools": [STEP_TOOL], "tool_choice": FORCED,
            "store": False, "stream": True}
    if max_output_tokens:
        body["max_output_tokens"] = max_output_tokens
    return body


# --- I/O: one streamed POST /responses ----------------------------------------------------------

def post_streaming(url: str, headers: dict[str, str], body: dict, timeout: float,
                   meter: UsageMeter) -> tuple[TurnFigures, dict | None]:
    """POST ``body`` (``stream: true``) and read the SSE events with their arrival times; the
    request and its billed tokens count on ``meter`` (the run's, ``Target.run.meter``).
    Returns the turn's figures and the terminal response (None when there was none)."""
    data = json.dumps(body).encode()
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    deadline = started + timeout
    meter.http_requests += 1
    created = delta = terminal = None
    response = None
    try:
        conn.request("POST", path, body=data, headers={**headers, "Content-Type": "application/json",
                                                         "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            resp.read(65536)
            return TurnFigures(None, None, None, len(data), 0, ok=False), None
        while time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            now = time.monotonic() - started
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            typ = event.get("type", "") if isinstance(event, dict) else ""
            if typ == "response.created" and created is None:
                created = now
            elif typ.endswith(".delta") and delta is None:
                delta = now
            elif typ in ("response.completed", "response.incomplete", "response.failed", "error"):
                terminal, response = now, event.get("response")
                break
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    meter.add_usage((response or {}).get("usage"))
    inp, cached = usage_tokens(response)
    return TurnFigures(created, delta, terminal, len(data), inp, cached, ok=terminal is not None), response
