"""Every named defect breaks exactly the behaviour it names.

Each check returns True when it observes the violation.  It must hold on a server started
with that defect and must not hold on the clean server: a defect without a check fails
``test_every_defect_has_a_check``.
"""

from __future__ import annotations

import json
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from srv_helpers import (
    KEY_A,
    KEY_B,
    MODEL,
    TERMINAL,
    WEATHER_TOOL,
    WS,
    handshake_status,
    nonces_of,
    probe_fields,
)
from websockets.exceptions import ConnectionClosed

from conformance.server import DEFECTS

pytestmark = pytest.mark.timeout(30)

CLAUSES = Path(__file__).resolve().parents[2] / "cases" / "clauses.toml"
DELAY = {"X-Conformance-Turn-Delay-Ms": "200"}


def _chain_probe(srv) -> list:
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="plant KIWI-7342", store=False)
        t2 = ws.turn(input="probe", store=False, previous_response_id=t1.id, **probe_fields())
    return nonces_of(t2)


def c_ignore_previous_response_id(srv):
    return "KIWI-7342" not in _chain_probe(srv)


def c_reject_when_busy(srv):
    with WS(srv.ws_url, headers=DELAY) as ws:
        ws.create(input="a")
        ws.recv()
        ws.create(input="b")
        t = ws.collect(turns=2, timeout=5)
    return t.error is not None


def c_interleave_responses(srv):
    with WS(srv.ws_url, headers=DELAY) as ws:
        ws.create(input="a")
        ws.create(input="b")
        t = ws.collect(turns=2, timeout=5)
    created = [i for i, e in enumerate(t.events) if e["type"] == "response.created"]
    first_terminal = next(i for i, e in enumerate(t.events) if e["type"] in TERMINAL)
    return len(created) == 2 and created[1] < first_terminal


def c_abandoned_input_carried(srv):
    with WS(srv.ws_url, headers=DELAY) as ws:
        ws.create(input="plant KIWI-7342")
        ws.recv()
        ws.create(input="probe PEAR-1234", **probe_fields())
        t = ws.collect(turns=2, timeout=5)
    args = [json.loads(e["item"]["arguments"]) for e in t.events
            if e["type"] == "response.output_item.done" and e["item"].get("type") == "function_call"]
    return bool(args) and "KIWI-7342" in args[-1]["nonces"]


