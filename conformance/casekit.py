"""Small helpers the conformance cases share (``cases/``); the nonce probe is ``probes.py``.

Only logic that is the same wherever it is used lives here: what counts as a turn that ran,
the one-word prompt, the output budget of a turn that must complete, the setup turn a case
builds on, a paced socket and a long first turn (a response still running when the frames
sent after it arrive), a client tool, the code of a refused request as the profile lets it
come, and the monitor's verdict on a connection stated as expectations.
"""

from __future__ import annotations

from typing import Any, Iterable

from conformance.client import HarnessError, Turn

RAN = ("completed", "incomplete")          # a turn that ran (a truncated one too)
PROMPT = "Reply with the single word: ok"
# a turn that must complete gets room for a short answer (reasoning models spend tokens too)
TURN_BUDGET = 256


# a first response that is still streaming when the frames sent right after its create arrive
# (FIFO, lanes, steering), on a target without test controls too: a real model streams this
# answer for a while; the reference engine's fixed reply is doubled by its [[multi]] trigger
LONG_PROMPT = "Count from 1 to 100 in words, separated by commas."
# above the harness's own per-frame work: how much longer than the round trip of its create
# the first response must run after the last frame was sent, for that frame to have provably
# arrived while it ran
IN_FLIGHT_MARGIN_S = 0.02

# a forced client tool (the model stops for its output)
TIME_TOOL = {"type": "function", "name": "get_time", "description": "Return the current time.",
             "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}


def paced(target: Any, connect: Any, delay_ms: int) -> Any:
    """A socket on which every turn lasts at least ``delay_ms`` (``X-Conformance-Turn-Delay-Ms``)
    when the target honours test controls; otherwise a plain one (the model's latency paces it)."""
    if target.has("test_controls"):
        return connect(headers={"X-Conformance-Turn-Delay-Ms": str(delay_ms)})
    return connect()


def long_turn(target: Any, **fields: Any) -> dict:
    """Fields of a create whose response must still be running when the next frames arrive:
    the long prompt with room for its answer (``turn_budget``); ``fields`` add or override."""
    text = f"[[multi]] {LONG_PROMPT}" if target.has("reference_engine") else LONG_PROMPT
    return {"input": text, "max_output_tokens": turn_budget(target)} | fields


def too_fast(target: Any, what: str, ran_s: float | None, needed_s: float) -> str:
    """The "cannot judge" reason of a case whose first response ended before the frames sent
    after it provably arrived: what was measured and what the target must do."""
    ran = "had not ended" if ran_s is None else f"ended {ran_s * 1000:.0f} ms after the last frame was sent"
    return (f"cannot judge: {what}, but the first response {ran}; to prove the frames arrived while it ran "
            f"it must run longer than {needed_s * 1000:.0f} ms after them (the round trip of its create plus "
            f"{IN_FLIGHT_MARGIN_S * 1000:.0f} ms). The target must stream its answer to {LONG_PROMPT!r} "
            f"(max_output_tokens {turn_budget(target)}) for longer than that: run with a model or deployment "
            "whose responses take that long (--model), or honour the X-Conformance-Turn-Delay-Ms test control "
            "([features] test_controls)")


def turn_budget(target: Any) -> int:
    """``max_output_tokens`` for a turn that must complete: the target's, at least TURN_BUDGET."""
    return max(target.max_output_tokens, TURN_BUDGET)


def setup_turn(conn: Any, **fields: Any) -> Turn:
    """A turn the case builds on; if it does not run, the case cannot judge its clause."""
    turn = conn.turn(**fields)
    if turn.status not in RAN:
        raise HarnessError(f"a setup turn did not run, so the case cannot judge: {turn.summary()}")
    return turn


def refusal_code(turn: Turn, target: Any) -> str | None:
    """The code of a refused request: its error event's; where the profile lets a refusal come as
    ``response.failed`` (``[errors] not_found_as = "error_or_failed"``, P-open, §4.10 item 51a),
    also the ``response.error.code`` of a failed turn."""
    if turn.status == "failed" and target.profile.not_found_as == "error_or_failed":
        err = (turn.response or {}).get("error")
        return err.get("code") if isinstance(err, dict) else None
    return turn.error_code


def no_response_events(events: Iterable[dict]) -> bool:
    return not any(str(e.get("type", "")).startswith("response.") for e in events)


def expect_monitor_clean(expect: Any, conn: Any, clauses: Iterable[str]) -> None:
    """The monitor's verdict on ``conn``, one expectation per clause."""
    for clause in clauses:
        bad = [f.message for f in conn.findings if f.clause == clause and f.kind == "violation"]
        expect(clause, not bad, bad[:4], f"the streaming monitor found {len(bad)} violation(s) of {clause}")
