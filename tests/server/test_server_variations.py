"""Streaming variations, control events, pauses, safety blocks and simulated latency of the
reference server (spec §3.4 control events, §3.10 misalignment, §4.3 item 16a, §1.5 long
silences; README "Reference server")."""

from __future__ import annotations

import json
import re
import time

import pytest
from srv_helpers import SCHEMAS, TERMINAL, WEATHER_TOOL, WS, grammar_problems, nonces_of_streamed, probe_fields
from test_server_state import assert_not_found, http

from conformance.server import ServerConfig

pytestmark = pytest.mark.timeout(60)

SETUP = {"response.output_item.added", "response.content_part.added", "response.reasoning_summary_part.added"}
CONTROL = ["ping", "codex.rate_limits", "response.metadata"]


def schema_problems(events):
    return [f"{e.get('type')}: {issue}" for e in events for issue in SCHEMAS.validate(e)]


def deltas_add_up(events) -> list[str]:
    """Without setup events: every .done value is the sum of its deltas, and every
    output_item.done carries the .done values."""
    acc: dict = {}
    done: dict = {}
    problems = []
    for e in events:
        t = e["type"]
        key = (e.get("output_index"), e.get("content_index", e.get("summary_index")))
        if t.endswith(".delta"):
            acc[key] = acc.get(key, "") + e["delta"]
        elif t in ("response.output_text.done", "response.refusal.done", "response.function_call_arguments.done",
                   "response.reasoning_summary_text.done"):
            value = e.get("text", e.get("refusal", e.get("arguments")))
            if acc.get(key) != value:
                problems.append(f"{t}: {acc.get(key)!r} != {value!r}")
            done[key] = value
        elif t == "response.output_item.done":
            item, idx = e["item"], e["output_index"]
            for c, part in enumerate(item.get("content") or ()):
                if done.get((idx, c)) != part.get("text", part.get("refusal")):
                    problems.append(f"item {idx} part {c}")
            for s, part in enumerate(item.get("summary") or ()):
                if done.get((idx, s)) != part.get("text"):
                    problems.append(f"item {idx} summary {s}")
            if item.get("type") == "function_call" and done.get((idx, None)) != item["arguments"]:
                problems.append(f"item {idx} arguments")
    return problems


# --- --omit-setup-events / --omit-terminal-output ------------------------------------------

@pytest.mark.parametrize("fields", [
    {"input": "hello"},
    {"input": "think first", "reasoning": {"summary": "auto"}, "max_output_tokens": 256},
    {"input": "weather in Paris?", "tools": [WEATHER_TOOL], "tool_choice": "required"},
    {"input": "[[refuse]] now"},
])
def test_omit_setup_events_keeps_deltas_dones_and_contiguous_sequence(make_server, fields):
    srv = make_server(omit_setup_events=True)
    with WS(srv.ws_url) as ws:
        t = ws.turn(**fields)
    types = t.types()
    assert not SETUP & set(types), types
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] in TERMINAL
    assert any(x.endswith(".delta") for x in types) and "response.output_item.done" in types
    assert [e["sequence_number"] for e in t.events] == list(range(len(t.events)))
    assert deltas_add_up(t.events) == []
    assert t.response["output"] == [e["item"] for e in t.events if e["type"] == "response.output_item.done"]
    assert schema_problems(t.events) == []


def test_setup_events_are_sent_by_default(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="think", reasoning={"summary": "auto"}, max_output_tokens=256)
    assert SETUP <= set(t.types())


@pytest.mark.parametrize("mode", ["empty", "null", "missing"])
def test_terminal_output_variants_keep_stored_output_and_context(make_server, mode):
    srv = make_server(terminal_output=mode)
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="remember ZEBRA-4242", store=True)
        assert t1.status == "completed"
        final = t1.response
        if mode == "empty":
            assert final["output"] == []
        elif mode == "null":
            assert final["output"] is None
        else:
            assert "output" not in final
        streamed = [e["item"] for e in t1.events if e["type"] == "response.output_item.done"]
        assert streamed and streamed[0]["content"][0]["text"].startswith("Reference reply")
        status, stored = http("GET", f"{srv.base_url}/responses/{t1.id}")
        assert status == 200 and stored["output"] == streamed
        t2 = ws.turn(input="codes?", previous_response_id=t1.id, **probe_fields())
        assert nonces_of_streamed(t2) == ["ZEBRA-4242"]
    assert (mode == "empty") == (schema_problems(t1.events) == [])


