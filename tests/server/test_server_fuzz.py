"""Bounded fuzzing: arbitrary frames never take the server down, and another connection
keeps being served."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from srv_helpers import WS
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(60)

json_scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)

FIELDS = ["model", "input", "store", "previous_response_id", "tools", "tool_choice", "max_output_tokens",
          "generate", "stream", "background", "instructions", "reasoning", "metadata", "stream_id",
          "temperature", "conversation", "text", "parallel_tool_calls", "context_management", "include"]
VALID = {"type": "response.create", "model": "gpt-test", "input": "hi", "store": False}


@st.composite
def mutated_create(draw):
    event = dict(VALID)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS + ["type"]))
        if draw(st.booleans()):
            event[key] = draw(json_values)
        else:
            event.pop(key, None)
    return json.dumps(event)


frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    json_values.map(json.dumps),
    mutated_create(),
    st.sampled_from(["{", "[]", "null", '{"type":"response.create"}', '{"type":"response.steer"}',
                     json.dumps({"type": "response.create", "model": "m", "input": "[[fail]]"}),
                     json.dumps({"type": "response.create", "model": "m", "input": "[[multi]] [[refuse]]",
                                 "max_output_tokens": 16, "reasoning": {"summary": "auto"}})]),
)


@pytest.fixture(scope="module")
def fuzz_conn(server):
    holder = {"ws": WS(server.ws_url)}
    yield holder
    holder["ws"].close()


@settings(max_examples=int(os.environ.get("SERVER_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(frames, min_size=1, max_size=4))
def test_arbitrary_frames_never_hurt_the_server(server, fuzz_conn, batch):
    ws = fuzz_conn["ws"]
    try:
        for frame in batch:
            ws.send(frame)
        # each frame is answered (an error or a whole response) within the deadline
        t = ws.collect(turns=len(batch), timeout=5)
        assert not t.timed_out, (batch, t.types())
        for e in t.events:
            assert isinstance(e.get("type"), str)
    except ConnectionClosed:
        fuzz_conn["ws"] = WS(server.ws_url)  # only an oversized frame may close it; keep going


def test_server_still_serves_after_fuzzing(server, fuzz_conn):
    with WS(server.ws_url) as other:
        assert other.turn(input="still alive").status == "completed"
    assert fuzz_conn["ws"].turn(input="fuzzed connection too").status == "completed"


STEER_FIELDS = ["previous_response_id", "input", "stream_id", "type"]


@st.composite
def mutated_steer(draw):
    event = {"type": "response.steer", "previous_response_id": "LATEST", "input": "steer ORCA-1234"}
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(STEER_FIELDS))
        if draw(st.booleans()):
            event[key] = draw(json_values)
        else:
            event.pop(key, None)
    return event


@pytest.fixture(scope="module")
def steer_fuzz_server():
    from conformance.server import ServerConfig, ServerThread

    with ServerThread(ServerConfig(test_controls=True, steering=True)) as srv:
        yield srv


@settings(max_examples=int(os.environ.get("SERVER_STEER_FUZZ_EXAMPLES", "15")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(steers=st.lists(mutated_steer(), min_size=1, max_size=5), lane=st.sampled_from([None, "s"]))
def test_arbitrary_steers_never_hurt_the_server(steer_fuzz_server, steers, lane):
    """Steers (well formed or not) sent while a paced response streams: no internal error, the
    steered response and any successor end, and the connection keeps serving."""
    with WS(steer_fuzz_server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "120"}) as ws:
        ws.create(input="target [[multi]]", **({"stream_id": lane} if lane else {}))
        created = ws.recv()
        assert created["type"] == "response.created"
        for event in steers:
            if event.get("previous_response_id") == "LATEST":
                event = dict(event, previous_response_id=created["response"]["id"])
            ws.send(event)
        events = ws.collect(timeout=5).events  # up to the target's terminal event
        while True:  # then answers to late steers and a successor, until the socket falls quiet
            more = ws.collect(timeout=0.6)
            events += more.events
            if more.timed_out:
                break
        assert not [e for e in events if e.get("type") == "error" and e["error"].get("code") == "server_error"]
        if any(e.get("type") == "response.steer.accepted" for e in events):
            created_ids = [e["response"]["id"] for e in events if e.get("type") == "response.created"]
            ended = [e["response"]["id"] for e in events if e.get("type") in ("response.completed",
                                                                                "response.incomplete")]
            assert set(created_ids) <= set(ended)
        assert ws.turn(input="still serving", timeout=5).status == "completed"
