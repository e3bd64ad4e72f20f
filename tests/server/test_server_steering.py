"""Steering on the reference server (spec §2.2, §3.3, §4.4 item 23a, §4.9): accepted,
pending and failed steers, the automatic successor and the steer input in its context."""

from __future__ import annotations

import json
import time

import openai
import pytest
from srv_helpers import (
    KEY_A,
    SCHEMAS,
    TERMINAL,
    WEATHER_TOOL,
    WS,
    grammar_problems,
    nonces_of,
    nonces_of_streamed,
    probe_fields,
)
from test_server_state import http

pytestmark = pytest.mark.timeout(60)

SLOW = {"X-Conformance-Turn-Delay-Ms": "600"}
STEER_TYPES = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")


@pytest.fixture(scope="module")
def steer_server():
    from conformance.server import ServerConfig, ServerThread

    with ServerThread(ServerConfig(api_keys=(KEY_A,), test_controls=True, steering=True)) as srv:
        yield srv


def steer(ws, target: str, text="steer: also mention ORCA-7777", **extra) -> None:
    ws.send({"type": "response.steer", "previous_response_id": target, "input": text, **extra})


def read_until(ws, pred, timeout: float = 10.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, [e.get("type") for e in out]
        e = ws.recv(timeout=left)
        out.append(e)
        if pred(e):
            return out


def start(ws, **fields) -> dict:
    ws.create(**fields)
    created = ws.recv()
    assert created["type"] == "response.created", created
    return created


def schema_ok(events):
    assert [f"{e['type']}: {i}" for e in events for i in SCHEMAS.validate(e)] == []


def test_accepted_steer_then_successor_with_the_steer_in_context(steer_server):
    with WS(steer_server.ws_url, headers=SLOW) as ws:
        created = start(ws, input="Tell me about whales. CODE-1000", store=False, stream_id="s")
        rid = created["response"]["id"]
        steer(ws, rid)
        first = [created] + read_until(ws, lambda e: e["type"] in TERMINAL)
        accepted = [e for e in first if e["type"] == "response.steer.accepted"]
        assert len(accepted) == 1 and accepted[0]["steer"]["previous_response_id"] == rid
        assert accepted[0]["steer"]["id"].startswith("steer_") and accepted[0]["stream_id"] == "s"
        # the steer event is numbered in the target's sequence, and the stream is still whole
        assert [e["sequence_number"] for e in first] == list(range(len(first)))
        # without the steer event (renumbered) the response's own stream is well formed
        own = [dict(e, sequence_number=i) for i, e in enumerate(e for e in first if e["type"] not in STEER_TYPES)]
        assert grammar_problems(own, lane="s") == []
        assert first[-1]["type"] == "response.completed"  # the steered response ends normally
        succ = read_until(ws, lambda e: e["type"] in TERMINAL)
        assert succ[0]["type"] == "response.created"
        assert succ[0]["response"]["previous_response_id"] == rid  # the commit point
        assert grammar_problems(succ, lane="s") == []
        schema_ok(first + succ)
        succ_id = succ[0]["response"]["id"]
        # the steer's input is in the successor's context
        probe = ws.turn(input="probe", stream_id="s", previous_response_id=succ_id, store=False, **probe_fields())
        assert nonces_of(probe) == ["CODE-1000", "ORCA-7777"]


def test_steer_pending_when_the_target_waits_for_tool_output(steer_server):
    with WS(steer_server.ws_url, headers=SLOW) as ws:
        created = start(ws, input="weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required", store=False)
        rid = created["response"]["id"]
        steer(ws, rid, [{"role": "user", "content": [{"type": "input_text", "text": "and Lyon PUMA-4242"}]}])
        events = [created] + read_until(ws, lambda e: e["type"] == "response.steer.pending")
        types = [e["type"] for e in events]
        assert types.index("response.steer.accepted") < types.index("response.completed") < len(types) - 1
        pending = events[-1]
        assert pending["reason"] == "waiting_for_required_input" and "stream_id" not in pending
        call = next(e["item"] for e in events if e["type"] == "response.output_item.done")
        assert pending["required_input"] == [{"type": "function_call_output", "call_id": call["call_id"],
                                              "name": "get_weather"}]
        assert pending["steer"] == {"id": events[types.index("response.steer.accepted")]["steer"]["id"],
                                    "previous_response_id": rid}
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        schema_ok(events)
        assert ws.quiet(0.8)  # no automatic successor
        # the explicit create with the tool result gets the steer input prepended
        t = ws.turn(timeout=10, previous_response_id=rid, store=False,
                    input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}],
                    **probe_fields())
        assert t.status == "completed" and nonces_of(t) == ["PUMA-4242"]


