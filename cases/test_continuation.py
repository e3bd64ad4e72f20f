"""Continuation cases: spec §4.5 items 24-26 (context = previous input + previous output + new
input; continuing from the connection's latest response with only the new input, for
store=false and store=true) and §3.6 (the response echoes previous_response_id).

Context carry-over is judged with the nonce probe (docs/design.md "Model-free oracles"): a nonce is
planted in an early turn's input, and a later turn continues with only a new user message and
a forced ``record_nonces`` call; the nonce must be among the call's arguments. Every case uses
its own fresh connection, so "the latest response" is always the turn just before.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, RAN, setup_turn, turn_budget
from conformance.client import HarnessError, Turn
from conformance.probes import plant, probe_fields, recorded_nonces, seen


def _probe(conn, target, previous_response_id: str | None, store: bool = False) -> Turn:
    return conn.turn(**probe_fields(target, previous_response_id=previous_response_id, store=store))


def _check_probe(expect, clause: str, probe: Turn, planted: dict[str, str]) -> None:
    """``planted``: nonce -> where it was planted (for the message)."""
    if not expect(clause, probe.status in RAN, probe, "the continuation did not run"):
        return
    nonces = recorded_nonces(probe)
    for nonce, where in planted.items():
        expect(clause, seen(nonces, nonce), f"record_nonces reported {nonces}",
               f"the nonce {nonce} planted in {where} is not in the continuation's context")


# --- CONT-CONTEXT-CARRIED ----------------------------------------------------------------------

@pytest.mark.clause("CONT-CONTEXT-CARRIED")
@pytest.mark.max_requests(creates=2)
def test_continuation_sees_previous_input(target, connect, expect, nonce):
    conn = connect()
    first = setup_turn(conn, input=plant(nonce), store=False)
    probe = _probe(conn, target, first.response_id)
    _check_probe(expect, "CONT-CONTEXT-CARRIED", probe, {nonce: "turn 1's input"})


@pytest.mark.clause("CONT-CONTEXT-CARRIED")
@pytest.mark.max_requests(creates=3)
def test_continuation_sees_whole_chain(target, connect, expect, nonce_factory):
    # a nonce per turn, probed two hops later: the chain is carried, not just the last hop
    one, two = nonce_factory(), nonce_factory()
    conn = connect()
    first = setup_turn(conn, input=plant(one), store=False)
    second = conn.turn(previous_response_id=first.response_id, input=plant(two), store=False)
    expect("CONT-CONTEXT-CARRIED", second.status in RAN, second, "the continuation (turn 2) did not run")
    probe = _probe(conn, target, second.response_id)
    _check_probe(expect, "CONT-CONTEXT-CARRIED", probe, {one: "turn 1's input", two: "turn 2's input"})


@pytest.mark.clause("CONT-CONTEXT-CARRIED")
@pytest.mark.max_requests(creates=2)
def test_continuation_sees_previous_output(target, connect, expect):
    # The previous *output* must be carried too. Model-free proof: turn 1 makes a forced call;
    # turn 2 answers that call_id with only a function_call_output. A server that lost turn 1's
    # output has no such call in the context and must reject the output as an orphan (the
    # premise of the Open Responses eviction scenario). A server that never checks call_ids
    # passes vacuously; that cannot make a conformant server fail.
    tool = {"type": "function", "name": "get_time", "description": "Return the current time.",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}
    conn = connect()
    first = setup_turn(conn, input="What time is it? Use the tool.", tools=[tool], store=False,
                       tool_choice={"type": "function", "name": "get_time"},
                       max_output_tokens=turn_budget(target))
    calls = first.function_calls
    if not calls or not calls[0].get("call_id"):
        raise HarnessError(f"turn 1 made no get_time call although tool_choice forced it: {first.summary()}")
    second = conn.turn(previous_response_id=first.response_id, store=False, tools=[tool],
                       input=[{"type": "function_call_output", "call_id": calls[0]["call_id"],
                               "output": "12:00"}])
    expect("CONT-CONTEXT-CARRIED", second.status in RAN, second,
           f"a function_call_output for turn 1's call {calls[0]['call_id']} was not accepted: "
           "the continuation does not see turn 1's output")


# --- CONT-USAGE-COUNTS-CONTEXT -----------------------------------------------------------------

@pytest.mark.clause("CONT-USAGE-COUNTS-CONTEXT")
@pytest.mark.max_requests(creates=3)
def test_usage_counts_carried_context(connect, expect):
    # the same new input twice on one connection: as a continuation, then as a fresh chain.
    # Comparing the two keeps the check independent of the target's tokenizer.
    new_input = "Reply with the single word: yes"
    conn = connect()
    first = setup_turn(conn, input="Some history for the next turn: the sky is blue and the grass is green. "
                                   "Reply with the single word: ok", store=False)
    continued = setup_turn(conn, previous_response_id=first.response_id, input=new_input, store=False)
    fresh = setup_turn(conn, input=new_input, store=False)
    counts = [(t.usage or {}).get("input_tokens") for t in (continued, fresh)]
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        expect("CONT-USAGE-COUNTS-CONTEXT", False, [continued, fresh],
               f"usage.input_tokens missing or not an integer (continuation {counts[0]!r}, fresh {counts[1]!r})")
        return
    expect("CONT-USAGE-COUNTS-CONTEXT", counts[0] > counts[1], [continued, fresh],
           f"usage.input_tokens of the continuation ({counts[0]}) does not exceed that of the same input "
           f"as a fresh chain ({counts[1]}): the carried history is not counted")


# --- CACHE-HIT-STORE-FALSE / CACHE-HIT-STORE-TRUE ----------------------------------------------

def _cache_hit(conn, target, expect, clause: str, nonce: str, store: bool) -> None:
    first = setup_turn(conn, input=plant(nonce), store=store)
    probe = _probe(conn, target, first.response_id, store=store)
    expect(clause, probe.error_code != "previous_response_not_found", probe,
           f"the latest response of the connection (store={str(store).lower()}) was not found")
    _check_probe(expect, clause, probe, {nonce: f"the store={str(store).lower()} turn continued from"})


@pytest.mark.clause("CACHE-HIT-STORE-FALSE")
@pytest.mark.max_requests(creates=2)
def test_cache_hit_store_false(target, connect, expect, nonce):
    _cache_hit(connect(), target, expect, "CACHE-HIT-STORE-FALSE", nonce, store=False)


@pytest.mark.clause("CACHE-HIT-STORE-TRUE")
@pytest.mark.max_requests(creates=2)
def test_cache_hit_store_true(target, connect, expect, nonce):
    _cache_hit(connect(), target, expect, "CACHE-HIT-STORE-TRUE", nonce, store=True)


# --- PREVIOUS-ID-ECHOED ------------------------------------------------------------------------

def _echoed(turn: Turn) -> tuple[object, object]:
    """previous_response_id of the response in response.created and in the terminal event."""
    created = next((e.get("response") for e in turn.events if e.get("type") == "response.created"), None)
    created = created if isinstance(created, dict) else {}
    return created.get("previous_response_id"), (turn.response or {}).get("previous_response_id")


@pytest.mark.clause("PREVIOUS-ID-ECHOED")
@pytest.mark.max_requests(creates=2)
def test_previous_response_id_echoed(connect, expect):
    conn = connect()
    fresh = setup_turn(conn, input=PROMPT, store=False)
    at_created, at_end = _echoed(fresh)
    expect("PREVIOUS-ID-ECHOED", at_created is None and at_end is None, fresh,
           f"a fresh chain carries previous_response_id {at_created!r} (response.created) / "
           f"{at_end!r} (terminal), expected null or absent")
    sent = fresh.response_id
    continued = setup_turn(conn, previous_response_id=sent, input="Reply with the single word: yes", store=False)
    at_created, at_end = _echoed(continued)
    expect("PREVIOUS-ID-ECHOED", at_created == sent, continued,
           f"response.created carries previous_response_id {at_created!r}, the create sent {sent!r}")
    expect("PREVIOUS-ID-ECHOED", at_end == sent, continued,
           f"the terminal response carries previous_response_id {at_end!r}, the create sent {sent!r}")
