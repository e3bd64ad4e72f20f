"""Eviction cases: spec §4.5 item 30 (a continuation that fails with a 4xx/5xx evicts the id it
referenced; a later store=false continuation from it gets previous_response_not_found) — the
Open Responses scenario ``websocket-failed-continuation-evicts-cache``.

Turn 1 (store=false) runs; turn 2 continues from it and fails; turn 3 continues from turn 1
again. Turn 2 fails by an orphan call_id; where the server accepts that (a SHOULD finding of
its own), the continuation is provoked again with the values of ``PROVOCATIONS``, cheapest
first (out of range, then a wrong type, then a malformed ``tool_choice``), until one is
refused, so that eviction is judged on more servers before the case gives up with ERROR. Each
provocation a server accepts ran a turn, which is then the latest response the next one
continues. Without eviction the parent would still be the connection's latest response (a
failed turn leaves nothing newer behind), so turn 3 would be a cache hit; with eviction it is
a miss.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, RAN, TIME_TOOL, refusal_code, turn_budget
from conformance.client import HarnessError, Turn

NOT_FOUND = "previous_response_not_found"
ORPHAN_CALL_ID = "call_conformance_orphan_0000"
TOOL = TIME_TOOL
# the further ways to fail a continuation (a 400 under the request schema), cheapest first:
# what each says, and the create fields besides previous_response_id and store
PROVOCATIONS: tuple[tuple[str, dict], ...] = (
    ("temperature 99 (above the maximum 2)", {"input": PROMPT, "temperature": 99}),
    ('temperature "hot" (not a number)', {"input": PROMPT, "temperature": "hot"}),
    ('tool_choice {"type": "function"} (no name)', {"input": PROMPT, "tools": [TOOL],
                                                     "tool_choice": {"type": "function"}}),
)


def _first_turn(conn, target, kind: str) -> Turn:
    if kind == "function_call_turn":
        turn = conn.turn(input="What time is it? Use the tool.", tools=[TOOL], store=False,
                         tool_choice={"type": "function", "name": "get_time"},
                         max_output_tokens=turn_budget(target))   # the forced call must get out
    else:
        turn = conn.turn(input=PROMPT, store=False)
    if turn.status not in RAN:
        raise HarnessError(f"turn 1 did not run, so eviction cannot be judged: {turn.summary()}")
    return turn


def _require_failed(turn: Turn, why: str, target) -> None:
    """Turn 2 must fail for the eviction rule to apply at all.

    If it succeeds instead, that is no evidence about eviction: the successful turn 2 is now
    the latest response, so turn 3 would miss with or without eviction. It is not UNSUPPORTED
    either (eviction is no optional capability), so the honest verdict is ERROR: this run could
    not provoke a failed continuation.
    """
    if turn.status in RAN:
        raise HarnessError(f"could not provoke a failed continuation: {why} was accepted "
                           f"({turn.summary()}); eviction cannot be judged this way")
    if refusal_code(turn, target) == NOT_FOUND:
        raise HarnessError(f"turn 1's id was already unknown to turn 2 ({turn.summary()}); "
                           "eviction cannot be judged (see CACHE-HIT-STORE-FALSE)")
    if turn.status not in ("error", "failed"):
        raise HarnessError(f"turn 2 neither failed nor succeeded: {turn.summary()}")


def _failed_continuation(conn, expect, first: Turn) -> tuple[str, str, Turn]:
    """Provoke a failed continuation of ``first``: (id it named, how, the failed turn).

    First an orphan call_id (the Open Responses scenario); a server that accepts it breaks
    CONT-ORPHAN-CALL-OUTPUT-REJECTED, and its accepted turn is now the latest response, so each
    of ``PROVOCATIONS`` in turn continues from the latest one until the server refuses one.
    """
    why = f"a function_call_output for the unknown call_id {ORPHAN_CALL_ID}"
    failed = conn.turn(previous_response_id=first.response_id, store=False, tools=[TOOL],
                       input=[{"type": "function_call_output", "call_id": ORPHAN_CALL_ID, "output": "12:00"}])
    if failed.status not in RAN:
        return first.response_id, why, failed
    expect("CONT-ORPHAN-CALL-OUTPUT-REJECTED", False, failed,
           f"{why} was accepted: the continuation ran instead of failing with a 4xx error")
    for what, fields in PROVOCATIONS:
        parent = failed.response_id
        why = f"{why} was accepted, so then {what}"
        failed = conn.turn(previous_response_id=parent, store=False, **fields)
        if failed.status not in RAN:
            break
    return parent, why, failed


def _expect_evicted(expect, target, turn: Turn, why: str) -> None:
    code = refusal_code(turn, target)    # P-open: response.failed with the code is a refusal too
    if turn.status in RAN:
        outcome = "worked: the failed continuation did not evict it"
    else:
        outcome = f"ended {turn.status} with code {code!r} instead of {NOT_FOUND}"
    expect("EVICT-ON-FAILED-CONTINUATION", code == NOT_FOUND, turn,
           f"turn 2 failed ({why}), then continuing from the id it named {outcome}")


@pytest.mark.clause("EVICT-ON-FAILED-CONTINUATION", "CONT-ORPHAN-CALL-OUTPUT-REJECTED")
@pytest.mark.parametrize("kind", ["text_turn", "function_call_turn"])
@pytest.mark.max_requests(creates=6)     # turn 1, the orphan call_id, up to 3 provocations, turn 3
def test_failed_continuation_evicts(target, connect, expect, kind):
    conn = connect()
    first = _first_turn(conn, target, kind)
    parent, why, failed = _failed_continuation(conn, expect, first)
    if parent == first.response_id:     # the orphan call_id was refused: as a 4xx?
        status = failed.error_status
        expect("CONT-ORPHAN-CALL-OUTPUT-REJECTED", failed.status == "error" and (status is None or 400 <= status <= 499),
               failed, f"{why} ended {failed.status} (status {status}), expected a 4xx error event")
    _require_failed(failed, why, target)
    third = conn.turn(previous_response_id=parent, input=PROMPT, store=False)
    _expect_evicted(expect, target, third, why)


@pytest.mark.clause("EVICT-ON-FAILED-CONTINUATION")
@pytest.mark.max_requests(creates=3)
@pytest.mark.requires("reference_engine", reason="a response that fails mid-stream can only be provoked on the "
                                                 "reference server ([[fail]] trigger)")
def test_failed_response_evicts(target, connect, expect):
    # the mid-stream variant: turn 2 starts and ends response.failed (a 5xx). Only the
    # embedded reference server can be made to fail on purpose (its [[fail]] trigger).
    conn = connect()
    first = _first_turn(conn, target, "text_turn")
    failed = conn.turn(previous_response_id=first.response_id, store=False,
                       input=f"[[fail]] {PROMPT}")
    if failed.status != "failed":
        raise HarnessError(f"the [[fail]] trigger did not produce response.failed: {failed.summary()}")
    third = conn.turn(previous_response_id=first.response_id, input=PROMPT, store=False)
    _expect_evicted(expect, target, third, "it ended response.failed mid-stream")
