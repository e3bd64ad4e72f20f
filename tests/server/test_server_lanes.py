"""Lanes (``stream_id``) of the reference server (spec §4.4 items 20-23a, §4.5 items 25, 31,
33): FIFO inside a lane, concurrency across lanes, the 16-active and 32-name limits, lane
names, tagging, a cache per lane, forks and per-lane eviction."""

from __future__ import annotations

import time

import pytest
from srv_helpers import TERMINAL, WS, grammar_problems, nonces_of, probe_fields

pytestmark = pytest.mark.timeout(60)

DELAY = {"X-Conformance-Turn-Delay-Ms": "400"}


def by_response(events: list) -> dict:
    """Events grouped by response id (interleaved streams), in arrival order."""
    out: dict = {}
    current_of_lane: dict = {}
    for e in events:
        lane = e.get("stream_id")
        if e["type"] == "response.created":
            rid = e["response"]["id"]
            current_of_lane[lane] = rid
            out[rid] = [e]
        elif "sequence_number" in e and lane in current_of_lane:
            out[current_of_lane[lane]].append(e)
    return out


def collect_all(ws, n: int, timeout: float = 15.0):
    """(arrival time, event) until ``n`` responses ended."""
    got, done = [], 0
    deadline = time.monotonic() + timeout
    while done < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {done} of {n} ended: {[e['type'] for _, e in got]}"
        e = ws.recv(timeout=left)
        got.append((time.monotonic(), e))
        if e["type"] in TERMINAL or e["type"] == "error":
            done += 1
    return got


def test_fifo_inside_a_lane_without_overlap(server):
    with WS(server.ws_url, headers=DELAY) as ws:
        for i in range(3):
            ws.create(input=f"turn {i}", stream_id="lane-a", metadata={"n": str(i)})
        events = [e for _, e in collect_all(ws, 3)]
    types = [e["type"] for e in events]
    starts = [i for i, t in enumerate(types) if t == "response.created"]
    ends = [i for i, t in enumerate(types) if t in TERMINAL]
    assert len(starts) == 3 and all(ends[k] < starts[k + 1] for k in range(2)), types
    assert [events[i]["response"]["metadata"]["n"] for i in starts] == ["0", "1", "2"]
    for k in range(3):
        assert grammar_problems(events[starts[k]:ends[k] + 1], lane="lane-a") == []


def test_lanes_run_concurrently_and_interleave(server):
    with WS(server.ws_url, headers=DELAY) as ws:
        start = time.monotonic()
        ws.create(input="on a", stream_id="a")
        ws.create(input="on b", stream_id="b")
        ws.create(input="on default")
        got = collect_all(ws, 3)
        elapsed = time.monotonic() - start
    events = [e for _, e in got]
    types = [e["type"] for e in events]
    first_end = min(i for i, t in enumerate(types) if t in TERMINAL)
    assert types[:first_end].count("response.created") == 3, types  # all started before one ended
    lanes_in_order = [e.get("stream_id") for e in events]
    switches = sum(1 for x, y in zip(lanes_in_order, lanes_in_order[1:]) if x != y)
    assert switches >= 6, lanes_in_order  # the streams really interleave
    assert elapsed < 1.1  # three 400 ms turns side by side, not one after another
    groups = by_response(events)
    assert len(groups) == 3
    for evs in groups.values():
        assert grammar_problems(evs, lane=evs[0].get("stream_id")) == []


def test_at_most_16_active_responses_then_queued_not_rejected(server):
    n = 19
    with WS(server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "500"}) as ws:
        for i in range(n):
            ws.create(input=f"lane {i}", stream_id=f"lane-{i}", generate=(i % 2 == 0))
        events = [e for _, e in collect_all(ws, n, timeout=20)]
    active = peak = 0
    for e in events:
        if e["type"] == "response.created":
            active += 1
            peak = max(peak, active)
        elif e["type"] in TERMINAL:
            active -= 1
    assert peak == 16, peak
    assert sum(e["type"] == "response.completed" for e in events) == n
    assert not [e for e in events if e["type"] == "error"]
    started = [e["stream_id"] for e in events if e["type"] == "response.created"]
    assert started[16:] == ["lane-16", "lane-17", "lane-18"]  # the waiting creates start in order


def test_32_named_lanes_are_never_released(server):
    with WS(server.ws_url) as ws:
        for i in range(32):
            ws.create(input="x", stream_id=f"n{i}", generate=False)
        t = ws.collect(turns=32)
        assert t.types().count("response.completed") == 32
        for name in ("n32", "n32", "another"):  # the 33rd distinct name, again, and a 34th
            e = ws.turn(input="x", stream_id=name, generate=False)
            assert e.types() == ["error"]
            assert e.error["status"] == 400 and e.error["stream_id"] == name
            err = e.error["error"]
            assert (err["type"], err["code"], err["param"]) == (
                "invalid_request_error", "websocket_stream_limit_reached", "stream_id")
        # known names and the default lane keep working; idle lanes do not free a name
        assert ws.turn(input="x", stream_id="n0").status == "completed"
        assert ws.turn(input="x", generate=False).status == "completed"
        assert ws.turn(input="x", stream_id="n33", generate=False).error_code == "websocket_stream_limit_reached"


