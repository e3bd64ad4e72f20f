"""Self-tests of conformance/model.py (spec §4.4-§4.7).

Unit tests, one per rule, then a scenario table (data) mirroring the spec's example streams
and the Open Responses WebSocket scenarios (§4.5 item 30 eviction, item 29 reconnect).
"""
from __future__ import annotations

import pytest

from conformance.model import (
    INVALID_STREAM_ID_CODE,
    LIMIT_CODE,
    NOT_FOUND_CODE,
    STREAM_LIMIT_CODE,
    Capabilities,
    World,
)


def create(**fields) -> dict:
    return {"type": "response.create", "model": "gpt-5.6", **fields}


def fco(call_id: str) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": "{}"}


def turn(world: World, conn: int, rid: str, t=None, calls=(), outcome="completes", **fields) -> str:
    """send + observe the predicted outcome (the server agrees); returns the prediction outcome."""
    req = create(**fields)
    p = world.send(conn, req, t)
    world.observe(conn, req, rid if p.outcome == "completes" else None,
                  outcome if p.outcome == "completes" else p.outcome, call_ids=calls, code=p.expected_code)
    return p.outcome


# ----------------------------------------------------------------------------------------
# unit tests


def test_new_chain_completes_and_is_cached():
    w = World()
    c = w.open()
    p = w.predict(c, create(input="hi"))
    assert (p.outcome, p.expected_code, p.queued_behind, p.ok) == ("completes", None, 0, True)
    w.observe(c, create(input="hi"), "r1", "completes")
    assert w.cached(c) == {None: "r1"}


@pytest.mark.parametrize("store", [True, False])
def test_cache_hit_latest(store):
    w = World()
    c = w.open()
    turn(w, c, "r1", store=store)
    p = w.predict(c, create(previous_response_id="r1", store=store, input="more"))
    assert p.outcome == "completes" and not p.hydrated


def test_non_latest_store_false_is_a_miss():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False)
    turn(w, c, "r2", store=False)
    p = w.predict(c, create(previous_response_id="r1", store=False))
    assert (p.outcome, p.expected_code, p.expected_status) == ("not_found", NOT_FOUND_CODE, 400)


def test_non_latest_store_true_hydrates():
    w = World()
    c = w.open()
    turn(w, c, "r1")  # store defaults to true
    turn(w, c, "r2")
    p = w.predict(c, create(previous_response_id="r1"))
    assert p.outcome == "completes" and p.hydrated


@pytest.mark.parametrize("caps", [dict(zdr=True), dict(store_true_hydrates=False)], ids=["zdr", "no-hydration"])
def test_store_true_miss_without_hydration_is_not_found(caps):
    w = World(**caps)
    c = w.open()
    turn(w, c, "r1", store=True)
    turn(w, c, "r2", store=True)
    assert w.predict(c, create(previous_response_id="r1")).outcome == "not_found"


def test_zdr_persists_nothing():
    w = World(zdr=True)
    c = w.open()
    turn(w, c, "r1", store=True)
    assert w.store == {}
    assert w.predict(c, create(previous_response_id="r1")).outcome == "completes"  # memory cache works [35]


def test_unknown_id_is_not_found():
    w = World()
    c = w.open()
    assert w.predict(c, create(previous_response_id="resp_never")).outcome == "not_found"


def test_not_found_status_from_capabilities():
    w = World(not_found_status=404)
    c = w.open()
    assert w.predict(c, create(previous_response_id="x")).expected_status == 404


def test_orphan_function_call_output_is_invalid_and_evicts():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False)
    req = create(previous_response_id="r1", store=False, input=[fco("call_nope")])
    p = w.predict(c, req)
    assert p.outcome == "invalid" and p.expected_status == 400
    w.observe(c, req, None, "invalid")
    assert w.cached(c) == {}
    assert w.predict(c, create(previous_response_id="r1", store=False)).outcome == "not_found"


def test_evicted_store_true_id_stays_hydratable():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=True)
    assert turn(w, c, "x", previous_response_id="r1", input=[fco("call_nope")]) == "invalid"
    p = w.predict(c, create(previous_response_id="r1"))
    assert p.outcome == "completes" and p.hydrated


def test_failed_response_evicts_its_parent_and_is_not_cached():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False)
    assert turn(w, c, "r2", previous_response_id="r1", store=False, outcome="failed") == "completes"
    assert w.cached(c) == {}
    assert w.predict(c, create(previous_response_id="r1", store=False)).outcome == "not_found"
    assert w.predict(c, create(previous_response_id="r2", store=False)).outcome == "not_found"


