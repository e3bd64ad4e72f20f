"""Bad client input: every frame gets an error event (status 400, a specific code) and the
connection stays usable; an oversized frame closes with 1009."""

from __future__ import annotations

import pytest
from srv_helpers import SCHEMAS, WS
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(30)

CASES = [
    ("malformed json", "{not json", "invalid_json", None),
    ("empty frame", "", "invalid_json", None),
    ("json array", "[1, 2]", "invalid_type", None),
    ("json string", '"response.create"', "invalid_type", None),
    ("missing type", {"model": "m"}, "missing_required_parameter", "type"),
    ("type not a string", {"type": 7}, "invalid_type", "type"),
    ("unknown type", {"type": "response.cancel"}, "unknown_event_type", "type"),
    ("steer unsupported", {"type": "response.steer", "previous_response_id": "resp_x", "input": "hi"},
     "steering_not_supported", "type"),
    ("inject unsupported", {"type": "response.inject", "response_id": "resp_x", "input": []},
     "unsupported_event_type", "type"),
    ("missing model", {"type": "response.create", "input": "hi"}, "missing_required_parameter", "model"),
    ("model wrong type", {"type": "response.create", "model": 5}, "invalid_type", "model"),
    ("store wrong type", {"type": "response.create", "model": "m", "store": "yes"}, "invalid_type", "store"),
    ("input wrong type", {"type": "response.create", "model": "m", "input": 42}, "invalid_type", "input"),
    ("input item not object", {"type": "response.create", "model": "m", "input": ["x"]}, "invalid_type",
     "input[0]"),
    ("bad role", {"type": "response.create", "model": "m", "input": [{"role": "robot", "content": "x"}]},
     "invalid_value", "input[0].role"),
    ("tools not array", {"type": "response.create", "model": "m", "tools": {}}, "invalid_type", "tools"),
    ("tool without name", {"type": "response.create", "model": "m", "tools": [{"type": "function"}]},
     "missing_required_parameter", "tools[0].name"),
    ("bad tool_choice", {"type": "response.create", "model": "m", "tool_choice": "sometimes"},
     "invalid_value", "tool_choice"),
    ("forced unknown function", {"type": "response.create", "model": "m",
                                 "tool_choice": {"type": "function", "name": "nope"}}, "invalid_value",
     "tool_choice"),
    ("allowed_tools not an array", {"type": "response.create", "model": "m",
                                    "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": 5}},
     "invalid_type", "tool_choice.tools"),
    ("max_output_tokens too small", {"type": "response.create", "model": "m", "max_output_tokens": 4},
     "integer_below_min_value", "max_output_tokens"),
    ("max_output_tokens wrong type", {"type": "response.create", "model": "m", "max_output_tokens": "16"},
     "invalid_type", "max_output_tokens"),
    ("temperature out of range", {"type": "response.create", "model": "m", "temperature": 5},
     "invalid_value", "temperature"),
    ("metadata value not string", {"type": "response.create", "model": "m", "metadata": {"a": 1}},
     "invalid_type", "metadata.a"),
    ("reasoning summary bad", {"type": "response.create", "model": "m", "reasoning": {"summary": "long"}},
     "invalid_value", "reasoning.summary"),
    ("generate wrong type", {"type": "response.create", "model": "m", "generate": "no"}, "invalid_type",
     "generate"),
    ("background true", {"type": "response.create", "model": "m", "background": True},
     "unsupported_parameter", "background"),
    ("previous id and conversation", {"type": "response.create", "model": "m", "previous_response_id": "resp_x",
                                      "conversation": "conv_1"}, "mutually_exclusive_parameters", "conversation"),
    ("stream_id empty", {"type": "response.create", "model": "m", "stream_id": ""}, "invalid_stream_id",
     "stream_id"),
    ("stream_id bad chars", {"type": "response.create", "model": "m", "stream_id": "a b"}, "invalid_stream_id",
     "stream_id"),
    ("nested too deep", '{"type":"response.create","model":"m","metadata":' + "[" * 900 + "]" * 900 + "}",
     "invalid_value", None),
    ("orphan tool output", {"type": "response.create", "model": "m",
                            "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]},
     None, "input"),
]


@pytest.mark.parametrize("frame,code,param", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_frame_gets_error_and_connection_stays_usable(server, frame, code, param):
    with WS(server.ws_url) as ws:
        ws.send(frame)
        t = ws.collect(timeout=5)
        assert t.types() == ["error"], t.types()
        err = t.error
        assert err["status"] == 400
        assert err["error"]["type"] == "invalid_request_error"
        assert err["error"]["code"] == code
        assert err["error"]["param"] == param
        assert isinstance(err["error"]["message"], str) and err["error"]["message"]
        assert "stream_id" not in err
        assert ws.turn(input="after the error").status == "completed"


def test_binary_frame_is_refused(server):
    with WS(server.ws_url) as ws:
        ws.send(b'{"type": "response.create", "model": "m"}')
        t = ws.collect(timeout=5)
        assert t.types() == ["error"]
        assert t.error["error"]["code"] == "binary_frame_not_supported" and t.error["status"] == 400
        assert ws.turn(input="after").status == "completed"


def test_error_on_named_lane_is_tagged(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(stream_id="side", store="nope")
    assert t.error["stream_id"] == "side" and t.error_code == "invalid_type"


def test_oversized_frame_closes_with_1009(make_server):
    srv = make_server(max_frame_bytes=4096)
    with WS(srv.ws_url) as ws:
        assert ws.turn(input="x" * 1000).status == "completed"
        ws.send('{"type":"response.create","model":"m","input":"' + "x" * 8000 + '"}')
        with pytest.raises(ConnectionClosed):
            for _ in range(5):
                ws.recv(timeout=5)
        assert ws.close_code == 1009
    with WS(srv.ws_url) as ws:  # the server is fine
        assert ws.turn(input="next").status == "completed"


def test_bad_frames_during_a_turn_are_answered_after_it(server):
    with WS(server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "200"}) as ws:
        ws.create(input="slow")
        ws.send("garbage")
        ws.send(b"\x00\x01")
        t = ws.collect(turns=3, timeout=5)
    assert t.types()[0] == "response.created"
    assert t.types()[-3] == "response.completed"
    assert [e["error"]["code"] for e in t.events[-2:]] == ["invalid_json", "binary_frame_not_supported"]


def test_error_events_validate_against_the_schemas(server):
    with WS(server.ws_url) as ws:
        for frame in [c[1] for c in CASES] + [b"\x00"]:
            ws.send(frame)
            t = ws.collect(timeout=5)
            assert SCHEMAS.validate(t.error) == [], t.error
