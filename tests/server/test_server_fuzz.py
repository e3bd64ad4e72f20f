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