def test_variations_do_not_touch_http(make_server):
    srv = make_server(omit_setup_events=True, terminal_output="empty")
    status, body = http("POST", f"{srv.base_url}/responses", body={"model": "m", "input": "hi"})
    assert status == 200 and body["output"] and body["output"][0]["type"] == "message"


def test_bad_variation_settings_are_refused():
    with pytest.raises(ValueError, match="terminal_output"):
        ServerConfig(terminal_output="sometimes").resolve()
    for field in ("ttft_ms", "tokens_per_second"):
        with pytest.raises(ValueError, match=field):
            ServerConfig(**{field: -1}).resolve()
        with pytest.raises(ValueError, match=field):
            ServerConfig(**{field: "soon"}).resolve()


# --- --control-events -------------------------------------------------------------------

def test_control_events_surround_every_response(make_server):
    srv = make_server(control_events=True)
    with WS(srv.ws_url) as ws:
        ws.create(input="one", store=False)
        ws.create(input="two", store=False, stream_id="lane-a")
        ws.create(input="bad", previous_response_id="resp_nope")
        t = ws.collect(turns=3)
        assert ws.recv()["type"] == "codex.keepalive"  # after the last answer
    types = t.types()
    starts = [i for i, x in enumerate(types) if x in ("response.created", "error")]
    assert len(starts) == 3
    for i in starts:
        assert types[i - 3:i] == CONTROL, types
    for i in starts[1:]:
        assert types[i - 4] == "codex.keepalive", types
    for e in t.events:
        if e["type"] in CONTROL or e["type"] == "codex.keepalive":
            assert "sequence_number" not in e and "stream_id" not in e and "response" not in e, e
            assert "response_id" not in e
    first = t.events[starts[0]:types.index("codex.keepalive")]
    assert grammar_problems(first) == []


def test_control_events_carry_what_codex_reads(make_server):
    """§3.4, §3.6 (update 2026-12): response.metadata carries the response headers and the
    metadata fields Codex reads; response.completed carries end_turn (false after a tool call)."""
    srv = make_server(control_events=True)
    with WS(srv.ws_url) as ws:
        text = ws.turn(input="hi", model="gpt-6-sol")
        call = ws.turn(input="weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required")
    meta = [e for e in text.events if e["type"] == "response.metadata"]
    assert len(meta) == 1 and SCHEMAS.validate_def("response-metadata", meta[0]) == []
    assert meta[0]["headers"] == {"openai-model": "gpt-6-sol", "x-codex-turn-state": "ts_reference"}
    assert meta[0]["metadata"]["openai_verification_recommendation"] == ["trusted_access_for_cyber"]
    assert text.response["end_turn"] is True and schema_problems(text.events) == []
    assert any(i["type"] == "function_call" for i in call.response["output"])
    assert call.response["end_turn"] is False


def test_end_turn_only_on_a_completed_response():
    from conformance.server.stream import with_end_turn
    incomplete = [{"type": "response.created"}, {"type": "response.incomplete", "response": {"output": []}}]
    assert with_end_turn(incomplete) == incomplete and "end_turn" not in incomplete[-1]["response"]
    assert with_end_turn([]) == []


