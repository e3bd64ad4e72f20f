"""Event streams of the reference server (spec §3, §4.3): shapes, order, deltas, terminal."""

from __future__ import annotations

import json

import pytest
from srv_helpers import (
    MODEL,
    WEATHER_TOOL,
    WS,
    grammar_problems,
    nonces_of,
    probe_fields,
    split_by_response,
)

pytestmark = pytest.mark.timeout(30)


def test_text_turn_stream_is_well_formed(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="Say hello in three words.", store=False)
    assert t.status == "completed", t.types()
    assert grammar_problems(t.events) == []
    assert t.types()[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                             "response.content_part.added"]
    deltas = [e for e in t.events if e["type"] == "response.output_text.delta"]
    assert len(deltas) >= 3
    assert t.text.startswith("Reference reply to turn 1")
    created = t.events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["id"].startswith("resp_")
    for key in ("id", "object", "created_at", "status", "completed_at", "error", "incomplete_details",
                "instructions", "metadata", "model", "output", "parallel_tool_calls", "temperature",
                "tool_choice", "tools", "top_p", "previous_response_id", "usage", "store", "text",
                "reasoning", "max_output_tokens"):
        assert key in created and key in t.response, key
    final = t.response
    assert final["model"] == MODEL and final["store"] is False
    assert final["completed_at"] is not None
    u = final["usage"]
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    assert set(u["input_tokens_details"]) >= {"cached_tokens"}
    assert "reasoning_tokens" in u["output_tokens_details"]


