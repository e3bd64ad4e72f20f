"""The WebSocket speed-up, measured (opt-in: ``--perf``; marker ``perf``; INFO, never FAIL).

One agent loop of ``--perf-turns`` N forced ``step`` tool calls and their outputs runs over
the WebSocket with ``previous_response_id`` and only the new output (§4.5 items 24-26
(docs/spec.md)), and over HTTP ``POST /responses`` with the full history each turn, turn by
turn interleaved, ``--perf-repetitions`` times. The figures (conformance/perf.py) go into the
certificate's ``perf`` block and index.html. Against the embedded reference server a fresh
server with a per-token processing cost runs the loop: the figures show the mechanism only.
"""

from __future__ import annotations

import json

import pytest

from conformance import perf as P
from conformance.casestate import case_state

# the embedded server's modelled cost of reading one uncached input token
REFERENCE_PER_TOKEN_US = 200.0


def _ws_turn(conn, fields: dict) -> tuple[P.TurnFigures, dict | None]:
    t = conn.turn(**fields)
    sent = t.timings.get("sent", 0.0)
    rel = lambda k: (t.timings[k] - sent) if k in t.timings else None  # noqa: E731
    inp, cached = P.usage_tokens(t.response)
    size = len(json.dumps(t.create, separators=(",", ":")).encode())
    ok = t.status in ("completed", "incomplete")
    return P.TurnFigures(rel("first_event"), rel("first_delta"), rel("last_event") if ok else None,
                         size, inp, cached, ok=ok), t.response


@pytest.mark.perf
@pytest.mark.max_requests(perf=True)
@pytest.mark.clause("PERF-WS-GAIN")
def test_ws_gain_over_http_full_history(request, target, connect, verdict, reference_server_factory):
    turns = request.config.getoption("perf_turns")
    reps = request.config.getoption("perf_repetitions")
    if target.is_embedded:
        _, target = reference_server_factory(per_token_us=REFERENCE_PER_TOKEN_US)
    url = target.http_url("/responses")
    headers = target.auth_headers()
    base = {"tools": [P.STEP_TOOL], "tool_choice": P.FORCED, "store": False}
    ws_loops, http_loops, broken = [], [], []
    for _ in range(reps):
        conn = connect(target=target)
        ws, http = P.Loop(), P.Loop()
        prev, ws_next = None, P.first_input()
        history = P.first_input()
        for k in range(turns):
            resp, call = P.step(ws, lambda: _ws_turn(conn, base | {"input": ws_next, "previous_response_id": prev}))
            if call is None:
                broken.append(f"WebSocket turn {k + 1}: no tool call")
                break
            prev, ws_next = resp["id"], [P.tool_output(call)]
            body = P.http_body(history, target.model, target.max_output_tokens)
            resp, call = P.step(http, lambda: P.post_streaming(url, headers, body, target.turn_timeout,
                                                                target.run.meter))
            if call is None:
                broken.append(f"HTTP turn {k + 1}: no tool call")
                break
            history = history + [c for c in resp["output"] if isinstance(c, dict)] + [P.tool_output(call)]
        ws_loops.append(ws)
        http_loops.append(http)
        if broken:
            break
    # the measurement holds only when both loops ran every turn (a MAY clause: INFO at worst)
    if not verdict.expect("PERF-WS-GAIN", not broken, broken[:3], "the agent loop did not complete on both transports"):
        return
    figures = P.figures(turns, ws_loops, http_loops)
    case_state(request.node).perf = figures
    g = figures["gain"]
    verdict.info(f"WebSocket gain over HTTP with full history: {g['ratio']}x wall time "
                 f"(min {g['min']}, max {g['max']} over {reps} repetitions of {turns} turns); "
                 f"bytes sent on the last turn: WebSocket {figures['ws']['bytes_sent'][-1]:g}, "
                 f"HTTP {figures['http']['bytes_sent'][-1]:g}", "PERF-WS-GAIN")
    for message in figures["findings"]:
        verdict.info(message, "PERF-WS-GAIN")