def test_no_control_events_by_default(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hi")
        assert t.types()[0] == "response.created"
        assert ws.quiet(0.3)


# --- X-Conformance-Pause-Ms -------------------------------------------------------------

def _arrivals(ws, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = ws.recv(timeout=deadline - time.monotonic())
        out.append((time.monotonic(), e))
        if e["type"] in TERMINAL or e["type"] == "error":
            break
    return out


def test_pause_header_makes_one_silence_mid_response(server):
    with WS(server.ws_url, headers={"X-Conformance-Pause-Ms": "600"}) as ws:
        ws.create(input="pause please")
        got = _arrivals(ws)
    events = [e for _, e in got]
    assert grammar_problems(events) == []
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    big = [i for i, g in enumerate(gaps) if g >= 0.5]
    assert len(big) == 1, gaps
    assert big[0] + 1 == len(events) // 2  # the silence comes before the middle event
    assert 0 < big[0] + 1 < len(events) - 1


def test_pause_header_ignored_without_test_controls(make_server):
    srv = make_server(test_controls=False)
    with WS(srv.ws_url, headers={"X-Conformance-Pause-Ms": "2000"}) as ws:
        start = time.monotonic()
        assert ws.turn(input="hi").status == "completed"
        assert time.monotonic() - start < 1.5


# --- [[misaligned]] / [[misaligned-mid]] ------------------------------------------------

def _assert_block(event, sequenced: bool, lane=None):
    assert event["type"] == "error" and event["status"] == 403
    err = event["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "misalignment_policy_violation"
    assert err["param"] is None and isinstance(err["message"], str)
    assert err["misalignment"]["error_type"] == "other"
    assert isinstance(err["misalignment"]["detailed_explanation"], str)
    assert isinstance(err["misalignment"]["steer"]["message"], str)
    assert ("sequence_number" in event) is sequenced
    assert event.get("stream_id") == lane
    assert schema_problems([event]) == []


def test_misaligned_blocks_before_streaming_and_evicts(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        t2 = ws.turn(input="do it [[misaligned]]", store=False, previous_response_id=t1.id)
        assert t2.types() == ["error"]
        _assert_block(t2.error, sequenced=False)
        assert_not_found(ws.turn(input="again", store=False, previous_response_id=t1.id), t1.id)
        t3 = ws.turn(input="[[misaligned]]", stream_id="lane-b")
        _assert_block(t3.error, sequenced=False, lane="lane-b")
        assert ws.turn(input="still usable").status == "completed"


def test_misaligned_mid_stream_error_ends_the_response(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        t2 = ws.turn(input="go on [[misaligned-mid]]", store=False, previous_response_id=t1.id,
                     stream_id="lane-m")
        types = t2.types()
        assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "error", types
        assert not set(types) & set(TERMINAL)
        assert types[-2].endswith(".delta") and types.count("response.output_text.delta") == 1
        assert [e["sequence_number"] for e in t2.events] == list(range(len(types)))
        assert all(e.get("stream_id") == "lane-m" for e in t2.events)
        _assert_block(t2.events[-1], sequenced=True, lane="lane-m")
        assert schema_problems(t2.events) == []
        assert ws.quiet(0.3)  # nothing follows the block
        # the blocked response cannot be continued; its parent, on another lane, is kept (a
        # failed cross-lane fork, §4.4 item 23a)
        assert_not_found(ws.turn(input="x", store=False, previous_response_id=t2.id), t2.id)
        y = ws.turn(input="y", store=False, previous_response_id=t1.id)
        assert y.status == "completed"
        # on the parent's own lane the block evicts the parent
        t3 = ws.turn(input="[[misaligned-mid]]", store=False, previous_response_id=y.id)
        assert t3.types()[0] == "response.created" and t3.error_code == "misalignment_policy_violation"
        assert_not_found(ws.turn(input="z", store=False, previous_response_id=y.id), y.id)


def test_misaligned_over_http_is_a_403_body(server):
    for trigger in ("[[misaligned]]", "[[misaligned-mid]]"):
        status, body = http("POST", f"{server.base_url}/responses", body={"model": "m", "input": trigger})
        assert status == 403, body
        assert body["error"]["code"] == "misalignment_policy_violation"
        assert body["error"]["misalignment"]["error_type"] == "other"


# --- simulated latency ------------------------------------------------------------------

def test_ttft_and_tokens_per_second_pace_generating_turns(make_server):
    srv = make_server(ttft_ms=300, tokens_per_second=40)
    with WS(srv.ws_url) as ws:
        ws.create(input="hello")
        got = _arrivals(ws)
        start = time.monotonic()
        warm = ws.turn(generate=False)
        warm_s = time.monotonic() - start
    events = [e for _, e in got]
    assert grammar_problems(events) == []
    t0 = got[0][0]
    first_after = got[2][0] - t0
    assert first_after >= 0.28, first_after  # time to first token
    tokens = sum(len(re.findall(r"\w+|[^\w\s]", e["delta"])) for e in events
                 if e["type"].endswith(".delta"))
    assert got[-1][0] - t0 >= 0.3 + tokens / 40 - 0.05
    assert warm.status == "completed" and warm_s < 0.25  # warm-ups generate nothing: no wait
