"""The official openai SDK against the reference server (WebSocket and HTTP)."""

from __future__ import annotations

import json

import openai
import pytest
from srv_helpers import KEY_A, WEATHER_TOOL, probe_fields

pytestmark = pytest.mark.timeout(30)

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def until_done(conn) -> list:
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            break
    return events


@pytest.fixture
def client(server):
    return openai.OpenAI(api_key=KEY_A, base_url=server.base_url, max_retries=0, timeout=10)


def test_sdk_warmup_then_two_chained_store_false_turns(client):
    with client.responses.connect() as conn:
        conn.response.create(model="gpt-test", store=False, generate=False,
                             instructions="You are terse.", input="Context: the user lives in Paris. KIWI-2468")
        warm = until_done(conn)
        assert [e.type for e in warm] == ["response.created", "response.completed"]
        assert warm[-1].response.output == []
        assert warm[-1].response.usage.output_tokens == 0
        rid = warm[-1].response.id

        conn.response.create(model="gpt-test", store=False, previous_response_id=rid, input="Where do I live?")
        t1 = until_done(conn)
        assert t1[-1].type == "response.completed"
        r1 = t1[-1].response
        assert r1.previous_response_id == rid
        assert r1.output_text.startswith("Reference reply to turn 2")

        conn.response.create(model="gpt-test", store=False, previous_response_id=r1.id, input="probe",
                             **probe_fields())
        t2 = until_done(conn)
        r2 = t2[-1].response
        assert t2[-1].type == "response.completed"
        assert json.loads(r2.output[0].arguments) == {"nonces": ["KIWI-2468"]}
        assert r2.usage.input_tokens > r1.usage.input_tokens
        assert [e.sequence_number for e in t2] == list(range(len(t2)))


def test_sdk_function_call_loop(client):
    with client.responses.connect() as conn:
        conn.response.create(model="gpt-test", store=False, tools=[WEATHER_TOOL],
                             input="What's the weather in Paris?")
        t1 = until_done(conn)
        call = t1[-1].response.output[0]
        assert call.type == "function_call" and call.name == "get_weather"
        assert json.loads(call.arguments)["city"]
        deltas = "".join(e.delta for e in t1 if e.type == "response.function_call_arguments.delta")
        assert deltas == call.arguments
        conn.response.create(model="gpt-test", store=False, tools=[WEATHER_TOOL],
                             previous_response_id=t1[-1].response.id,
                             input=[{"type": "function_call_output", "call_id": call.call_id,
                                     "output": json.dumps({"temp_c": 18, "sky": "cloudy"})}])
        t2 = until_done(conn)
        assert t2[-1].type == "response.completed"
        assert "get_weather returned" in t2[-1].response.output_text


def test_sdk_error_event_and_connection_stays_usable(client):
    with client.responses.connect() as conn:
        conn.response.create(model="gpt-test", store=False, previous_response_id="resp_missing_0001",
                             input="hello")
        events = until_done(conn)
        assert [e.type for e in events] == ["error"]
        err = events[0]
        assert err.status == 400
        assert err.error.code == "previous_response_not_found"
        assert err.error.param == "previous_response_id"
        assert err.error.message == "Previous response with id 'resp_missing_0001' not found."
        conn.response.create(model="gpt-test", input="still here")
        assert until_done(conn)[-1].type == "response.completed"


def test_sdk_http_paths_share_ids_with_websocket(client):
    with client.responses.connect() as conn:
        conn.response.create(model="gpt-test", store=True, input="stored over the socket")
        ws_resp = until_done(conn)[-1].response
    fetched = client.responses.retrieve(ws_resp.id)
    assert fetched.id == ws_resp.id
    assert fetched.output_text == ws_resp.output_text

    plain = client.responses.create(model="gpt-test", input="hello over http", previous_response_id=ws_resp.id)
    assert plain.status == "completed" and plain.previous_response_id == ws_resp.id
    assert client.responses.retrieve(plain.id).id == plain.id

    stream = client.responses.create(model="gpt-test", input="stream me", stream=True)
    events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    assert client.responses.retrieve(events[-1].response.id).id == events[0].response.id

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_does_not_exist")
    bad = openai.OpenAI(api_key="sk-wrong", base_url=client.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.retrieve(ws_resp.id)


def test_sdk_max_output_tokens_incomplete(client):
    with client.responses.connect() as conn:
        conn.response.create(model="gpt-test", input="hello", max_output_tokens=16)
        events = until_done(conn)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
