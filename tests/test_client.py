"""Self-tests of conformance/client.py against a tiny hostile in-process server (loopback).

Every hostile behaviour must end in a clear Turn status within a bounded time, and the key
must never leak into transcripts, reprs or exception messages.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time

import pytest
from websockets.sync.server import serve

from conformance.client import (ClosedAtOnce, Connection, HandshakeRefused, MAX_FRAME_BYTES, RateLimited, TargetUnreachable, Turn)
from conformance.target import Target, load_profile

KEY = "sk-test-SECRETSECRET-0123456789abcdef"


def _events(rid: str = "resp_1") -> list[dict]:
    resp = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "hi", "annotations": []}]}
    done = dict(resp, status="completed", output=[msg],
                usage={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4})
    return [
        {"type": "response.created", "sequence_number": 0, "response": resp},
        {"type": "response.in_progress", "sequence_number": 1, "response": resp},
        {"type": "response.completed", "sequence_number": 2, "response": done},
    ]


def _handler(ws):
    path = ws.request.path.split("?")[0]
    if path == "/close-at-once":     # the upgrade accepted, then refused by a close (spec §4.1 item 4a)
        ws.close(1008, "policy violation")
        return
    try:
        raw = ws.recv(timeout=5)
    except Exception:
        return
    if path == "/ok":
        for ev in _events():
            ws.send(json.dumps(ev))
        # a second create gets a second response
        try:
            while True:
                ws.recv(timeout=5)
                for ev in _events("resp_2"):
                    ws.send(json.dumps(ev))
        except Exception:
            return
    elif path == "/bad-json":
        ws.send("{not json")
        time.sleep(2.5)
    elif path == "/binary":
        ws.send(b"\x00\x01binary")
        time.sleep(2.5)
    elif path == "/sse":
        ws.send("data: {\"type\":\"response.created\"}\n\n")
        time.sleep(2.5)
    elif path == "/silence":
        time.sleep(2.5)
    elif path == "/abrupt":
        ws.send(json.dumps(_events()[0]))
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()
    elif path == "/huge":
        ws.send(json.dumps(_events()[0]))
        ws.send("x" * (MAX_FRAME_BYTES + 10))
        time.sleep(2.5)
    elif path == "/rate-limited":
        ws.send(json.dumps({"type": "error", "status": 429, "error": {
            "type": "requests", "code": "rate_limit_exceeded", "message": f"slow down {raw[:40]}",
            "param": None, "headers": {"x-ratelimit-reset-requests": "120ms"}}}))
        time.sleep(1)
    elif path == "/echo-key":
        ws.send(json.dumps({"type": "error", "status": 400, "error": {
            "type": "invalid_request_error", "code": "bad", "message": f"you sent {raw}"}}))
        time.sleep(1)


def _process_request(conn, request):
    if request.path.startswith("/refuse"):
        return conn.respond(401, f"Incorrect API key provided: {request.headers.get('Authorization')}\n")
    return None


@pytest.fixture(scope="module")
def hostile():
    with serve(_handler, "127.0.0.1", 0, process_request=_process_request, max_size=None) as server:
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        yield server.socket.getsockname()[1]
        server.shutdown()


def _target(port: int, path: str, timeout: float = 2.0) -> Target:
    return Target(ws_url=f"ws://127.0.0.1:{port}{path}", http_base_url=None,
                  profile=load_profile("reference"), model="m-test", api_key=KEY,
                  turn_timeout=timeout, max_output_tokens=16)


def _assert_no_key(*texts):
    for text in texts:
        assert KEY not in text
        assert KEY[:16] not in text


def test_normal_turn_and_defaults(hostile):
    with Connection.open(_target(hostile, "/ok")) as conn:
        turn = conn.turn(input="hello", store=None)
        assert turn.status == "completed", turn
        assert turn.response_id == "resp_1"
        assert turn.output_text == "hi"
        assert turn.create == {"type": "response.create", "model": "m-test", "max_output_tokens": 16, "input": "hello"}
        assert turn.usage["output_tokens"] == 1
        assert turn.timings["elapsed"] >= 0
        second = conn.turn(input="again", model="other", max_output_tokens=None)
        assert second.status == "completed" and second.response_id == "resp_2"
        assert second.create["model"] == "other" and "max_output_tokens" not in second.create
    assert conn.closed and not conn.closed_by_peer
    sent = [x for _, d, x in conn.transcript if d == "sent"]
    assert len(sent) == 2 and json.loads(sent[0])["input"] == "hello"


@pytest.mark.parametrize("path, clause", [("/bad-json", "WS-TEXT-JSON-FRAMES"),
                                          ("/binary", "WS-TEXT-JSON-FRAMES"),
                                          ("/sse", "WS-NO-SSE-FRAMING")])
def test_bad_frames_give_findings_and_timeout(hostile, path, clause):
    t0 = time.monotonic()
    with Connection.open(_target(hostile, path, timeout=1.0)) as conn:
        turn = conn.turn(input="x")
    assert time.monotonic() - t0 < 4
    assert turn.status == "timeout", turn
    assert clause in {f.clause for f in turn.findings}, turn.findings
    assert "no end of request" in turn.detail


def test_silence_times_out(hostile):
    t0 = time.monotonic()
    with Connection.open(_target(hostile, "/silence", timeout=0.5)) as conn:
        turn = conn.turn(input="x")
        assert conn.recv_until(lambda m: True, timeout=0.3) == []
    assert turn.status == "timeout" and turn.events == []
    assert time.monotonic() - t0 < 3


def test_abrupt_close(hostile):
    t0 = time.monotonic()
    conn = Connection.open(_target(hostile, "/abrupt", timeout=5))
    turn = conn.turn(input="x")
    assert turn.status == "closed", turn
    assert conn.closed and conn.closed_by_peer
    assert time.monotonic() - t0 < 4
    assert turn.event_types == ["response.created"]
    # the stream ended without a terminal event: the monitor says so
    assert any(f.clause in ("STREAM-ONE-TERMINAL", "STREAM-TERMINAL-LAST") or "terminal" in f.message
               for f in conn.findings), conn.findings
    # further use is harmless
    assert conn.turn(input="y").status == "closed"
    conn.close()


def test_close_right_after_the_upgrade_is_a_refusal(hostile):
    conn = Connection.open(_target(hostile, "/close-at-once", timeout=5))
    with pytest.raises(ClosedAtOnce, match="refused: .*close code 1008"):
        conn.turn(input="x")
    # a socket that answered something first and then closed is an ordinary closed turn
    other = Connection.open(_target(hostile, "/abrupt", timeout=5))
    assert other.turn(input="x").status == "closed"


def test_huge_frame_closes_cleanly(hostile):
    t0 = time.monotonic()
    with Connection.open(_target(hostile, "/huge", timeout=10)) as conn:
        turn = conn.turn(input="x")
    assert turn.status == "closed", turn
    assert conn.close_code == 1009 or "1009" in turn.detail or "too big" in turn.detail.lower(), turn.detail
    assert time.monotonic() - t0 < 10


def test_frame_size_follows_the_profile(hostile):
    """A profile whose max_frame_bytes is above MAX_FRAME_BYTES raises the client's own limit:
    the suite's client accepts any frame size the profile allows (§1.4, update 2026-12)."""
    target = _target(hostile, "/huge", timeout=5)
    target.profile = copy.deepcopy(target.profile)
    target.profile.data["connection"]["max_frame_bytes"] = MAX_FRAME_BYTES + 1024
    with Connection.open(target) as conn:
        conn.turn(input="x")
    assert conn.close_code != 1009, conn.close_detail
    sizes = [len(x) for _, direction, x in conn.transcript if direction == "received"]
    assert any(f"{MAX_FRAME_BYTES + 10 - 256 * 1024} more chars" in x for _, _, x in conn.transcript), sizes