@pytest.mark.parametrize("case", ["not_found", "completed", "not_active", "failed_target", "unsupported"])
def test_steer_failures(steer_server, case):
    with WS(steer_server.ws_url, headers=SLOW) as ws:
        if case == "not_found":
            steer(ws, "resp_nowhere", "hi")
            ev = ws.recv()
            assert ev["sequence_number"] == 0 and "stream_id" not in ev
            code, target_events = "response_not_found", []
        elif case in ("completed", "not_active"):
            fields = {"max_output_tokens": 16} if case == "not_active" else {}
            t = ws.turn(timeout=10, input="short", stream_id="f", **fields)
            assert t.status == ("incomplete" if case == "not_active" else "completed")
            steer(ws, t.id, "late")
            ev = ws.recv()
            assert ev["sequence_number"] == t.events[-1]["sequence_number"] + 1 and ev["stream_id"] == "f"
            code = "response_already_completed" if case == "completed" else "response_not_active"
            target_events = t.events
        elif case == "failed_target":
            created = start(ws, input="[[fail]]")
            steer(ws, created["response"]["id"], "never applied")
            events = [created] + read_until(ws, lambda e: e["type"] == "response.steer.failed")
            types = [e["type"] for e in events]
            assert types == ["response.created", "response.steer.accepted", "response.in_progress",
                             "response.failed", "response.steer.failed"]
            assert [e["sequence_number"] for e in events] == list(range(5))
            ev = events[-1]
            assert ev["steer"]["id"] == events[1]["steer"]["id"]
            code, target_events = "successor_creation_failed", []
        else:
            created = start(ws, input="compacting", context_management=[{"type": "compaction",
                                                                            "compact_threshold": 1000}])
            steer(ws, created["response"]["id"], "no")
            ev = read_until(ws, lambda e: e["type"] == "response.steer.failed")[-1]
            code, target_events = "steering_not_supported", []
        assert ev["type"] == "response.steer.failed"
        assert ev["error"] == {"type": "invalid_request_error", "code": code, "message": ev["error"]["message"]}
        assert ev["steer"]["input"] in ("hi", "late", "never applied", "no")
        assert ("id" in ev["steer"]) is (case == "failed_target")
        schema_ok([ev] + target_events)
        assert ws.turn(timeout=10, input="still fine").status == "completed"


def test_too_many_pending_steers(steer_server):
    with WS(steer_server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "900"}) as ws:
        rid = start(ws, input="long one", store=False)["response"]["id"]
        for i in range(5):
            steer(ws, rid, f"steer {i}")
        events = read_until(ws, lambda e: e["type"] == "response.steer.failed")
        accepted = [e for e in events if e["type"] == "response.steer.accepted"]
        assert len(accepted) == 4
        failed = events[-1]
        assert failed["error"]["code"] == "too_many_pending_steers" and failed["steer"]["input"] == "steer 4"
        rest = read_until(ws, lambda e: e["type"] in TERMINAL)  # the steered response ends
        succ = read_until(ws, lambda e: e["type"] in TERMINAL)  # one successor for the four steers
        assert succ[0]["response"]["previous_response_id"] == rid
        assert rest[-1]["type"] == "response.completed"
        probe = ws.turn(timeout=10, input="how many?", previous_response_id=succ[0]["response"]["id"],
                        store=False)
        # context: first input + its reply + four steer messages + reply of the successor + probe
        assert "8 context items seen" in probe.text