def test_frames_are_text_json_objects_without_sse(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hi")
    for raw in t.raw:
        assert isinstance(raw, str)
        assert not raw.startswith(("event:", "data:")) and "[DONE]" not in raw
        assert isinstance(json.loads(raw), dict)


def test_function_call_stream(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="What's the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="auto")
    assert grammar_problems(t.events) == []
    (call,) = t.calls
    assert call["name"] == "get_weather" and call["call_id"].startswith("call_")
    assert call["id"].startswith("fc_")
    assert json.loads(call["arguments"]) == {"city": "What's the weather in Paris?"}
    done = [e for e in t.events if e["type"] == "response.function_call_arguments.done"]
    assert done[0]["name"] == "get_weather"
    deltas = [e for e in t.events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) >= 2


@pytest.mark.parametrize("choice,expect_call", [
    ("none", False), ("auto", True), ("required", True),
    ({"type": "function", "name": "get_time"}, True),
])
def test_tool_choice_is_honoured(server, choice, expect_call):
    tools = [WEATHER_TOOL, {"type": "function", "name": "get_time", "parameters": {"type": "object",
                                                                                  "properties": {}}}]
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hi", tools=tools, tool_choice=choice)
    assert t.status == "completed"
    assert bool(t.calls) is expect_call
    if isinstance(choice, dict):
        assert t.calls[0]["name"] == "get_time"


def test_auto_answers_tool_output_with_text(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="weather?", tools=[WEATHER_TOOL], store=False)
        call = t1.calls[0]
        t2 = ws.turn(previous_response_id=t1.id, tools=[WEATHER_TOOL], store=False,
                     input=[{"type": "function_call_output", "call_id": call["call_id"],
                             "output": '{"temp_c": 18}'}])
    assert t2.status == "completed" and not t2.calls
    assert "get_weather returned" in t2.text and "18" in t2.text


def test_parallel_trigger_calls_every_function(server):
    tools = [WEATHER_TOOL, {"type": "function", "name": "get_time"}]
    with WS(server.ws_url) as ws:
        t = ws.turn(input="both please [[parallel]]", tools=tools)
    assert [c["name"] for c in t.calls] == ["get_weather", "get_time"]
    assert grammar_problems(t.events) == []


def test_reasoning_summary_item_first(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="think first", reasoning={"effort": "low", "summary": "auto"})
    assert grammar_problems(t.events) == []
    out = t.response["output"]
    assert [i["type"] for i in out] == ["reasoning", "message"]
    assert out[0]["summary"][0]["type"] == "summary_text" and out[0]["summary"][0]["text"]
    types = t.types()
    assert "response.reasoning_summary_part.added" in types
    assert "response.reasoning_summary_text.delta" in types
    assert t.response["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert t.response["reasoning"] == {"effort": "low", "summary": "auto"}


def test_refusal_trigger(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="please [[refuse]]")
    assert grammar_problems(t.events) == []
    part = t.response["output"][0]["content"][0]
    assert part["type"] == "refusal" and part["refusal"]
    assert "response.refusal.delta" in t.types() and "response.refusal.done" in t.types()


def test_multi_trigger_two_messages(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="two please [[multi]]")
    assert grammar_problems(t.events) == []
    assert [i["type"] for i in t.response["output"]] == ["message", "message"]


def test_fail_trigger_ends_failed(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="[[fail]]")
    assert grammar_problems(t.events) == []
    assert t.types()[-1] == "response.failed"
    assert t.response["status"] == "failed"
    assert t.response["error"]["code"] == "server_error"


def test_max_output_tokens_truncates_default_reply(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hello", max_output_tokens=16)
    assert grammar_problems(t.events) == []
    assert t.types()[-1] == "response.incomplete"
    assert t.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert t.response["output"][-1]["status"] == "incomplete"
    assert t.response["usage"]["output_tokens"] == 16
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hello", max_output_tokens=64)
    assert t.status == "completed"


def test_sequence_numbers_restart_per_response(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="one", store=False)
        t2 = ws.turn(input="two", store=False, previous_response_id=t1.id)
    for t in (t1, t2):
        assert [e["sequence_number"] for e in t.events] == list(range(len(t.events)))


def test_previous_response_id_echoed(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="one")
        t2 = ws.turn(input="two", previous_response_id=t1.id)
    assert t1.response["previous_response_id"] is None
    assert t2.events[0]["response"]["previous_response_id"] == t1.id
    assert t2.response["previous_response_id"] == t1.id


def test_named_lane_events_are_tagged(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="hi", stream_id="lane.A-1")
        assert grammar_problems(t.events, lane="lane.A-1") == []
        t2 = ws.turn(input="more", stream_id="lane.A-1", previous_response_id=t.id, **probe_fields())
        assert t2.status == "completed"
        e = ws.turn(input="hi", stream_id="")
    assert e.error_code == "invalid_stream_id" and e.error["error"]["param"] == "stream_id"


def test_named_lane_limit(server):
    with WS(server.ws_url) as ws:
        for i in range(32):
            ws.create(input="x", stream_id=f"l{i}", generate=False)
        t = ws.collect(turns=32, timeout=10)
        assert t.error is None and len(split_by_response(t.events)) == 32
        e = ws.turn(input="x", stream_id="l32", generate=False)
        assert e.error_code == "websocket_stream_limit_reached"
        assert e.error["stream_id"] == "l32" and e.error["error"]["param"] == "stream_id"
        ok = ws.turn(input="x", stream_id="l5", generate=False)
        assert ok.status == "completed"


def test_context_probe_lists_nonces_in_order(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="first KIWI-7342 then ALPHA-0001", instructions="Keep LEMON-12345 in mind.",
                     store=False)
        t2 = ws.turn(input="and PEAR-5555 plus KIWI-7342 again", store=False,
                     previous_response_id=t1.id, **probe_fields("record_nonces_v2"))
    assert nonces_of(t2) == ["KIWI-7342", "ALPHA-0001", "PEAR-5555"]
    assert t2.calls[0]["name"] == "record_nonces_v2"
    # instructions of this turn count; earlier instructions are not inherited
    with WS(server.ws_url) as ws:
        t = ws.turn(input="x BANANA-9999", instructions="see APPLE-1111", **probe_fields())
    assert nonces_of(t) == ["APPLE-1111", "BANANA-9999"]


def test_usage_counts_carried_history(server):
    with WS(server.ws_url) as ws:
        fresh = ws.turn(input="how are you", store=False)
        t1 = ws.turn(input="a long first message " * 10, store=False)
        t2 = ws.turn(input="how are you", store=False, previous_response_id=t1.id)
    assert t2.response["usage"]["input_tokens"] > fresh.response["usage"]["input_tokens"]
    assert t2.response["usage"]["input_tokens_details"]["cached_tokens"] > 0


def test_generate_false_warmup_shape(server):
    with WS(server.ws_url) as ws:
        w = ws.turn(input="Context: PLUM-4242", generate=False, store=False)
        assert w.types() == ["response.created", "response.completed"]
        assert [e["sequence_number"] for e in w.events] == [0, 1]
        assert w.response["output"] == []
        assert w.response["usage"]["output_tokens"] == 0 and w.response["usage"]["input_tokens"] > 0
        assert grammar_problems(w.events) == []
        t1 = ws.turn(input="next", store=False, previous_response_id=w.id)
        t2 = ws.turn(input="later", store=False, previous_response_id=t1.id, **probe_fields())
    assert nonces_of(t2) == ["PLUM-4242"]