def test_incomplete_response_is_cached():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False, outcome="incomplete")
    assert w.predict(c, create(previous_response_id="r1", store=False)).outcome == "completes"


def test_validation_error_on_continuation_evicts():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False)
    assert turn(w, c, "x", previous_response_id="r1", store=False, background=True) == "invalid"
    assert w.predict(c, create(previous_response_id="r1", store=False)).outcome == "not_found"


def test_function_call_output_for_a_known_call():
    w = World()
    c = w.open()
    turn(w, c, "r1", store=False, calls=["call_1"])
    assert turn(w, c, "r2", previous_response_id="r1", store=False, input=[fco("call_1")]) == "completes"
    # the call stays in the context of the chain
    assert w.predict(c, create(previous_response_id="r2", store=False, input=[fco("call_1")])).outcome == "completes"
    assert w.predict(c, create(previous_response_id="r2", store=False, input=[fco("call_9")])).outcome == "invalid"


def test_calls_read_from_the_terminal_response():
    w = World()
    c = w.open()
    req = create(store=False)
    w.send(c, req)
    w.observe(c, req, "r1", "completed",
              response={"output": [{"type": "function_call", "id": "fc_1", "call_id": "call_7", "name": "f",
                                    "arguments": "{}"}]})
    assert w.predict(c, create(previous_response_id="r1", input=[fco("call_7")])).outcome == "completes"


