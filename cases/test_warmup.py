"""Warm-up cases: spec §4.7 items 39-40 (``generate: false`` produces no output, ends
response.completed with output [] and a real id) and §4.5 item 34 (that id chains like any
other, and the warm-up's input stays in the context of later turns).

Every case needs the ``generate_false`` capability (UNSUPPORTED otherwise, before it runs). A
target that answers the warm-up itself with "unsupported parameter" is UNSUPPORTED too
(design.md "Verdicts"). The nonce goes in the warm-up's *input*: instructions are not carried
into continuations (§2.1), so a nonce there would prove nothing.
"""

from __future__ import annotations

import json

import pytest

from conformance.client import HarnessError, Turn

NOT_FOUND = "previous_response_not_found"
PROBE_BUDGET = 256
PROBE_TOOL = {
    "type": "function",
    "name": "record_nonces",
    "description": "Record every code made of 3 to 12 capital letters, a hyphen and 4 to 8 digits "
                   "that appears anywhere in this conversation.",
    "parameters": {"type": "object",
                   "properties": {"nonces": {"type": "array", "items": {"type": "string"}}},
                   "required": ["nonces"], "additionalProperties": False},
}
PROBE_PROMPT = ("Call record_nonces with every code made of capital letters, a hyphen and digits "
                "that appears anywhere in this conversation.")
FORCE_PROBE = {"type": "function", "name": "record_nonces"}
RAN = ("completed", "incomplete")
OK_PROMPT = "Reply with the single word: ok"
LIFECYCLE = ("response.queued", "response.created", "response.in_progress", "response.completed",
             "response.failed", "response.incomplete")


def _warm_up(conn, verdict, **fields) -> Turn:
    turn = conn.turn(generate=False, store=False, **fields)
    inner = (turn.error or {}).get("error")
    inner = inner if isinstance(inner, dict) else {}
    if turn.status == "error" and (inner.get("param") == "generate" or turn.error_code == "unsupported_parameter"):
        verdict.unsupported(f"the target rejected generate:false ({turn.summary()})")
    return turn


def _output_events(turn: Turn) -> list[str]:
    """Event types that carry output: item and part lifecycle, deltas and .done values."""
    return [t for t in turn.event_types
            if t.startswith(("response.output_item.", "response.content_part."))
            or (t.startswith("response.") and t not in LIFECYCLE and t.endswith((".delta", ".done")))]


def _recorded(turn: Turn) -> list[str]:
    """The nonces of the probe's record_nonces call; a probe that ran without a readable call
    is a harness/budget problem (ERROR)."""
    calls = [c for c in turn.function_calls if str(c.get("name", "")).startswith("record_nonces")]
    if not calls:
        if turn.status == "incomplete":
            raise HarnessError(f"budget: the probe turn ended incomplete before its record_nonces call "
                               f"({PROBE_BUDGET} output tokens); raise --max-output-tokens: {turn.summary()}")
        raise HarnessError(f"the probe turn made no record_nonces call although tool_choice forced it: "
                           f"{turn.summary()}")
    try:
        args = json.loads(calls[0].get("arguments") or "")
    except ValueError:
        raise HarnessError(f"record_nonces arguments are not JSON: {calls[0].get('arguments')!r:.200}") from None
    nonces = args.get("nonces") if isinstance(args, dict) else None
    if not isinstance(nonces, list):
        raise HarnessError(f"record_nonces arguments hold no nonces list: {args!r:.200}")
    return [str(n) for n in nonces]


@pytest.mark.clause("WARMUP-NO-OUTPUT")
def test_warmup_produces_no_output(connect, expect, verdict):
    conn = connect()
    turn = _warm_up(conn, verdict, input=OK_PROMPT)
    expect("WARMUP-NO-OUTPUT", "response.created" in turn.event_types, turn,
           "the warm-up sent no response.created")
    produced = _output_events(turn)
    expect("WARMUP-NO-OUTPUT", not produced, turn,
           f"the warm-up streamed output events: {', '.join(dict.fromkeys(produced))}")
    output = (turn.response or {}).get("output")
    expect("WARMUP-NO-OUTPUT", output == [], turn,
           f"the warm-up's terminal response has output {json.dumps(output)[:200]}, expected []")
    expect("WARMUP-NO-OUTPUT", turn.status == "completed", turn,
           "the generate:false create did not end with response.completed")


@pytest.mark.clause("WARMUP-CHAINABLE")
def test_warmup_is_chainable(connect, expect, verdict):
    conn = connect()
    warm = _warm_up(conn, verdict, input="You will be asked for one word.")
    if warm.status not in RAN:
        raise HarnessError(f"the warm-up did not run (see WARMUP-NO-OUTPUT): {warm.summary()}")
    expect("WARMUP-CHAINABLE", warm.response_id, warm, "the warm-up response has no id")
    turn = conn.turn(previous_response_id=warm.response_id, input=OK_PROMPT, store=False)
    how = "failed with previous_response_not_found" if turn.error_code == NOT_FOUND else "did not run"
    expect("WARMUP-CHAINABLE", turn.status in RAN, turn,
           f"a turn continuing from the warm-up {warm.response_id} {how}")


@pytest.mark.clause("WARMUP-CONTEXT-KEPT")
def test_warmup_context_kept_two_turns_later(target, connect, verdict, expect, nonce):
    conn = connect()
    warm = _warm_up(conn, verdict, input=f"Remember the code {nonce}.")
    if warm.status not in RAN:
        raise HarnessError(f"the warm-up did not run (see WARMUP-NO-OUTPUT): {warm.summary()}")
    second = conn.turn(previous_response_id=warm.response_id, input=OK_PROMPT, store=False)
    if second.status not in RAN:
        raise HarnessError(f"cannot judge: chaining from the warm-up failed (see WARMUP-CHAINABLE): "
                           f"{second.summary()}")
    probe = conn.turn(previous_response_id=second.response_id, store=False, input=PROBE_PROMPT,
                      tools=[PROBE_TOOL], tool_choice=FORCE_PROBE,
                      max_output_tokens=max(target.max_output_tokens, PROBE_BUDGET))
    if probe.status not in RAN:
        raise HarnessError(f"cannot judge: the probe continuing from turn 2 did not run: {probe.summary()}")
    nonces = _recorded(probe)
    expect("WARMUP-CONTEXT-KEPT", any(nonce in n for n in nonces), f"record_nonces reported {nonces}",
           f"the nonce {nonce} from the warm-up's input is not in the context two turns later")