@pytest.mark.parametrize("event,param", [
    ({"type": "response.steer", "previous_response_id": "resp_x", "input": "hi", "stream_id": "a"}, "stream_id"),
    ({"type": "response.steer", "input": "hi"}, "previous_response_id"),
    ({"type": "response.steer", "previous_response_id": "resp_x", "input": ""}, "input"),
    ({"type": "response.steer", "previous_response_id": "resp_x", "input": []}, "input"),
    ({"type": "response.steer", "previous_response_id": "resp_x",
      "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input[0]"),
    ({"type": "response.steer", "previous_response_id": "resp_x",
      "input": [{"role": "assistant", "content": "x"}]}, "input[0]"),
])
def test_malformed_steer_is_an_invalid_input_error(steer_server, event, param):
    with WS(steer_server.ws_url) as ws:
        ws.send(event)
        e = ws.recv()
        assert e["type"] == "error" and e["status"] == 400 and "stream_id" not in e
        assert (e["error"]["code"], e["error"]["param"]) == ("invalid_input", param)


def test_steering_off_by_default(server):
    with WS(server.ws_url) as ws:
        ws.send({"type": "response.steer", "previous_response_id": "resp_x", "input": "hi"})
        assert ws.recv()["error"]["code"] == "steering_not_supported"


def test_official_sdk_lanes_and_steer(steer_server):
    client = openai.OpenAI(api_key=KEY_A, base_url=steer_server.base_url, max_retries=0, timeout=10)
    with client.responses.connect(extra_headers=SLOW) as conn:
        conn.response.create(model="gpt-test", store=False, input="lane one WOLF-1111", stream_id="one")
        conn.response.create(model="gpt-test", store=False, input="lane two", stream_id="two")
        seen, ids, succ = [], {}, None
        for event in conn:
            seen.append(event)
            if event.type == "response.created":
                ids.setdefault(event.stream_id, event.response.id)
                if event.stream_id == "one" and len(ids) == 1:
                    conn.response.steer(previous_response_id=event.response.id, input="steered BEAR-2222")
                elif event.response.previous_response_id == ids.get("one"):
                    succ = event.response.id
            if succ and event.type == "response.completed" and event.response.id == succ:
                break
        types = [e.type for e in seen]
        assert "response.steer.accepted" in types
        assert {e.stream_id for e in seen if e.type.startswith("response.")} == {"one", "two"}
        assert types.count("response.completed") == 3
        conn.response.create(model="gpt-test", store=False, previous_response_id=succ, stream_id="one",
                             input="probe", **probe_fields())
        for event in conn:
            if event.type in TERMINAL:
                break
        assert json.loads(event.response.output[0].arguments) == {"nonces": ["WOLF-1111", "BEAR-2222"]}


@pytest.mark.parametrize("terminal_output", ["full", "empty"])
def test_steer_stops_a_multi_item_response_at_a_safe_boundary(make_server, terminal_output):
    srv = make_server(steering=True, terminal_output=terminal_output)
    with WS(srv.ws_url, headers=SLOW) as ws:
        created = start(ws, input="think first [[multi]]", reasoning={"summary": "auto"}, store=True,
                        max_output_tokens=256, stream_id="m")
        rid = created["response"]["id"]
        steer(ws, rid, "change course LYNX-5150")
        events = [created] + read_until(ws, lambda e: e["type"] in TERMINAL)
        types = [e["type"] for e in events]
        assert types[-1] == "response.incomplete", types
        final = events[-1]["response"]
        assert final["incomplete_details"] == {"reason": "steered"} and final["completed_at"] is None
        done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        assert [i["type"] for i in done] == ["reasoning"]  # cut after the first item; messages never start
        assert final["output"] == (done if terminal_output == "full" else [])
        assert final["usage"]["output_tokens"] == final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        schema_ok(events)
        succ = read_until(ws, lambda e: e["type"] in TERMINAL)
        assert succ[0]["response"]["previous_response_id"] == rid and succ[-1]["type"] == "response.completed"
        # the stored steered response is the cut one, and its context holds only what it sent:
        # input + reasoning + steer message + the successor's reasoning and reply + probe
        status, stored = http("GET", f"{srv.base_url}/responses/{rid}")
        assert status == 200 and stored["status"] == "incomplete" and stored["output"] == done
        probe = ws.turn(timeout=10, input="count", stream_id="m", store=False,
                        previous_response_id=succ[0]["response"]["id"])
        texts = [p["text"] for e in probe.events if e["type"] == "response.output_item.done"
                 for p in e["item"].get("content") or ()]
        assert texts and "6 context items seen" in texts[0], texts
        assert nonces_of_streamed(ws.turn(timeout=10, input="p", stream_id="m", store=False,
                                          previous_response_id=probe.id, **probe_fields())) == ["LYNX-5150"]


def test_interleaved_responses_number_their_steer_events_on():
    """The interleave-responses defect breaks QUEUE-ONE-IN-FLIGHT only: a steer refused for a
    response it streamed still takes that response's next number (it took 0: SEQ-MONOTONIC)."""
    from conformance.server import ServerConfig, ServerThread

    config = ServerConfig(api_keys=(KEY_A,), test_controls=True, steering=True, defects=("interleave-responses",))
    with ServerThread(config) as srv, WS(srv.ws_url) as ws:
        t = ws.turn(timeout=10, input="short")
        assert t.status == "completed"
        steer(ws, t.id, "late")
        ev = ws.recv()
        assert ev["type"] == "response.steer.failed"
        assert ev["sequence_number"] == t.events[-1]["sequence_number"] + 1