def test_orphan_in_a_new_chain_and_echoed_call():
    w = World()
    c = w.open()
    assert w.predict(c, create(input=[fco("call_1")])).outcome == "invalid"
    echoed = [{"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}, fco("call_1")]
    assert w.predict(c, create(input=echoed)).outcome == "completes"


def test_generate_false_is_cached_or_invalid():
    w = World()
    c = w.open()
    turn(w, c, "warm", store=False, generate=False)
    assert w.predict(c, create(previous_response_id="warm", store=False)).outcome == "completes"
    w2 = World(generate_false=False)
    c2 = w2.open()
    assert w2.predict(c2, create(generate=False)).outcome == "invalid"


def test_previous_with_conversation_is_invalid():
    w = World()
    c = w.open()
    assert w.predict(c, create(previous_response_id="r", conversation="conv_1")).outcome == "invalid"


def test_background_rejected_only_when_claimed():
    w = World()
    assert w.predict(w.open(), create(background=True)).outcome == "invalid"
    w = World(background_rejected=False)
    assert w.predict(w.open(), create(background=True)).outcome == "completes"


def test_other_connection_store_false_is_not_found():
    w = World()
    a, b = w.open(), w.open()
    turn(w, a, "r1", store=False)
    assert w.predict(b, create(previous_response_id="r1", store=False)).outcome == "not_found"
    turn(w, a, "r2", store=True)
    assert w.predict(b, create(previous_response_id="r2")).hydrated


def test_close_drops_every_lane():
    w = World(lanes=True)
    c = w.open()
    turn(w, c, "r1", store=False, stream_id="a")
    turn(w, c, "r2", store=False)
    w.close(c)
    assert w.cached(c) == {}
    with pytest.raises(ValueError):
        w.predict(c, create())


def test_queued_create_is_queued_behind_and_sees_the_future_cache():
    w = World()
    c = w.open()
    turn(w, c, "r0", store=False)
    first = create(previous_response_id="r0", store=False)
    assert w.send(c, first).queued_behind == 0
    # sent while `first` is in flight: by the time it runs, r0 is no longer the latest
    second = create(previous_response_id="r0", store=False)
    p = w.predict(c, second)
    assert p.outcome == "not_found" and p.queued_behind == 1
    independent = w.predict(c, create(input="new chain"))
    assert independent.outcome == "completes" and independent.queued_behind == 1
    w.observe(c, first, "r1", "completes")
    assert w.predict(c, create(input="x")).queued_behind == 0


def test_queued_behind_a_failing_continuation_sees_the_eviction():
    w = World()
    c = w.open()
    turn(w, c, "r0", store=False)
    w.send(c, create(previous_response_id="r0", store=False, input=[fco("call_x")]))  # will fail
    assert w.predict(c, create(previous_response_id="r0", store=False)).outcome == "not_found"


def test_busy_reject_policy():
    w = World(busy_policy="reject", busy_error_code="concurrent_request")
    c = w.open()
    first = create(input="a")
    w.send(c, first)
    p = w.send(c, create(input="b"))
    assert (p.outcome, p.expected_code) == ("rejected_busy", "concurrent_request")
    w.observe(c, first, "r1", "completes")
    assert w.predict(c, create(input="c")).outcome == "completes"


def test_busy_reject_counts_only_running_turns():
    w = World(busy_policy="reject")
    c = w.open()
    w.send(c, create(previous_response_id="gone"))  # answered at once with an error
    assert w.predict(c, create(input="b")).outcome == "completes"


def test_bad_busy_policy():
    with pytest.raises(ValueError):
        Capabilities(busy_policy="drop")


def test_lifetime_limit():
    w = World(lifetime_s=60.0)
    c = w.open(now=100.0)
    assert w.predict(c, create(), now=159.9).outcome == "completes"
    p = w.send(c, create(), now=160.0)
    assert (p.outcome, p.expected_code, p.expected_status) == ("limit_reached", LIMIT_CODE, 400)
    assert w.predict(c, create()).outcome == "limit_reached"  # expired for good
    unlimited = World(lifetime_s=None)
    assert unlimited.predict(unlimited.open(now=0.0), create(), now=1e9).outcome == "completes"


def test_lifetime_limit_observed():
    w = World()
    c = w.open()
    w.observe(c, create(), None, "limit_reached", code=LIMIT_CODE)
    assert w.predict(c, create()).outcome == "limit_reached"


@pytest.mark.parametrize("sid", ["", "has space", "x" * 257, "ünï", 5])
def test_invalid_stream_id(sid):
    w = World(lanes=True)
    p = w.predict(w.open(), create(stream_id=sid))
    assert (p.outcome, p.expected_code) == ("invalid", INVALID_STREAM_ID_CODE)


def test_stream_id_without_lanes_is_invalid():
    w = World(lanes=False)
    p = w.predict(w.open(), create(stream_id="main"))
    assert p.outcome == "invalid" and p.expected_code is None


def test_named_lane_limit():
    w = World(lanes=True, max_named_lanes=32)
    c = w.open()
    for i in range(32):
        assert turn(w, c, f"r{i}", stream_id=f"lane_{i}") == "completes"
    p = w.predict(c, create(stream_id="lane_33"))
    assert (p.outcome, p.expected_code) == ("limit_reached", STREAM_LIMIT_CODE)
    w.observe(c, create(stream_id="lane_33"), None, "limit_reached", code=STREAM_LIMIT_CODE)
    assert w.predict(c, create(stream_id="lane_0")).outcome == "completes"  # reuse is fine
    assert w.predict(c, create()).outcome == "completes"  # the default lane does not count


def test_lanes_cache_per_lane_and_fork():
    w = World(lanes=True)
    c = w.open()
    turn(w, c, "p1", store=False, stream_id="planner")
    turn(w, c, "q1", store=False, stream_id="research")
    assert w.cached(c) == {"planner": "p1", "research": "q1"}
    assert w.predict(c, create(previous_response_id="p1", store=False, stream_id="planner")).outcome == "completes"
    # fork: lane B continues from lane A's latest [33]
    assert w.predict(c, create(previous_response_id="p1", store=False, stream_id="fork")).outcome == "completes"
    # a lane queue is per lane: research in flight does not queue planner
    w.send(c, create(store=False, stream_id="research"))
    assert w.predict(c, create(store=False, stream_id="planner")).queued_behind == 0


def test_failed_cross_lane_fork_preserves_the_parent():
    w = World(lanes=True)
    c = w.open()
    turn(w, c, "p1", store=False, stream_id="planner")
    assert turn(w, c, "x", previous_response_id="p1", store=False, stream_id="fork",
                input=[fco("call_nope")]) == "invalid"
    assert w.predict(c, create(previous_response_id="p1", store=False, stream_id="planner")).outcome == "completes"


def test_from_profile_dict_and_real_profile():
    caps = Capabilities.from_profile({
        "connection": {"lifetime_seconds": 1500},
        "concurrency": {"busy_policy": "reject", "busy_error_code": "concurrent_request", "max_named_lanes": 4},
        "features": {"generate_false": False, "lanes": True},
        "cache": {"store_true_hydrates": False, "zdr": True},
        "errors": {"not_found_status": 404},
    })
    assert caps == Capabilities(store_true_hydrates=False, zdr=True, busy_policy="reject",
                                busy_error_code="concurrent_request", generate_false=False, lifetime_s=1500.0,
                                lanes=True, max_named_lanes=4, not_found_status=404)
    assert not caps.hydrates
    try:
        from conformance.target import load_profile
    except ImportError:  # pragma: no cover
        pytest.skip("conformance.target not available")
    openai = Capabilities.from_profile(load_profile("openai"))
    assert (openai.busy_policy, openai.lanes, openai.lifetime_s, openai.hydrates) == ("queue", True, 3600.0, True)


def test_capabilities_defaults_are_the_profile_defaults():
    """One source: the dataclass defaults equal an empty profile table's (target._DEFAULTS)."""
    assert Capabilities() == Capabilities.from_profile({})


def test_from_profile_table_is_checked_like_a_file():
    from conformance.target import ProfileError
    with pytest.raises(ProfileError, match="busy_policy"):
        Capabilities.from_profile({"concurrency": {"busy_policy": "drop"}})
    assert Capabilities.from_profile({"extends": "openai"}).lanes    # openai.toml, not the defaults


def test_world_kwargs_or_capabilities():
    assert World(zdr=True).caps.zdr
    with pytest.raises(TypeError):
        World(Capabilities(), zdr=True)


def test_observe_rejects_unknown_outcome():
    w = World()
    with pytest.raises(ValueError):
        w.observe(w.open(), create(), None, "exploded")


# ----------------------------------------------------------------------------------------
# scenario table: (id, capabilities, steps); a step is
#   ("open", conn[, t])  ("close", conn)
#   ("turn", conn, label, fields, expected outcome[, expected code[, observed ending]])
#       send + observe; "@label" in fields names that turn's response id; calls made by the
#       response: fields["_calls"]
#   ("send", conn, label, fields, expected outcome)   in flight, observed later by
#   ("observe", conn, label, outcome)


SCENARIOS = [
    ("example-text-turn", {}, [
        ("open", "A"),
        ("turn", "A", "t1", {"store": False, "input": "Say hello"}, "completes"),
    ]),
    ("example-function-call-turn", {}, [
        ("open", "A"),
        ("turn", "A", "fc1", {"store": False, "tools": [{"type": "function", "name": "get_weather"}],
                              "_calls": ["call_example_0001"]}, "completes"),
        ("turn", "A", "fc2", {"store": False, "previous_response_id": "@fc1",
                              "input": [fco("call_example_0001")]}, "completes"),
    ]),
    ("example-generate-false-warmup", {}, [
        ("open", "A"),
        ("turn", "A", "warm", {"store": False, "generate": False, "instructions": "terse"}, "completes"),
        ("turn", "A", "w2", {"store": False, "previous_response_id": "@warm", "input": "Where do I live?"},
         "completes"),
    ]),
    ("warmup-chain-several-turns-later", {}, [
        ("open", "A"),
        ("turn", "A", "warm", {"store": False, "generate": False}, "completes"),
        ("turn", "A", "w2", {"store": False, "previous_response_id": "@warm"}, "completes"),
        ("turn", "A", "w3", {"store": False, "previous_response_id": "@w2"}, "completes"),
    ]),
    # Open Responses websocket-failed-continuation-evicts-cache, spec §4.5 item 30
    ("example-failed-continuation-evicts-cache", {}, [
        ("open", "A"),
        ("turn", "A", "e1", {"store": False, "input": "Remember: ember"}, "completes"),
        ("turn", "A", "e2", {"store": False, "previous_response_id": "@e1",
                             "input": [fco("call_does_not_exist")]}, "invalid"),
        ("turn", "A", "e3", {"store": False, "previous_response_id": "@e1", "input": "code word?"},
         "not_found", NOT_FOUND_CODE),
        # the connection stays usable: a new chain works
        ("turn", "A", "e4", {"store": False, "input": "again"}, "completes"),
    ]),
    ("evict-store-true-then-hydrate", {}, [
        ("open", "A"),
        ("turn", "A", "e1", {"store": True}, "completes"),
        ("turn", "A", "e2", {"previous_response_id": "@e1", "input": [fco("call_x")]}, "invalid"),
        ("turn", "A", "e3", {"previous_response_id": "@e1"}, "completes"),
    ]),
    ("evict-store-true-zdr", {"zdr": True}, [
        ("open", "A"),
        ("turn", "A", "e1", {"store": True}, "completes"),
        ("turn", "A", "e2", {"previous_response_id": "@e1", "input": [fco("call_x")]}, "invalid"),
        ("turn", "A", "e3", {"previous_response_id": "@e1"}, "not_found", NOT_FOUND_CODE),
    ]),
    # Open Responses websocket-reconnect-store-false-recovery, spec §4.5 item 29 / §4.6
    ("reconnect-store-false-recovery", {}, [
        ("open", "A"),
        ("turn", "A", "r1", {"store": False, "input": "My name is KIWI-7342"}, "completes"),
        ("close", "A"),
        ("open", "B"),
        ("turn", "B", "r2", {"store": False, "previous_response_id": "@r1"}, "not_found", NOT_FOUND_CODE),
        ("turn", "B", "r3", {"store": False, "input": "full context again"}, "completes"),
        ("turn", "B", "r4", {"store": False, "previous_response_id": "@r3"}, "completes"),
    ]),
    ("reconnect-store-true-continues", {}, [
        ("open", "A"),
        ("turn", "A", "r1", {"store": True}, "completes"),
        ("close", "A"),
        ("open", "B"),
        ("turn", "B", "r2", {"previous_response_id": "@r1"}, "completes"),
    ]),
    ("reconnect-store-true-no-hydration", {"store_true_hydrates": False}, [
        ("open", "A"),
        ("turn", "A", "r1", {"store": True}, "completes"),
        ("close", "A"),
        ("open", "B"),
        ("turn", "B", "r2", {"previous_response_id": "@r1"}, "not_found", NOT_FOUND_CODE),
    ]),
    ("other-connection-store-false", {}, [
        ("open", "A"),
        ("open", "B"),
        ("turn", "A", "a1", {"store": False}, "completes"),
        ("turn", "B", "b1", {"store": False, "previous_response_id": "@a1"}, "not_found", NOT_FOUND_CODE),
        ("turn", "A", "a2", {"store": False, "previous_response_id": "@a1"}, "completes"),
    ]),
    ("example-two-lanes-interleaved", {"lanes": True}, [
        ("open", "A"),
        ("send", "A", "plan", {"stream_id": "planner", "store": False}, "completes"),
        ("send", "A", "risk", {"stream_id": "research", "store": False}, "completes"),
        ("observe", "A", "plan", "completes"),
        ("observe", "A", "risk", "completes"),
        ("turn", "A", "plan2", {"stream_id": "planner", "store": False, "previous_response_id": "@plan"},
         "completes"),
        ("turn", "A", "risk2", {"stream_id": "research", "store": False, "previous_response_id": "@risk"},
         "completes"),
    ]),
    ("queue-fifo-default-lane", {}, [
        ("open", "A"),
        ("send", "A", "q1", {"store": False, "input": "one"}, "completes"),
        ("send", "A", "q2", {"store": False, "input": "two"}, "completes"),
        ("observe", "A", "q1", "completes"),
        ("observe", "A", "q2", "completes"),
        ("turn", "A", "q3", {"store": False, "previous_response_id": "@q1"}, "not_found", NOT_FOUND_CODE),
        ("turn", "A", "q4", {"store": False, "previous_response_id": "@q2"}, "completes"),
    ]),
    ("busy-reject", {"busy_policy": "reject", "busy_error_code": "concurrent_request"}, [
        ("open", "A"),
        ("send", "A", "b1", {"input": "one"}, "completes"),
        ("send", "A", "b2", {"input": "two"}, "rejected_busy"),
        ("observe", "A", "b1", "completes"),
        ("observe", "A", "b2", "rejected_busy"),
        ("turn", "A", "b3", {"previous_response_id": "@b1"}, "completes"),
    ]),
    ("lifetime-limit", {"lifetime_s": 3600.0}, [
        ("open", "A", 0.0),
        ("turn", "A", "l1", {"store": True, "_t": 10.0}, "completes"),
        ("turn", "A", "l2", {"store": True, "previous_response_id": "@l1", "_t": 3600.0}, "limit_reached",
         LIMIT_CODE),
        ("open", "B", 3601.0),
        ("turn", "B", "l3", {"previous_response_id": "@l1", "_t": 3602.0}, "completes"),
    ]),
    ("steer-successor-chains", {}, [
        # the automatic successor of a steered response is observed like a create continuing it
        ("open", "A"),
        ("turn", "A", "s1", {"model": "gpt-6-astra", "input": "plan"}, "completes", None, "incomplete"),
        ("turn", "A", "s2", {"previous_response_id": "@s1", "input": "keep it small"}, "completes"),
    ]),
]


def run_scenario(caps: dict, steps: list) -> list[tuple]:
    world = World(**caps)
    conns: dict[str, int] = {}
    ids: dict[str, str] = {}
    sent: dict[str, tuple[dict, object]] = {}
    got = []

    def resolve(fields: dict) -> tuple[dict, list, float | None]:
        fields = dict(fields)
        calls = fields.pop("_calls", [])
        t = fields.pop("_t", None)
        for k, v in fields.items():
            if isinstance(v, str) and v.startswith("@"):
                fields[k] = ids.get(v[1:], "resp_unknown_" + v[1:])
        return create(**fields), calls, t

    for step in steps:
        kind = step[0]
        if kind == "open":
            conns[step[1]] = world.open(now=step[2] if len(step) > 2 else None)
        elif kind == "close":
            world.close(conns[step[1]])
        elif kind == "turn":
            _, conn, label, fields, expected, *rest = step
            code = rest[0] if rest else None
            ending = rest[1] if len(rest) > 1 else "completes"
            req, calls, t = resolve(fields)
            p = world.send(conns[conn], req, t)
            got.append((label, p.outcome, p.expected_code))
            assert (label, p.outcome) == (label, expected), p.reason
            if code is not None:
                assert p.expected_code == code
            rid = f"resp_{label}"
            if p.outcome == "completes":
                ids[label] = rid
            world.observe(conns[conn], req, rid if p.outcome == "completes" else None,
                          ending if p.outcome == "completes" else p.outcome, call_ids=calls,
                          code=p.expected_code)
        elif kind == "send":
            _, conn, label, fields, expected = step
            req, calls, t = resolve(fields)
            p = world.send(conns[conn], req, t)
            got.append((label, p.outcome, p.expected_code))
            assert (label, p.outcome) == (label, expected), p.reason
            sent[label] = (req, calls)
        elif kind == "observe":
            _, conn, label, outcome = step
            req, calls = sent[label]
            rid = f"resp_{label}" if outcome == "completes" else None
            if rid:
                ids[label] = rid
            world.observe(conns[conn], req, rid, outcome, call_ids=calls)
        else:  # pragma: no cover
            raise ValueError(kind)
    return got


@pytest.mark.parametrize("sid,caps,steps", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario(sid, caps, steps):
    run_scenario(caps, steps)


def test_either_busy_policy_predicts_queue_or_reject():
    from conformance.model import Capabilities, World
    caps = Capabilities.from_profile({"concurrency": {"busy_policy": "either"}, "errors": {"not_found_status": 0}})
    world = World(caps)
    conn = world.open()
    first = {"type": "response.create", "input": "a"}
    world.send(conn, first)
    busy = world.predict(conn, {"type": "response.create", "input": "b"})
    assert busy.outcome == "completes" and busy.queued_behind == 1 and busy.may_reject_busy
    miss = world.predict(conn, {"type": "response.create", "input": "c", "previous_response_id": "resp_x"})
    assert miss.outcome == "not_found" and miss.expected_status is None   # 0 = any 4xx


def test_builtin_profiles_all_give_capabilities():
    from conformance.model import Capabilities
    from conformance.target import load_profile
    for name in ("openai", "openai-2026-02", "xai", "open-responses", "reference"):
        Capabilities.from_profile(load_profile(name))


def test_steering_predictions_and_the_successor():
    w = World(lanes=True, steering=True)
    c = w.open()
    first = {"input": "hi", "store": False, "stream_id": "a"}
    w.send(c, first)
    assert w.predict_steer(c, "resp_x", running=True).outcome == "steer_accepted"
    w.observe(c, first, "resp_1", "completed")
    ended = w.predict_steer(c, "resp_1", running=False)
    assert (ended.outcome, ended.expected_code) == ("steer_failed", None)   # either ended code
    assert w.predict_steer(c, "resp_elsewhere", running=False).expected_code == "response_not_found"
    # the successor replaces the target as lane a's latest; the default lane is untouched
    w.observe_successor(c, "resp_1", "resp_2", "a", store=False)
    assert w.cached(c) == {"a": "resp_2"}
    assert w.predict(c, {"input": "x", "previous_response_id": "resp_1", "stream_id": "a"}).outcome == "not_found"
    assert w.predict(c, {"input": "x", "previous_response_id": "resp_2", "stream_id": "b"}).outcome == "completes"
    plain = World(steering=False)
    assert plain.predict_steer(plain.open(), "resp_1", running=True).expected_code == "steering_not_supported"
