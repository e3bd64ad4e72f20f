"""Kinds of turns: spec §2.1 and §4.2 item 5 (the flat ``response.create``), §3.8-3.9
(function_call items and the function-call loop) and §3.6 (a turn cut by
``max_output_tokens`` ends ``response.incomplete``). The plain text turn is in
test_transport.py.

All oracles are model-free: a forced function must be called (whatever the model thinks of
the prompt), a 16-token budget cannot hold a count to 200, and the flat create is judged by
the nonce probe (a nonce in its instructions), not by what the response echoes.
"""

from __future__ import annotations

import json

import pytest

from conformance.casekit import PROMPT, RAN, turn_budget
from conformance.client import HarnessError
from conformance.probes import probe_fields, recorded_nonces, seen

CITY_TOOL = {
    "type": "function", "name": "record_city",
    "description": "Record the name of a city the user mentions.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
}
FORCE_CITY = {"type": "function", "name": "record_city"}


def _budget_exhausted(turn) -> bool:
    """Incomplete for max_output_tokens with nothing useful: our budget, not the target."""
    details = (turn.response or {}).get("incomplete_details") or {}
    return (turn.status == "incomplete" and details.get("reason") == "max_output_tokens"
            and not turn.function_calls and not turn.output_text)


def _forced_call(conn, target, **extra):
    turn = conn.turn(input="Record the city Paris with the tool.", tools=[CITY_TOOL], tool_choice=FORCE_CITY,
                     store=False, max_output_tokens=turn_budget(target), **extra)
    if _budget_exhausted(turn):
        raise HarnessError(f"budget: {turn_budget(target)} output tokens were not enough for one forced call; "
                           "raise --max-output-tokens")
    return turn


def _check_call(expect, turn) -> dict:
    """A forced call: one function_call item with call_id, the forced name, JSON-object arguments."""
    expect("TURN-FUNCTION-CALL", turn.status == "completed", turn, "the forced function call turn did not complete")
    calls = turn.function_calls
    expect("TURN-FUNCTION-CALL", calls, turn, "tool_choice forced record_city but the output holds no function_call item")
    call = calls[0]
    expect("TURN-FUNCTION-CALL", isinstance(call.get("call_id"), str) and call["call_id"] != "", call,
           "the function_call item has no call_id")
    expect("TURN-FUNCTION-CALL", call.get("name") == "record_city", call,
           f"the forced function was record_city, the call names {call.get('name')!r}")
    args = call.get("arguments")
    expect("TURN-FUNCTION-CALL", isinstance(args, str), call,
           f"arguments must be a JSON string, got {type(args).__name__}")
    try:
        parsed = json.loads(args)
    except ValueError:
        parsed = None
    expect("TURN-FUNCTION-CALL", isinstance(parsed, dict), call, f"arguments {args!r:.120} do not parse to a JSON object")
    return call


@pytest.mark.clause("TURN-FUNCTION-CALL")
@pytest.mark.max_requests(creates=1)
def test_forced_function_call(target, connect, expect):
    conn = connect()
    _check_call(expect, _forced_call(conn, target))


@pytest.mark.clause("TURN-FUNCTION-CALL")
@pytest.mark.max_requests(creates=2)
def test_function_call_loop(target, connect, expect):
    # the client answers the call with only the new item and previous_response_id (§2.1 input)
    conn = connect()
    first = _forced_call(conn, target)
    call = _check_call(expect, first)
    second = conn.turn(previous_response_id=first.response_id, tools=[CITY_TOOL], tool_choice="none", store=False,
                       input=[{"type": "function_call_output", "call_id": call["call_id"],
                               "output": json.dumps({"recorded": True})}],
                       max_output_tokens=turn_budget(target))
    if _budget_exhausted(second):
        raise HarnessError(f"budget: {turn_budget(target)} output tokens were not enough to answer a tool output")
    expect("TURN-FUNCTION-CALL", second.status == "completed", second,
           "the turn carrying the function_call_output did not complete")
    expect("TURN-FUNCTION-CALL", second.response_id not in (None, first.response_id), [first, second],
           "the tool-output turn did not start a response of its own")


@pytest.mark.clause("TURN-MAX-OUTPUT-INCOMPLETE")
@pytest.mark.max_requests(creates=1)
def test_max_output_tokens_incomplete(connect, expect):
    conn = connect()
    # 16 tokens cannot hold this answer, whatever the model
    turn = conn.turn(input="Count from 1 to 200, separated by commas.", store=False, max_output_tokens=16)
    expect("TURN-MAX-OUTPUT-INCOMPLETE", turn.status == "incomplete", turn,
           f"a turn capped at 16 output tokens ended {turn.status}, expected response.incomplete")
    resp = turn.response or {}
    expect("TURN-MAX-OUTPUT-INCOMPLETE", resp.get("status") == "incomplete", turn,
           f"response.status is {resp.get('status')!r}, expected 'incomplete'")
    reason = (resp.get("incomplete_details") or {}).get("reason")
    expect("TURN-MAX-OUTPUT-INCOMPLETE", reason == "max_output_tokens", turn,
           f"incomplete_details.reason is {reason!r}, expected 'max_output_tokens'")


@pytest.mark.clause("CREATE-FLAT-PAYLOAD")
@pytest.mark.max_requests(creates=2)
def test_flat_create_accepted(target, connect, expect, verdict, nonce):
    conn = connect()
    # body fields sit next to type (§2.1); a nonce in the flat instructions that the forced
    # record_nonces call lists shows they were read (the nonce probe), whatever is echoed
    instructions = f"Keep in mind the code {nonce}."
    turn = conn.turn(**probe_fields(target, instructions=instructions, store=False))
    expect("CREATE-FLAT-PAYLOAD", turn.status in RAN, turn, "a flat response.create did not run")
    nonces = recorded_nonces(turn)
    expect("CREATE-FLAT-PAYLOAD", seen(nonces, nonce), f"record_nonces reported {nonces}",
           f"the nonce {nonce} in the instructions sent next to type is not in the turn's context: "
           "flat fields were not read")
    echoed = (turn.response or {}).get("instructions")
    if echoed != instructions:   # echoing is the response object's business (§3.6), not this clause's
        verdict.info(f"the response echoes instructions {str(echoed)[:80]!r}, not the instructions sent "
                     "(they were read: the nonce probe found them)", "CREATE-FLAT-PAYLOAD")

    # The Realtime shape nests the body in "response"; §2.1 says the Responses create has no
    # such object, but says nothing of how a server answers it: observed, not judged.
    nested = conn.turn(model=None, max_output_tokens=None, timeout=None if not target.is_embedded else 2.0,
                       response={"model": target.model, "input": PROMPT, "store": False,
                                 **({"max_output_tokens": target.max_output_tokens} if target.max_output_tokens else {})})
    if nested.status == "error":
        expect.info(f"a Realtime-style nested create was rejected: code {nested.error_code!r}, "
                     f"param {((nested.error or {}).get('error') or {}).get('param')!r}", "CREATE-FLAT-PAYLOAD")
    else:
        expect.info(f"a Realtime-style nested create ended {nested.status}", "CREATE-FLAT-PAYLOAD")