@pytest.mark.parametrize("sid", ["", "a" * 257, "has space", "slash/no", "ünïcode", 7, ["a"]])
def test_invalid_stream_id_is_an_untagged_error(server, sid):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="x", stream_id=sid)
        assert t.types() == ["error"]
        assert t.error_code == "invalid_stream_id" and t.error["error"]["param"] == "stream_id"
        assert t.error["status"] == 400 and "stream_id" not in t.error
        ok = ws.turn(input="x", stream_id="a" * 256, generate=False)
        assert ok.status == "completed" and ok.events[0]["stream_id"] == "a" * 256


def test_stream_id_null_is_the_default_lane(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="x", stream_id=None)
        assert t.status == "completed" and grammar_problems(t.events) == []


def test_tagging_named_lane_errors_and_connection_errors(server):
    with WS(server.ws_url, headers=DELAY) as ws:
        ws.create(input="long", stream_id="busy")
        assert ws.recv()["type"] == "response.created"
        ws.send("{not json")
        ws.send({"type": "response.bogus"})
        ws.create(input="x", stream_id="side", previous_response_id="resp_unknown")
        events = [e for _, e in collect_all(ws, 4)]
    errors = [e for e in events if e["type"] == "error"]
    codes = {e["error"]["code"]: e for e in errors}
    assert set(codes) == {"invalid_json", "unknown_event_type", "previous_response_not_found"}
    assert "stream_id" not in codes["invalid_json"] and "stream_id" not in codes["unknown_event_type"]
    assert codes["previous_response_not_found"]["stream_id"] == "side"
    # connection-level errors do not wait behind the busy named lane
    end = next(i for i, e in enumerate(events) if e["type"] in TERMINAL)
    assert all(events.index(e) < end for e in errors)
    assert all(e.get("stream_id") == "busy" for e in events if e["type"] != "error")


def test_cache_per_lane_and_a_fork_keeps_the_source_lane(server):
    with WS(server.ws_url) as ws:
        a1 = ws.turn(input="lane a knows ALPHA-1111", stream_id="a", store=False)
        b1 = ws.turn(input="lane b knows BRAVO-2222", stream_id="b", store=False)
        d1 = ws.turn(input="default knows DELTA-3333", store=False)
        # each lane keeps its latest response
        for rid, lane in ((a1.id, "a"), (b1.id, "b"), (d1.id, None)):
            kw = {"stream_id": lane} if lane else {}
            assert ws.turn(input="probe", previous_response_id=rid, store=False, generate=False, **kw).status \
                == "completed"
        # the warm-ups replaced every lane's latest: the first ids are gone
        miss = ws.turn(input="x", stream_id="a", previous_response_id=a1.id, store=False)
        assert miss.error_code == "previous_response_not_found" and miss.error["stream_id"] == "a"
        a2 = ws.turn(input="lane a again ALPHA-4444", stream_id="a", store=False)
        # fork: lane c continues lane a's latest; then lane a still continues it too
        fork = ws.turn(input="fork", stream_id="c", previous_response_id=a2.id, store=False, **probe_fields())
        assert grammar_problems(fork.events, lane="c") == []
        assert nonces_of(fork) == ["ALPHA-4444"]
        same = ws.turn(input="source lane", stream_id="a", previous_response_id=a2.id, store=False, **probe_fields())
        assert nonces_of(same) == ["ALPHA-4444"]


def test_failed_same_lane_continuation_evicts_a_failed_fork_keeps(server):
    orphan = [{"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}]
    with WS(server.ws_url) as ws:
        a1 = ws.turn(input="parent", stream_id="a", store=False)
        bad_fork = ws.turn(input=orphan, stream_id="b", previous_response_id=a1.id, store=False)
        assert bad_fork.types() == ["error"] and bad_fork.error["stream_id"] == "b"
        failed_fork = ws.turn(input="[[fail]]", stream_id="c", previous_response_id=a1.id, store=False)
        assert failed_fork.types()[-1] == "response.failed"
        bad_default = ws.turn(input="x", previous_response_id=a1.id, store=False, max_output_tokens=3)
        assert bad_default.error_code == "integer_below_min_value"
        # three failed cross-lane forks: the parent is still lane a's latest
        ok = ws.turn(input="still there", stream_id="a", previous_response_id=a1.id, store=False)
        assert ok.status == "completed"
        # a failed continuation on the parent's own lane evicts it
        bad_same = ws.turn(input=orphan, stream_id="a", previous_response_id=ok.id, store=False)
        assert bad_same.error["stream_id"] == "a"
        t = ws.turn(input="gone", stream_id="a", previous_response_id=ok.id, store=False)
        assert t.error_code == "previous_response_not_found" and t.error["stream_id"] == "a"


def test_lifetime_limit_waits_for_every_lane_then_drops_the_queued(server):
    headers = {"X-Conformance-Lifetime": "0.2", "X-Conformance-Turn-Delay-Ms": "400"}
    with WS(server.ws_url, headers=headers) as ws:
        ws.create(input="long a", stream_id="a")
        ws.create(input="long b", stream_id="b")
        ws.create(input="queued on a, never runs", stream_id="a")
        t = ws.collect(timeout=4, turns=3)
        closed = ws.collect(timeout=2)
    types = t.types()
    assert types.count("response.created") == 2 and types.count("response.completed") == 2, types
    last = t.events[-1]
    assert last["type"] == "error" and last["error"]["code"] == "websocket_connection_limit_reached"
    assert "stream_id" not in last
    assert closed.closed and ws.close_code == 1000
