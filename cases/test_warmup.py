"""Warm-up cases: spec §4.7 items 39-40 (``generate: false`` produces no output, ends
response.completed with output [] and a real id) and §4.5 item 34 (that id chains like any
other, and the warm-up's input stays in the context of later turns).

Every case needs the ``generate_false`` capability (UNSUPPORTED otherwise, before it runs). A
target that answers the warm-up itself with "unsupported parameter" is UNSUPPORTED too
(docs/design.md "Verdicts"). The nonce goes in the warm-up's *input*: instructions are not carried
into continuations (§2.1), so a nonce there would prove nothing.
"""

from __future__ import annotations

import json

import pytest

from conformance.casekit import PROMPT, RAN, refusal_code
from conformance.client import HarnessError, Turn
from conformance.monitor.events import LIFECYCLE_START, TERMINAL_TYPES
from conformance.probes import probe_fields, recorded_nonces, seen

NOT_FOUND = "previous_response_not_found"
LIFECYCLE = frozenset((*LIFECYCLE_START, "response.in_progress", *TERMINAL_TYPES))


def _warm_up(conn, expect, **fields) -> Turn:
    turn = conn.turn(generate=False, store=False, **fields)
    inner = (turn.error or {}).get("error")
    inner = inner if isinstance(inner, dict) else {}
    if turn.status == "error" and (inner.get("param") == "generate" or turn.error_code == "unsupported_parameter"):
        expect.unsupported(f"the target rejected generate:false ({turn.summary()})")
    return turn


def _output_events(turn: Turn) -> list[str]:
    """Event types that carry output: item and part lifecycle, deltas and .done values."""
    return [t for t in turn.event_types
            if t.startswith(("response.output_item.", "response.content_part."))
            or (t.startswith("response.") and t not in LIFECYCLE and t.endswith((".delta", ".done")))]


@pytest.mark.clause("WARMUP-NO-OUTPUT")
@pytest.mark.max_requests(creates=1)
def test_warmup_produces_no_output(target, connect, expect):
    conn = connect()
    turn = _warm_up(conn, expect, input=PROMPT)
    expect("WARMUP-NO-OUTPUT", "response.created" in turn.event_types, turn,
           "the warm-up sent no response.created")
    produced = _output_events(turn)
    expect("WARMUP-NO-OUTPUT", not produced, turn,
           f"the warm-up streamed output events: {', '.join(dict.fromkeys(produced))}")
    output = (turn.response or {}).get("output")
    if output is None and target.profile.terminal_output == "optional":
        output = turn.output  # missing or null: a client fills in the streamed items (§4.3 item 16a)
    expect("WARMUP-NO-OUTPUT", output == [], turn,
           f"the warm-up's terminal response has output {json.dumps(output)[:200]}, expected []")
    expect("WARMUP-NO-OUTPUT", turn.status == "completed", turn,
           "the generate:false create did not end with response.completed")


@pytest.mark.clause("WARMUP-CHAINABLE")
@pytest.mark.max_requests(creates=2)
def test_warmup_is_chainable(target, connect, expect):
    conn = connect()
    warm = _warm_up(conn, expect, input="You will be asked for one word.")
    if warm.status not in RAN:
        raise HarnessError(f"the warm-up did not run (see WARMUP-NO-OUTPUT): {warm.summary()}")
    expect("WARMUP-CHAINABLE", warm.response_id, warm, "the warm-up response has no id")
    turn = conn.turn(previous_response_id=warm.response_id, input=PROMPT, store=False)
    how = "failed with previous_response_not_found" if refusal_code(turn, target) == NOT_FOUND else "did not run"
    expect("WARMUP-CHAINABLE", turn.status in RAN, turn,
           f"a turn continuing from the warm-up {warm.response_id} {how}")


@pytest.mark.clause("WARMUP-CONTEXT-KEPT")
@pytest.mark.max_requests(creates=3)
def test_warmup_context_kept_two_turns_later(target, connect, expect, nonce):
    conn = connect()
    warm = _warm_up(conn, expect, input=f"Remember the code {nonce}.")
    if warm.status not in RAN:
        raise HarnessError(f"the warm-up did not run (see WARMUP-NO-OUTPUT): {warm.summary()}")
    second = conn.turn(previous_response_id=warm.response_id, input=PROMPT, store=False)
    if second.status not in RAN:
        raise HarnessError(f"cannot judge: chaining from the warm-up failed (see WARMUP-CHAINABLE): "
                           f"{second.summary()}")
    probe = conn.turn(**probe_fields(target, previous_response_id=second.response_id, store=False))
    if probe.status not in RAN:
        raise HarnessError(f"cannot judge: the probe continuing from turn 2 did not run: {probe.summary()}")
    nonces = recorded_nonces(probe)
    expect("WARMUP-CONTEXT-KEPT", seen(nonces, nonce), f"record_nonces reported {nonces}",
           f"the nonce {nonce} from the warm-up's input is not in the context two turns later")