def c_replay_first_response(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one")
        t2 = ws.turn(input="two")
    return t1.id == t2.id


def _idle_frames(srv) -> tuple[list, bool]:
    """A turn, then 1.6 s idle: the frames pushed meanwhile and whether the socket closed."""
    with WS(srv.ws_url) as ws:
        ws.turn(input="hi")
        frames, closed = [], False
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            try:
                frames.append(json.loads(ws.ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
            except TimeoutError:
                break
            except ConnectionClosed:
                closed = True
                break
    return frames, closed


def c_idle_close_without_error(srv):
    frames, closed = _idle_frames(srv)
    return closed and not frames


def c_idle_limit_error_malformed(srv):
    frames, _ = _idle_frames(srv)
    return any(f.get("type") == "error" and f.get("status") != 400 for f in frames)


def c_no_eviction(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        ws.turn(store=False, previous_response_id=t1.id,
                input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}])
        t3 = ws.turn(input="again", store=False, previous_response_id=t1.id)
    return t3.status == "completed"


def c_store_false_shared_across_connections(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
    with WS(srv.ws_url) as ws:
        t2 = ws.turn(input="hi", store=False, previous_response_id=t1.id)
    return t2.status == "completed"


def c_validates_types_only(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False)
        orphan = ws.turn(store=False, previous_response_id=t1.id,
                         input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}])
        hot_range = ws.turn(input="hi", store=False, temperature=99)
        hot_type = ws.turn(input="hi", store=False, temperature="hot")
    return orphan.status == "completed" and hot_range.status == "completed" and hot_type.error is not None


def c_binary_frame_drops_connection(srv):
    with WS(srv.ws_url) as ws:
        ws.send(b'{"type": "conformance.binary"}')
        try:
            ws.recv(2.0)
        except ConnectionClosed:
            return ws.ws.protocol.close_rcvd is None     # closed, and no close frame came
        except TimeoutError:
            return False
    return False


def _miss(srv):
    with WS(srv.ws_url) as ws:
        return ws.turn(input="x", previous_response_id="resp_missing")


def c_renamed_not_found_code(srv):
    return _miss(srv).error_code != "previous_response_not_found"


def c_not_found_status_404(srv):
    return _miss(srv).error.get("status") != 400


def c_flat_error_shape(srv):
    err = _miss(srv).error
    return not isinstance(err.get("error"), dict) or "code" in err


def c_error_status_code_instead(srv):
    err = _miss(srv).error
    return "status" not in err and err.get("status_code") == 400


def c_error_message_only(srv):
    inner = _miss(srv).error.get("error")
    return isinstance(inner, dict) and "code" not in inner and "param" not in inner


def c_error_detail_body(srv):
    err = _miss(srv).error
    return "error" not in err and isinstance(err.get("detail"), str)


def c_not_found_as_response_failed(srv):
    t = _miss(srv)
    last = t.events[-1] if t.events else {}
    return t.error is None and last.get("type") == "response.failed" \
        and last["response"]["error"]["code"] == "previous_response_not_found"


def _two_turns(srv):
    with WS(srv.ws_url) as ws:
        return ws.turn(input="one"), ws.turn(input="two")


def c_sequence_per_connection(srv):
    _, t2 = _two_turns(srv)
    return t2.events[0]["sequence_number"] != 0


def c_sequence_gaps(srv):
    t1, _ = _two_turns(srv)
    seqs = [e["sequence_number"] for e in t1.events]
    return any(b - a != 1 for a, b in zip(seqs, seqs[1:]))


def c_sequence_not_monotonic(srv):
    t1, _ = _two_turns(srv)
    seqs = [e["sequence_number"] for e in t1.events]
    return any(b <= a for a, b in zip(seqs, seqs[1:]))


def c_missing_terminal_event(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", timeout=1.0)
    return t.terminal is None


def c_deltas_dont_add_up(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    deltas = "".join(e["delta"] for e in t.events if e["type"] == "response.output_text.delta")
    done = next(e["text"] for e in t.events if e["type"] == "response.output_text.done")
    return deltas != done


def c_sse_framing(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    return any(isinstance(r, str) and r.startswith(("event:", "data:")) for r in t.raw)


def c_binary_frames(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    return any(isinstance(r, bytes) for r in t.raw)


def c_large_frames_truncated(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", instructions="=" * (2**20 + 1024), timeout=2.0)
    return any(len(r) == 2**20 for r in t.raw) and not any(e.get("type") == "response.completed" for e in t.events)


def c_text_frames_not_json_object(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    return any(not isinstance(json.loads(r), dict) for r in t.raw)


def c_silent_after_handshake(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", timeout=1.0)
    return not t.events


def c_create_never_answered(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", timeout=1.0)
        ws.send({"type": "no.such.event"})          # other client events are still answered
        other = ws.recv(timeout=3.0)
    return not t.events and other is not None and other.get("type") == "error"


def c_closes_mid_response(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", timeout=3.0)
    types = [e["type"] for e in t.events]
    return t.closed and t.terminal is None and "response.created" in types and "error" not in types


def c_generate_false_ignored(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", generate=False)
    return bool(t.response["output"])


def c_warmup_not_chainable(srv):
    with WS(srv.ws_url) as ws:
        w = ws.turn(input="warm", generate=False, store=False)
        t = ws.turn(input="next", store=False, previous_response_id=w.id)
    return t.error_code == "previous_response_not_found"


def c_previous_id_not_echoed(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one")
        t2 = ws.turn(input="two", previous_response_id=t1.id)
    return t2.response["previous_response_id"] != t1.id


def c_never_expires(srv):
    with WS(srv.ws_url, headers={"X-Conformance-Lifetime": "0.2"}) as ws:
        t = ws.collect(timeout=1.0)
    return t.error_code != "websocket_connection_limit_reached"


def c_closes_after_error(srv):
    with WS(srv.ws_url) as ws:
        ws.send("not json")
        ws.collect(timeout=3)
        try:
            t = ws.turn(input="after", timeout=3)
        except ConnectionClosed:
            return True
    return t.status != "completed"


def c_background_accepted(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", background=True)
    return t.error is None


def c_requires_model_query(srv):
    return handshake_status(srv.ws_url, key=KEY_A) != 101


def c_no_auth(srv):
    return handshake_status(srv.ws_url, key=None) == 101 or handshake_status(srv.ws_url, key="sk-bad") == 101


def c_terminal_not_last(srv):
    with WS(srv.ws_url) as ws:
        ws.turn(input="x")
        return not ws.quiet(0.3)


def c_trailing_response_done(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
        try:
            late = ws.recv(0.3)
        except (TimeoutError, ConnectionClosed):
            return False
    return t.events[-1]["type"] == "response.completed" and late is not None and late.get("type") == "response.done"


def c_output_mismatch(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    done = next(e["text"] for e in t.events if e["type"] == "response.output_text.done")
    return t.text != done


def c_created_not_first(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    return t.events[0]["type"] != "response.created"


def c_default_lane_tagged(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    return any("stream_id" in e for e in t.events)


def c_usage_ignores_history(srv):
    with WS(srv.ws_url) as ws:
        fresh = ws.turn(input="same words", store=False)
        t1 = ws.turn(input="history " * 20, store=False)
        t2 = ws.turn(input="same words", store=False, previous_response_id=t1.id)
    return t2.response["usage"]["input_tokens"] <= fresh.response["usage"]["input_tokens"]


def c_stream_true_rejected(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x", stream=True)
    return t.error is not None


def c_missing_created_response_fields(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="x")
    required = ("id", "object", "created_at", "error", "incomplete_details", "instructions", "metadata",
                "model", "output", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p")
    return any(k not in e["response"] for e in t.events if "response" in e for k in required)


def _text_turn(srv, **fields):
    fields.setdefault("input", "x")
    with WS(srv.ws_url) as ws:
        return ws.turn(**fields)


def c_no_in_progress(srv):
    t = _text_turn(srv)
    return t.types()[1:2] != ["response.in_progress"]


def c_part_never_closed(srv):
    types = _text_turn(srv).types()
    return "response.content_part.done" not in types and "response.output_item.done" in types


def c_output_index_skips(srv):
    t = _text_turn(srv)
    added = [e["output_index"] for e in t.events if e["type"] == "response.output_item.added"]
    return added[:1] != [0]


def c_delta_for_unannounced_item(srv):
    t = _text_turn(srv)
    announced = {e["item"]["id"] for e in t.events if e["type"] == "response.output_item.added"}
    return any(e["item_id"] not in announced for e in t.events if e["type"] == "response.output_text.delta")


def c_function_args_done_without_name(srv):
    t = _text_turn(srv, tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_weather"})
    done = [e for e in t.events if e["type"] == "response.function_call_arguments.done"]
    return bool(done) and any("name" not in e for e in done)


def c_item_left_open_at_terminal(srv):
    t = _text_turn(srv)
    closed = {e["item"]["id"] for e in t.events if e["type"] == "response.output_item.done"}
    held = {o["id"] for o in t.response.get("output") or []}
    return t.terminal["type"] == "response.completed" and bool(held - closed)


def c_completed_without_usage(srv):
    t = _text_turn(srv)
    return t.terminal["type"] == "response.completed" and t.response.get("usage") is None


def c_incomplete_item_then_completed(srv):
    t = _text_turn(srv, max_output_tokens=16)
    cut = [i for i in t.response["output"] if i.get("status") == "incomplete"]
    return bool(cut) and t.terminal["type"] == "response.completed"


def c_sequence_missing(srv):
    t = _text_turn(srv)
    return any("sequence_number" not in e for e in t.events)


def c_forced_tool_ignored(srv):
    t = _text_turn(srv, tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_weather"})
    return not t.calls and bool(t.text)


def c_max_output_tokens_ignored(srv):
    t = _text_turn(srv, max_output_tokens=16)
    return t.status == "completed"


def c_flat_fields_ignored(srv):
    t = _text_turn(srv, instructions="Answer in one word.")
    return t.response["instructions"] != "Answer in one word."


def c_error_without_type(srv):
    inner = _miss(srv).error.get("error") or {}
    return "type" not in inner


def c_error_without_status(srv):
    return "status" not in _miss(srv).error


def _bad_frame(srv, frame) -> bool:
    """Whether ``frame`` got an answer before a following turn ran."""
    with WS(srv.ws_url) as ws:
        ws.send(frame)
        answered = not ws.quiet(0.5)
        t = ws.turn(input="after")
    return answered and t.status == "completed"


def c_malformed_json_ignored(srv):
    return not _bad_frame(srv, '{"type": "response.create", "input": ') \
        or not _bad_frame(srv, '[{"type": "response.create", "model": "m", "input": "x"}]')


def c_unknown_event_ignored(srv):
    return not _bad_frame(srv, json.dumps({"type": "conformance.unknown_event"}))


def c_binary_frame_processed(srv):
    with WS(srv.ws_url) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "x"}).encode())
        t = ws.collect(timeout=2)
        # a binary frame that is not UTF-8 is still refused (and nothing crashes)
        ws.send(b"\xff\xfe\x00")
        refused = ws.collect(timeout=2)
    return t.status == "completed" and refused.error_code == "binary_frame_not_supported"


def c_conversation_ignored(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one", store=False)
        t2 = ws.turn(input="two", store=False, previous_response_id=t1.id, conversation="conv_x")
        alone = ws.turn(input="three", store=False, conversation="conv_x")  # still refused on its own
    return t2.status == "completed" and alone.error is not None


def _continue_own(srv, store: bool) -> bool:
    """Whether a response continues on its own connection (and, for comparison, elsewhere)."""
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one", store=store)
        t2 = ws.turn(input="two", store=store, previous_response_id=t1.id)
    return t2.status == "completed"


def c_store_false_not_cached(srv):
    return not _continue_own(srv, store=False) and _continue_own(srv, store=True)


def c_store_true_not_cached(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="plant KIWI-7342", store=True)
        own = ws.turn(input="two", store=True, previous_response_id=t1.id)
        with WS(srv.ws_url) as other:
            elsewhere = other.turn(input="probe", store=True, previous_response_id=t1.id, **probe_fields())
    # only the own connection is broken: hydration elsewhere still carries the context
    return own.error_code == "previous_response_not_found" and "KIWI-7342" in nonces_of(elsewhere)


def c_no_hydration(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one", store=True)
        own = ws.turn(input="two", store=True, previous_response_id=t1.id)
    with WS(srv.ws_url) as ws:
        after = ws.turn(input="three", store=True, previous_response_id=own.id)
    return own.status == "completed" and after.error_code == "previous_response_not_found"


def c_warmup_drops_input(srv):
    with WS(srv.ws_url) as ws:
        w = ws.turn(input="plant KIWI-7342", generate=False, store=False)
        t2 = ws.turn(input="next", store=False, previous_response_id=w.id)
        probe = ws.turn(input="probe", store=False, previous_response_id=t2.id, **probe_fields())
    return t2.status == "completed" and "KIWI-7342" not in nonces_of(probe)


def c_cache_survives_reconnect(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="one", store=False)
        with WS(srv.ws_url) as other:  # an open connection still does not share it
            shared = other.turn(input="x", store=False, previous_response_id=t1.id)
    time.sleep(0.2)  # let the server see the close
    with WS(srv.ws_url) as ws:
        t2 = ws.turn(input="two", store=False, previous_response_id=t1.id)
    return shared.error_code == "previous_response_not_found" and t2.status == "completed"


def c_drops_previous_output(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="x", store=False, tools=[WEATHER_TOOL],
                     tool_choice={"type": "function", "name": "get_weather"})
        t2 = ws.turn(store=False, previous_response_id=t1.id,
                     input=[{"type": "function_call_output", "call_id": t1.calls[0]["call_id"], "output": "x"}])
    # the output is not carried (the tool output is an orphan), the input still is (the nonce)
    return t2.error is not None and "KIWI-7342" in _chain_probe(srv)


def c_turn_after_limit(srv):
    with WS(srv.ws_url, headers={"X-Conformance-Lifetime": "0.2"}) as ws:
        limit = ws.collect(timeout=1.0)
        try:
            t = ws.turn(input="late", timeout=2.0)
        except ConnectionClosed:  # what a clean server does: closed after the limit error
            return False
    return limit.error_code == "websocket_connection_limit_reached" and "response.created" in t.types()


def _compact(srv, conversation) -> dict:
    req = urllib.request.Request(srv.base_url + "/responses/compact", method="POST",
                                 data=json.dumps({"model": MODEL, "input": conversation}).encode(),
                                 headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as res:
        return json.loads(res.read())


CONVERSATION = [{"role": "user", "content": "keep KIWI-7342"},
                {"role": "assistant", "content": "noted PEAR-1234"}]


def c_compact_wrong_object(srv):
    return _compact(srv, CONVERSATION)["object"] != "response.compaction"


def c_compaction_drops_context(srv):
    window = _compact(srv, CONVERSATION)["output"]
    with WS(srv.ws_url) as ws:
        t = ws.turn(input=window + [{"role": "user", "content": "probe"}], store=False, **probe_fields())
    return "PEAR-1234" not in nonces_of(t)


def c_oversize_frame_dropped(srv):
    padding = "x" * (srv.settings.max_frame_bytes + 1)
    with WS(srv.ws_url) as ws:
        try:
            ws.send('{"type": "conformance.oversize", "padding": "' + padding + '"}')
        except ConnectionClosed:
            return False
        ws.quiet(1.0)
        answered = ws.close_code is not None     # a 1009 close is the answer
    return not answered


def c_unknown_event_ignored_after_create(srv):
    with WS(srv.ws_url) as ws:
        first = ws.turn(input="first")
        ws.send(json.dumps({"type": "conformance.unknown_event"}))
        silent = ws.quiet(0.5)
        t = ws.turn(input="after")
    return first.status == "completed" and silent and t.status == "completed"


def c_orphan_call_id_accepted(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="first", store=False)
        t2 = ws.turn(previous_response_id=t1.id, store=False,
                     input=[{"type": "function_call_output", "call_id": "call_orphan_0000", "output": "x"}])
    return t2.status == "completed"


def c_keeps_older_responses(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="first", store=False)
        ws.turn(input="second", store=False)
        t3 = ws.turn(previous_response_id=t1.id, input="third", store=False)
    return t3.status == "completed"


# --- lanes (§4.4 items 20-23a, §4.5 items 25, 31, 33) ---------------------------------------

ORPHAN = [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]


def c_stream_id_not_validated(srv):
    with WS(srv.ws_url) as ws:
        return ws.turn(input="hi", store=False, stream_id="bad name").status == "completed"


def _created_order(t) -> list:
    """(lane, created index, terminal index) per response, in order of response.created."""
    out, where = [], {}
    for i, e in enumerate(t.events):
        rid = (e.get("response") or {}).get("id")
        if e["type"] == "response.created":
            where[rid] = len(out)
            out.append([e.get("stream_id"), i, None])
        elif e["type"] in TERMINAL and rid in where:
            out[where[rid]][2] = i
    return out


def c_lane_jobs_overlap(srv):
    with WS(srv.ws_url, headers=DELAY) as ws:
        ws.create(input="a", stream_id="L")
        ws.create(input="b", stream_id="L")
        rs = _created_order(ws.collect(turns=2, timeout=5))
    return len(rs) == 2 and rs[1][1] < rs[0][2]


def c_lanes_serialised(srv):
    with WS(srv.ws_url, headers=DELAY) as ws:
        ws.create(input="a", stream_id="A")
        ws.create(input="b", stream_id="B")
        rs = _created_order(ws.collect(turns=2, timeout=5))
    return len(rs) == 2 and rs[1][1] > rs[0][2]


def c_lane_terminal_untagged(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="hi", store=False, stream_id="L")
    return t.terminal is not None and t.terminal.get("stream_id") != "L"


def c_lane_error_untagged(srv):
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="hi", store=False, stream_id="L", previous_response_id="resp_nowhere")
    return t.error is not None and t.error.get("stream_id") != "L"


def c_lane_reuse_continues(srv):
    with WS(srv.ws_url) as ws:
        ws.turn(input="plant KIWI-7342", store=False, stream_id="L")
        t = ws.turn(input="probe", store=False, stream_id="L", **probe_fields())
    return "KIWI-7342" in nonces_of(t)


def c_one_cache_slot(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False, stream_id="A")
        ws.turn(input="hi", store=False, stream_id="B")
        return ws.turn(input="again", store=False, stream_id="A", previous_response_id=t1.id).status == "error"


def c_fork_takes_parent(srv):
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False, stream_id="A")
        fork = ws.turn(input="fork", store=False, stream_id="B", previous_response_id=t1.id)
        again = ws.turn(input="again", store=False, stream_id="A", previous_response_id=t1.id)
    return fork.status == "completed" and again.status == "error"


def _after_failure(srv, fail_lane: str) -> str:
    with WS(srv.ws_url) as ws:
        t1 = ws.turn(input="hi", store=False, stream_id="A")
        ws.turn(store=False, stream_id=fail_lane, previous_response_id=t1.id, input=ORPHAN)
        return ws.turn(input="again", store=False, stream_id="A", previous_response_id=t1.id).status


def c_fork_failure_evicts_parent(srv):
    return _after_failure(srv, "B") == "error"


def c_named_lane_no_eviction(srv):
    return _after_failure(srv, "A") == "completed"


def _many_lanes(srv, count: int):
    with WS(srv.ws_url, headers=DELAY) as ws:
        for n in range(count):
            ws.create(input="hi", stream_id=f"L{n}")
        return ws.collect(turns=count, timeout=10)


def c_active_limit_rejects(srv):
    return _many_lanes(srv, 17).error is not None


def c_active_limit_off_by_one(srv):
    rs = _created_order(_many_lanes(srv, 17))
    marks = sorted([(c, 1) for _, c, _ in rs] + [(e, -1) for _, _, e in rs if e is not None])
    active = peak = 0
    for _, step in marks:
        active += step
        peak = max(peak, active)
    return peak > 16


def _name_limit(srv) -> str:
    """The status of the 33rd distinct lane name, after 32 warm-ups that each ended."""
    with WS(srv.ws_url) as ws:
        for n in range(32):
            ws.turn(input="hi", generate=False, stream_id=f"N{n}")
        return ws.turn(input="hi", generate=False, stream_id="N32").status


def c_named_limit_off_by_one(srv):
    return _name_limit(srv) == "completed"


def c_named_lanes_released(srv):
    return _name_limit(srv) == "completed"


# --- steering (§4.9): checked on a server started with steering on --------------------------

STEER_TYPES = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")
SLOW = {"X-Conformance-Turn-Delay-Ms": "400"}


def _steered(srv, text="steer KIWI-7342", turns=2, **create) -> list:
    """Start a slow turn, steer it at its response.created, read until ``turns`` responses ended."""
    with WS(srv.ws_url, headers=SLOW) as ws:
        ws.create(store=False, **{"input": "hi", **create})
        created = ws.recv()
        ws.send({"type": "response.steer", "previous_response_id": created["response"]["id"], "input": text})
        return [created] + ws.collect(turns=turns, timeout=6).events


def _steer_answer(events) -> dict:
    return next((e for e in events if e["type"] in STEER_TYPES), {})


def c_steer_refused(srv):
    return _steer_answer(_steered(srv, turns=1)).get("type") == "response.steer.failed"


def c_steered_reason_missing(srv):
    term = next(e for e in _steered(srv, input="[[multi]] hi") if e["type"] in TERMINAL)
    return term["type"] == "response.incomplete" and term["response"]["incomplete_details"] is None


def c_steer_no_successor(srv):
    events = _steered(srv, turns=2)
    return sum(1 for e in events if e["type"] == "response.created") == 1


def c_steer_input_lost(srv):
    with WS(srv.ws_url, headers=SLOW) as ws:
        ws.create(input="hi", store=False)
        rid = ws.recv()["response"]["id"]
        ws.send({"type": "response.steer", "previous_response_id": rid, "input": "steer KIWI-7342"})
        events = ws.collect(turns=2, timeout=6).events
        succ = [e for e in events if e["type"] == "response.created"][-1]["response"]["id"]
        t = ws.turn(input="probe", store=False, previous_response_id=succ, **probe_fields())
    return "KIWI-7342" not in nonces_of(t)


def _pending_steer(ws, store: bool) -> tuple[str, list]:
    """A forced tool call steered with KIWI-7342 until response.steer.pending: (its id, the
    function_call_output answering it)."""
    ws.create(input="weather?", store=store, tools=[WEATHER_TOOL],
              tool_choice={"type": "function", "name": WEATHER_TOOL["name"]})
    rid = ws.recv()["response"]["id"]
    ws.send({"type": "response.steer", "previous_response_id": rid, "input": "steer KIWI-7342"})
    events = ws.collect(turns=1, timeout=6).events
    while not any(e["type"] == "response.steer.pending" for e in events):
        events.append(ws.recv())
    call = next(e for e in events if e["type"] in TERMINAL)["response"]["output"][0]
    return rid, [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]


def c_steer_pending_input_dropped(srv):
    with WS(srv.ws_url, headers=SLOW) as ws:
        rid, out = _pending_steer(ws, store=False)
        t = ws.turn(input=out, store=False, previous_response_id=rid, **probe_fields())
    return "KIWI-7342" not in nonces_of(t)


def _steer_ended(srv, target: str | None = None) -> dict:
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="hi", store=False)
        ws.send({"type": "response.steer", "previous_response_id": target or t.id, "input": "late"})
        return ws.recv()


def c_steer_accepts_finished(srv):
    return _steer_ended(srv).get("type") == "response.steer.accepted"


def c_steer_unknown_wrong_code(srv):
    return _steer_ended(srv, "resp_nowhere")["error"]["code"] != "response_not_found"


def c_steer_extra_fields_accepted(srv):
    with WS(srv.ws_url, headers=SLOW) as ws:
        ws.create(input="hi", store=False, stream_id="L")
        rid = ws.recv()["response"]["id"]
        ws.send({"type": "response.steer", "previous_response_id": rid, "input": "x", "stream_id": "L"})
        events = ws.collect(turns=1, timeout=6).events
    return any(e["type"] == "response.steer.accepted" for e in events)


def c_steer_compaction_accepted(srv):
    events = _steered(srv, turns=1, context_management=[{"type": "compaction"}])
    return _steer_answer(events).get("type") == "response.steer.accepted"


def c_steer_failed_no_echo(srv):
    return "input" not in _steer_ended(srv)["steer"]


def c_steer_failed_new_id(srv):
    with WS(srv.ws_url, headers=SLOW) as ws:
        ws.create(input="[[fail]] hi", store=False)
        rid = ws.recv()["response"]["id"]
        ws.send({"type": "response.steer", "previous_response_id": rid, "input": "x"})
        answers = []
        while len(answers) < 2:
            e = ws.recv(timeout=6)
            if e["type"] in STEER_TYPES:
                answers.append(e)
    accepted, failed = answers
    return accepted["type"] == "response.steer.accepted" and failed["steer"].get("id") != accepted["steer"]["id"]


def c_pending_steer_survives_close(srv):
    with WS(srv.ws_url, headers=SLOW) as ws:
        rid, out = _pending_steer(ws, store=True)
    with WS(srv.ws_url) as ws:
        t = ws.turn(input=out, store=True, previous_response_id=rid, **probe_fields())
    return "KIWI-7342" in nonces_of(t)


# P-open fields (spec §5.1): the Response, its tools echo and the compacted window
def _lifecycle_responses(srv, **fields) -> list[dict]:
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="hi", store=False, **fields)
    return [e["response"] for e in t.events if isinstance(e.get("response"), dict)]


def c_response_without_penalty(srv):
    return any("presence_penalty" not in r for r in _lifecycle_responses(srv))


def c_tools_echo_without_strict(srv):
    tool = {k: v for k, v in WEATHER_TOOL.items() if k != "strict"}
    return any("strict" not in t for r in _lifecycle_responses(srv, tools=[tool]) for t in r["tools"])


def c_compact_items_as_given(srv):
    kept = [i for i in _compact(srv, CONVERSATION)["output"] if i.get("type") == "message"]
    return not kept or any("id" not in i or "status" not in i or isinstance(i.get("content"), str) for i in kept)


# --- tenant isolation (§4.5 item 35a): KEY_A and KEY_B are two tenants -----------------------

def _http_status(method: str, url: str, key: str) -> int:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _continued_by_other_tenant(srv, store: bool) -> bool:
    with WS(srv.ws_url, key=KEY_A) as ws:
        first = ws.turn(input="plant KIWI-7342", store=store)
        with WS(srv.ws_url, key=KEY_B) as other:     # the owner's socket stays open
            probe = other.turn(input="probe", store=store, previous_response_id=first.id, **probe_fields())
    return probe.error is None and "KIWI-7342" in nonces_of(probe)


def c_tenant_continues_store_true(srv):
    return _continued_by_other_tenant(srv, store=True)


def c_tenant_continues_store_false(srv):
    return _continued_by_other_tenant(srv, store=False)


def c_tenant_refusal_quotes_context(srv):
    with WS(srv.ws_url, key=KEY_A) as ws:
        first = ws.turn(input="plant KIWI-7342", store=True)
    with WS(srv.ws_url, key=KEY_B) as other:
        refused = other.turn(input="probe", store=True, previous_response_id=first.id)
    return refused.error_code == "previous_response_not_found" and "KIWI-7342" in json.dumps(refused.error)


def _stored_by_first_tenant(srv) -> str:
    with WS(srv.ws_url, key=KEY_A) as ws:
        return f"{srv.base_url}/responses/{ws.turn(input='keep', store=True).id}"


def c_tenant_get_across(srv):
    return _http_status("GET", _stored_by_first_tenant(srv), KEY_B) == 200


def c_tenant_delete_across(srv):
    url = _stored_by_first_tenant(srv)
    _http_status("DELETE", url, KEY_B)
    return _http_status("GET", url, KEY_A) == 404


# defects whose behaviour needs the server started with a switch (the checks run on both)
NEEDS = {name: {"steering": True} for name in DEFECTS if "steer" in name}


CHECKS = {name: globals()["c_" + name.replace("-", "_")] for name in DEFECTS
          if "c_" + name.replace("-", "_") in globals()}
ALL_CHECKS = {n[2:].replace("_", "-") for n in globals() if n.startswith("c_")}


def test_every_defect_has_a_check():
    missing = sorted(set(DEFECTS) - set(CHECKS))
    assert not missing, f"defects without a check in {__file__}: {missing}"
    assert ALL_CHECKS <= set(DEFECTS), f"checks for unknown defects: {sorted(ALL_CHECKS - set(DEFECTS))}"


def test_defects_name_real_clauses_with_their_level():
    clauses = {c["id"]: c for c in tomllib.loads(CLAUSES.read_text())["clause"]}
    assert len(DEFECTS) >= 20
    for name, d in DEFECTS.items():
        assert d.name == name
        assert name == name.lower() and " " not in name and "_" not in name
        assert d.clause in clauses, f"{name}: unknown clause {d.clause}"
        assert d.level == clauses[d.clause]["level"], f"{name}: level {d.level} != {clauses[d.clause]['level']}"
        assert d.summary.strip()
        for profile, clause, verdict in d.also:     # judged once more under another profile
            assert clause in clauses, f"{name}: unknown clause {clause} in also"
            expected = {"MUST": "FAIL", "SHOULD": "NON-STRICT"}.get(clauses[clause]["level"])
            assert verdict in ("PASS", expected), f"{name}: {clause} ({clauses[clause]['level']}) cannot be {verdict}"
            assert (profile, clause) != (d.profile, d.clause), f"{name}: also repeats the defect's own run"


def test_flags_are_derived_from_the_one_declaration():
    """Each defect is declared once (DEFECTS); Flags has one boolean per defect, in order, plus
    the two derived ones, and a defect's `rewrites` sets the derived flag it belongs to."""
    from dataclasses import fields

    from conformance.server.defects import EVENTS, FRAMES, Flags, resolve_flags

    attributes = [defect.attribute for defect in DEFECTS.values()]
    assert [column.name for column in fields(Flags)] == [*attributes, "rewrites_frames", "rewrites_events"]
    for name, defect in DEFECTS.items():
        assert defect.rewrites in ("", FRAMES, EVENTS), name
        flags = resolve_flags([name])
        assert getattr(flags, defect.attribute) is True
        assert flags.rewrites_frames is (defect.rewrites == FRAMES), name
        assert flags.rewrites_events is (defect.rewrites == EVENTS), name


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_breaks_its_behaviour(name, server, make_server):
    check = CHECKS.get(name)
    assert check is not None, f"no check for defect {name}"
    needs = NEEDS.get(name, {})
    clean = make_server(**needs) if needs else server
    assert check(clean) is False, f"the clean server already shows what {name} breaks"
    defective = make_server(defects=(name,), **needs)
    assert check(defective) is True, f"defect {name} did not break its behaviour"


def test_unknown_defect_is_a_startup_error():
    from conformance.server import ServerConfig, ServerThread
    from conformance.server.defects import UnknownDefect

    with pytest.raises(UnknownDefect, match="no-such-defect"):
        ServerThread(ServerConfig(defects=("no-such-defect",)))


def test_defects_are_off_by_default(server):
    assert server.settings.defects == ()
    assert not any(getattr(server.settings.flags, n.replace("-", "_")) for n in DEFECTS)