def test_handshake_refused_redacts_echoed_key(hostile):
    with pytest.raises(HandshakeRefused) as info:
        Connection.open(_target(hostile, "/refuse"))
    exc = info.value
    assert exc.status == 401
    assert "Incorrect API key" in exc.body
    _assert_no_key(str(exc), exc.body, repr(exc), json.dumps(exc.headers))


def test_key_never_in_transcript_or_repr(hostile):
    target = _target(hostile, "/echo-key")
    with Connection.open(target) as conn:
        turn = conn.turn(input=f"my key is {KEY}")
    assert turn.status == "error" and turn.error_code == "bad"
    texts = [conn.transcript_text(), repr(conn), repr(turn), turn.summary(), repr(target), str(target),
             json.dumps(conn.transcript)]
    _assert_no_key(*texts)
    assert "<redacted-key>" in conn.transcript_text()


def test_unreachable_is_target_unreachable():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    with pytest.raises(TargetUnreachable) as info:
        Connection.open(_target(port, "/v1/responses"), timeout=2)
    assert KEY not in str(info.value)


def test_handshake_timeout_is_unreachable():
    # a TCP listener that never answers the HTTP upgrade
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        t0 = time.monotonic()
        with pytest.raises(TargetUnreachable):
            Connection.open(_target(s.getsockname()[1], "/v1/responses"), timeout=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        s.close()


def test_headers_override_and_remove_auth(hostile):
    target = _target(hostile, "/refuse")
    with pytest.raises(HandshakeRefused) as info:
        Connection.open(target, headers={"authorization": None})
    assert "None" in info.value.body     # the server saw no Authorization header
    with pytest.raises(HandshakeRefused) as info:
        Connection.open(target, headers={"Authorization": "Bearer sk-other"})
    assert "sk-other" in info.value.body


def test_turn_helpers_on_error_shapes():
    nested = Turn(0, {}, [], None, {"type": "error", "status": 400, "error": {"code": "c", "message": "m"}},
                  "error", [], {})
    flat = Turn(0, {}, [], None, {"type": "error", "code": "flat", "message": "m"}, "error", [], {})
    assert (nested.error_code, nested.error_status, nested.error_message) == ("c", 400, "m")
    assert flat.error_code == "flat" and flat.error_status is None
    assert "error.code='c'" in nested.summary()


def test_rate_limit_is_an_error_not_a_verdict(hostile):
    conn = Connection.open(_target(hostile, "/rate-limited"))
    with pytest.raises(RateLimited) as info:
        conn.turn(input="hi")
    assert "429" in str(info.value)
    _assert_no_key(str(info.value))
    conn.close()
