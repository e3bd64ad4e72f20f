"""State rules of the reference server (spec §4.4-4.7): cache, store, ZDR, eviction, warm-up,
queueing, busy policy, lifetime, auth and key isolation, persistence, profiles."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from srv_helpers import (
    KEY_A,
    KEY_B,
    WS,
    grammar_problems,
    handshake_status,
    nonces_of,
    probe_fields,
    split_by_response,
)
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(30)

NOT_FOUND = {
    "type": "error",
    "status": 400,
    "error": {"type": "invalid_request_error", "code": "previous_response_not_found",
              "message": None, "param": "previous_response_id"},
}


def assert_not_found(turn, rid):
    assert turn.error is not None, turn.types()
    expected = json.loads(json.dumps(NOT_FOUND))
    expected["error"]["message"] = f"Previous response with id '{rid}' not found."
    assert turn.error == expected
    assert turn.types() == ["error"]


def http(method, url, key=KEY_A, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


# --- cache -------------------------------------------------------------------------------

@pytest.mark.parametrize("store", [True, False])
def test_cache_hit_continues_with_only_new_input(server, store):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="plant FIG-1001", store=store)
        t2 = ws.turn(input="next GUAVA-2002", store=store, previous_response_id=t1.id)
        t3 = ws.turn(input="probe", store=store, previous_response_id=t2.id, **probe_fields())
    assert t3.status == "completed"
    assert nonces_of(t3) == ["FIG-1001", "GUAVA-2002"]


def test_cache_holds_only_the_latest_response(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="one", store=False)
        ws.turn(input="two", store=False)
        again = ws.turn(input="three", store=False, previous_response_id=t1.id)
    assert_not_found(again, t1.id)


def test_store_false_id_is_a_miss_on_another_connection(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="secret KIWI-1111", store=False)
    with WS(server.ws_url) as ws2:
        t2 = ws2.turn(input="go on", store=False, previous_response_id=t1.id)
    assert_not_found(t2, t1.id)


def test_store_false_id_is_a_miss_while_first_connection_is_open(server):
    with WS(server.ws_url) as ws, WS(server.ws_url) as ws2:
        t1 = ws.turn(input="secret", store=False)
        t2 = ws2.turn(input="go on", store=False, previous_response_id=t1.id)
        assert_not_found(t2, t1.id)
        ok = ws.turn(input="go on", store=False, previous_response_id=t1.id)
        assert ok.status == "completed"


def test_store_true_is_hydrated_on_a_miss_and_across_connections(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="remember MANGO-3003", store=True)
        ws.turn(input="unrelated", store=False)  # t1 leaves the cache
        t2 = ws.turn(input="probe", previous_response_id=t1.id, **probe_fields())
        assert nonces_of(t2) == ["MANGO-3003"]
        assert t2.response["usage"]["input_tokens_details"]["cached_tokens"] == 0
    with WS(server.ws_url) as ws2:
        t3 = ws2.turn(input="probe", previous_response_id=t1.id, **probe_fields())
    assert nonces_of(t3) == ["MANGO-3003"]


def test_other_keys_ids_are_not_found(server):
    with WS(server.ws_url, key=KEY_A) as ws:
        t1 = ws.turn(input="mine", store=True)
    with WS(server.ws_url, key=KEY_B) as ws:
        t2 = ws.turn(input="yours?", previous_response_id=t1.id)
    assert_not_found(t2, t1.id)
    status, body = http("GET", f"{server.base_url}/responses/{t1.id}", key=KEY_B)
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, body = http("GET", f"{server.base_url}/responses/{t1.id}", key=KEY_A)
    assert status == 200 and body["id"] == t1.id


def test_keys_of_one_tenant_share_responses_others_do_not(make_server):
    """§4.5 item 35a: KEY:TENANT; keys of one tenant share the store, other tenants get
    previous_response_not_found and 404 (store=true and store=false)."""
    srv = make_server(api_keys=(f"{KEY_A}:acme", f"{KEY_B}:acme", "key-other:globex"))
    with WS(srv.ws_url, key=KEY_A) as ws:
        kept = ws.turn(input="remember MANGO-3535", store=True)
        unkept = ws.turn(input="remember KIWI-3536", store=False)
    with WS(srv.ws_url, key=KEY_B) as ws:  # same tenant, new connection: shared
        t2 = ws.turn(input="probe", previous_response_id=kept.id, **probe_fields())
    assert nonces_of(t2) == ["MANGO-3535"]
    status, body = http("GET", f"{srv.base_url}/responses/{kept.id}", key=KEY_B)
    assert status == 200 and body["id"] == kept.id
    with WS(srv.ws_url, key="key-other") as ws:
        for ref in (kept, unkept):
            assert_not_found(ws.turn(input="probe", previous_response_id=ref.id), ref.id)
    for method in ("GET", "DELETE"):
        status, _ = http(method, f"{srv.base_url}/responses/{kept.id}", key="key-other")
        assert status == 404
    status, _ = http("GET", f"{srv.base_url}/responses/{kept.id}", key=KEY_A)
    assert status == 200  # the other tenant's DELETE removed nothing


@pytest.mark.parametrize("entry, message", [
    ("k:", "empty tenant"), (":acme", "must not be empty"), ("", "must not be empty"),
])
def test_bad_key_tenant_entries_are_refused_at_start(entry, message):
    from conformance.server.config import ServerConfig, Settings
    with pytest.raises(ValueError, match=message):
        Settings.from_config(ServerConfig(api_keys=(entry,)))


def test_one_key_twice_with_two_tenants_is_refused():
    from conformance.server.config import ServerConfig, Settings
    with pytest.raises(ValueError, match="different tenants"):
        Settings.from_config(ServerConfig(api_keys=("k:a", "k:b")))


def test_zdr_persists_nothing(make_server):
    srv = make_server(zdr=True)
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="zdr PLUM-1111", store=True)
        t2 = ws.turn(input="hit", store=True, previous_response_id=t1.id, **probe_fields())
        assert nonces_of(t2) == ["PLUM-1111"]  # the connection cache still works
    with WS(srv.ws_url) as ws:
        t3 = ws.turn(input="other connection", previous_response_id=t2.id)
    assert_not_found(t3, t2.id)
    assert http("GET", f"{srv.base_url}/responses/{t2.id}")[0] == 404


# --- eviction -----------------------------------------------------------------------------

def test_failed_continuation_evicts_the_referenced_id(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="Remember the code word: ember. Reply with OK.", store=False)
        t2 = ws.turn(store=False, previous_response_id=t1.id,
                     input=[{"type": "function_call_output", "call_id": "call_does_not_exist",
                             "output": "orphan output"}])
        assert t2.error == {"type": "error", "status": 400, "error": {
            "type": "invalid_request_error", "code": None,
            "message": "No tool call found for function call output with call_id call_does_not_exist.",
            "param": "input"}}
        t3 = ws.turn(input="What is the code word?", store=False, previous_response_id=t1.id)
        assert_not_found(t3, t1.id)
        # the connection still works
        assert ws.turn(input="fresh start", store=False).status == "completed"


def test_mid_stream_failure_evicts_the_referenced_id(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        t2 = ws.turn(input="[[fail]]", store=False, previous_response_id=t1.id)
        assert t2.types()[-1] == "response.failed"
        t3 = ws.turn(input="again", store=False, previous_response_id=t1.id)
        assert_not_found(t3, t1.id)


def test_validation_error_on_a_continuation_evicts(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        bad = ws.turn(input="x", store=False, previous_response_id=t1.id, max_output_tokens=3)
        assert bad.error_code == "integer_below_min_value"
        assert_not_found(ws.turn(input="y", store=False, previous_response_id=t1.id), t1.id)


def test_not_found_does_not_disturb_the_cache(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        assert_not_found(ws.turn(input="x", previous_response_id="resp_nope"), "resp_nope")
        assert ws.turn(input="y", store=False, previous_response_id=t1.id).status == "completed"


# --- warm-up ------------------------------------------------------------------------------

def test_warmup_mid_connection_is_chainable(server):
    with WS(server.ws_url) as ws:
        ws.turn(input="first")
        w = ws.turn(generate=False, input="context QUINCE-7777", store=False, instructions="be terse")
        assert w.response["instructions"] == "be terse"
        t = ws.turn(input=[], store=False, previous_response_id=w.id, **probe_fields())
    assert nonces_of(t) == ["QUINCE-7777"]


# --- queueing and busy policy -------------------------------------------------------------

def test_creates_during_a_turn_are_queued_in_order(server):
    with WS(server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "150"}) as ws:
        ws.create(input="first", metadata={"n": "1"})
        first = ws.recv()
        assert first["type"] == "response.created"
        ws.create(input="second", metadata={"n": "2"})
        ws.send("not json")  # answered in its place in the FIFO
        ws.create(input="third", metadata={"n": "3"})
        t = ws.collect(turns=4, timeout=10)
    events = [first] + t.events
    groups = split_by_response(events)
    assert [g[0]["type"] for g in groups] == ["response.created", "response.created", "error",
                                              "response.created"]
    assert [g[0]["response"]["metadata"]["n"] for g in groups if g[0]["type"] != "error"] == ["1", "2", "3"]
    for g in groups:
        if g[0]["type"] != "error":
            assert grammar_problems(g) == []


def test_turn_delay_paces_turns(server):
    with WS(server.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "300"}) as ws:
        start = time.monotonic()
        t = ws.turn(input="slow")
        assert t.status == "completed"
        assert time.monotonic() - start >= 0.28


def test_busy_policy_reject(make_server):
    srv = make_server(busy_policy="reject")
    with WS(srv.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "300"}) as ws:
        ws.create(input="first")
        assert ws.recv()["type"] == "response.created"
        ws.create(input="second")
        t = ws.collect(timeout=5)
        assert t.types() == ["error"]
        assert t.error["status"] == 409 and t.error["error"]["code"] == "response_already_in_flight"
        rest = ws.collect(timeout=5)
        assert rest.types()[-1] == "response.completed"
        assert ws.turn(input="after").status == "completed"
    srv2 = make_server(busy_policy="reject", busy_error_code="concurrent_request")
    with WS(srv2.ws_url, headers={"X-Conformance-Turn-Delay-Ms": "300"}) as ws:
        ws.create(input="first")
        ws.recv()
        ws.create(input="second")
        assert ws.collect().error_code == "concurrent_request"


# --- lifetime -----------------------------------------------------------------------------

LIMIT_EVENT = {
    "type": "error", "status": 400,
    "error": {"type": "invalid_request_error", "code": "websocket_connection_limit_reached",
              "message": "Responses websocket connection limit reached (60 minutes). "
                         "Create a new websocket connection to continue."},
}


def test_lifetime_limit_error_then_close(server):
    with WS(server.ws_url, headers={"X-Conformance-Lifetime": "0.3"}) as ws:
        assert ws.turn(input="quick").status == "completed"
        t = ws.collect(timeout=3)
        assert t.events == [LIMIT_EVENT]
        t2 = ws.collect(timeout=2)
        assert t2.closed
        assert ws.close_code == 1000


def test_lifetime_limit_waits_for_the_in_flight_turn(server):
    headers = {"X-Conformance-Lifetime": "0.2", "X-Conformance-Turn-Delay-Ms": "400"}
    with WS(server.ws_url, headers=headers) as ws:
        ws.create(input="long")
        ws.create(input="queued, never runs")
        t = ws.collect(timeout=3, turns=2)
    assert t.types()[-2] == "response.completed"
    assert t.events[-1] == LIMIT_EVENT
    assert t.types().count("response.created") == 1


def test_lifetime_from_config_and_xai_message(make_server):
    srv = make_server(lifetime_s=0.3)
    with WS(srv.ws_url) as ws:
        t = ws.collect(timeout=3)
    assert t.error_code == "websocket_connection_limit_reached"
    xai = make_server(profile="xai")
    assert xai.settings.lifetime_s == 1500
    with WS(xai.ws_url, headers={"X-Conformance-Lifetime": "0.2"}) as ws:
        t = ws.collect(timeout=3)
    assert "(25 minutes)" in t.error["error"]["message"]


def test_test_controls_are_ignored_when_off(make_server):
    srv = make_server(test_controls=False)
    with WS(srv.ws_url, headers={"X-Conformance-Lifetime": "0.2",
                                 "X-Conformance-Turn-Delay-Ms": "2000"}) as ws:
        start = time.monotonic()
        assert ws.turn(input="x").status == "completed"
        assert time.monotonic() - start < 1.0
        assert ws.quiet(0.5)
        assert ws.turn(input="still open").status == "completed"


# --- handshake and auth -------------------------------------------------------------------

def test_auth_refused_before_upgrade(server):
    assert handshake_status(server.ws_url, key=None) == 401
    assert handshake_status(server.ws_url, key="sk-wrong") == 401
    assert handshake_status(server.ws_url, key=KEY_B) == 101
    req = urllib.request.Request(server.ws_url.replace("ws://", "http://"), headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 401
    assert json.loads(info.value.read()) == {"error": {
        "message": "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


def test_any_key_accepted_without_configured_keys(open_server):
    assert handshake_status(open_server.ws_url, key="anything") == 101
    assert handshake_status(open_server.ws_url, key=None) == 401


def test_query_headers_and_deflate_are_tolerated(server):
    with WS(server.ws_url, query="?model=gpt-test&foo=1",
            headers={"OpenAI-Beta": "responses_websockets=2026-02-06", "X-Extra": "1"}) as ws:
        assert ws.turn(input="hi", stream=True).status == "completed"
    with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {KEY_A}"},
                 compression="deflate", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "hi"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"


def test_plain_get_without_upgrade(server):
    status, body = http("GET", f"{server.base_url}/responses")
    assert status == 426 and body["error"]["code"] == "websocket_upgrade_required"


# --- HTTP endpoints -----------------------------------------------------------------------

def test_http_create_get_delete(server):
    status, resp = http("POST", f"{server.base_url}/responses", body={"model": "m", "input": "hi"})
    assert status == 200 and resp["status"] == "completed" and resp["object"] == "response"
    status, got = http("GET", f"{server.base_url}/responses/{resp['id']}")
    assert status == 200 and got == resp
    status, body = http("DELETE", f"{server.base_url}/responses/{resp['id']}")
    assert status == 200 and body["deleted"] is True
    assert http("GET", f"{server.base_url}/responses/{resp['id']}")[0] == 404
    status, body = http("POST", f"{server.base_url}/responses", body={"input": "no model"})
    assert status == 400 and body["error"]["code"] == "missing_required_parameter"
    status, body = http("POST", f"{server.base_url}/responses", body={"model": "m"}, key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_http_continuation_of_a_ws_store_true_id(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="plant KIWI-5151", store=True)
        t_false = ws.turn(input="not stored", store=False)
    status, resp = http("POST", f"{server.base_url}/responses",
                        body={"model": "m", "input": "probe", "previous_response_id": t1.id, **probe_fields()})
    assert status == 200
    assert json.loads(resp["output"][0]["arguments"]) == {"nonces": ["KIWI-5151"]}
    status, body = http("POST", f"{server.base_url}/responses",
                        body={"model": "m", "input": "x", "previous_response_id": t_false.id})
    assert status == 400 and body["error"]["code"] == "previous_response_not_found"


def test_compact_endpoint_and_new_chain(server):
    with WS(server.ws_url) as ws:
        t1 = ws.turn(input="plant CHERRY-4040", store=True)
    status, body = http("POST", f"{server.base_url}/responses/compact",
                        body={"model": "m", "previous_response_id": t1.id, "input": "and DATE-5050"})
    assert status == 200
    assert body["object"] == "response.compaction" and set(body) >= {"id", "created_at", "output", "usage"}
    assert body["output"][-1]["type"] == "compaction"
    with WS(server.ws_url) as ws:
        t = ws.turn(input=body["output"] + [{"role": "user", "content": "probe"}], **probe_fields())
    assert t.status == "completed"
    assert nonces_of(t) == ["CHERRY-4040", "DATE-5050"]
    status, err = http("POST", f"{server.base_url}/responses/compact", body={"input": "x"})
    assert status == 400 and err["error"]["param"] == "model"


def test_store_path_survives_a_restart(make_server, tmp_path):
    path = str(tmp_path / "store.jsonl")
    srv = make_server(store_path=path)
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="durable OLIVE-8080", store=True)
        ws.turn(input="ephemeral", store=False)
    srv.stop()
    lines = open(path).read().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["id"] == t1.id
    srv2 = make_server(store_path=path)
    with WS(srv2.ws_url) as ws:
        t2 = ws.turn(input="probe", previous_response_id=t1.id, **probe_fields())
    assert nonces_of(t2) == ["OLIVE-8080"]


# --- profiles ------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("stream", True), ("stream_options", {}),
                                         ("background", False), ("generate", False)])
def test_open_responses_profile_rejects_fields(make_server, field, value):
    srv = make_server(profile="open-responses")
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", **{field: value})
        assert t.error["status"] == 400 and t.error["error"]["param"] == field
        assert ws.turn(input="fine").status == "completed"


def test_prompt_cache_options_accepted_and_echoed(server):
    """§2.1: prompt_cache_options (SDK 2026-09) is an object; the response echoes it."""
    opts = {"mode": "explicit", "ttl": "30m", "comparison_response_id": "resp_x"}
    with WS(server.ws_url) as ws:
        t = ws.turn(input="x", prompt_cache_options=opts)
        assert t.status == "completed" and t.response["prompt_cache_options"] == opts
        bad = ws.turn(input="x", prompt_cache_options="explicit")
        assert bad.error["status"] == 400 and bad.error["error"]["param"] == "prompt_cache_options"
        assert ws.turn(input="fine").status == "completed"


def test_access_programs_and_trace_context_accepted(server):
    """§2.1 (update 2026-12): access_programs {cyber} is checked and accepted over both
    surfaces; the trace-context client_metadata keys Codex sends per frame are accepted."""
    trace = {"ws_request_header_traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
             "ws_request_header_tracestate": "congo=t61rcWkgMzE"}
    with WS(server.ws_url) as ws:
        for program in ("standard", "daybreak_blue", "daybreak_red"):
            t = ws.turn(input="x", access_programs={"cyber": program}, client_metadata=trace)
            assert t.status == "completed", t.error
        for bad, param in (("cyber", "access_programs"), ({"cyber": "daybreak_green"}, "access_programs.cyber")):
            t = ws.turn(input="x", access_programs=bad)
            assert t.error["status"] == 400 and t.error["error"]["param"] == param
        assert ws.turn(input="fine", access_programs=None).status == "completed"
    status, body = http("POST", f"{server.base_url}/responses",
                        body={"model": "m", "input": "hi", "access_programs": {"cyber": "standard"}})
    assert status == 200 and body["status"] == "completed"
    status, body = http("POST", f"{server.base_url}/responses",
                        body={"model": "m", "input": "hi", "access_programs": {"cyber": 1}})
    assert status == 400 and body["error"]["param"] == "access_programs.cyber"


def test_openai_profile_tolerates_stream_fields(server):
    with WS(server.ws_url) as ws:
        t = ws.turn(input="x", stream=True, stream_options={"include_obfuscation": False})
    assert t.status == "completed"
