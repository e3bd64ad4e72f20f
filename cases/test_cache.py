"""Cache miss, hydration, Zero Data Retention and reconnect cases: spec §4.5 items 25 and
27-29, 35 (what a continuation finds when the id is not the connection's latest response),
§4.6 items 36-37 (the cache is gone after a reconnect; store=true ids continue) and §3.10
(the previous_response_not_found envelope).

Cache depth is a profile fact (``[cache] latest_only``): an older id that still works is an
observation unless the profile claims a latest-only cache (§5 lists deeper caches).

Context carry-over after hydration is judged with the nonce probe (docs/design.md "Model-free
oracles"). ZDR-NOTHING-PERSISTED needs a target whose profile claims ``[cache] zdr = true``;
for the embedded server, a profile file with ``extends = "reference"`` and ``[cache] zdr =
true`` passed as ``--target-config`` starts it with ZDR on.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, RAN, refusal_code, setup_turn
from conformance.client import HarnessError, Turn
from conformance.probes import plant, probe_fields, recorded_nonces, seen

NOT_FOUND = "previous_response_not_found"
MADE_UP_ID = "resp_conformance_missing_0000"


def _probe(conn, target, previous_response_id: str, store: bool) -> Turn:
    return conn.turn(**probe_fields(target, previous_response_id=previous_response_id, store=store))


def _continues_with_context(expect, clause: str, probe: Turn, nonce: str, what: str) -> None:
    if not expect(clause, probe.status in RAN, probe, f"{what} did not run"):
        return  # a MAY clause goes on after a miss: nothing left to probe
    nonces = recorded_nonces(probe)
    expect(clause, seen(nonces, nonce), f"record_nonces reported {nonces}",
           f"{what} ran, but the nonce {nonce} planted in the continued response is not in its context")


def _not_found_problems(turn: Turn, target) -> list[str]:
    """Every way ``turn`` differs from the previous_response_not_found rejection of §3.10 (or,
    where the profile allows it, §4.10 item 51a, a response.failed with that response.error.code)."""
    if turn.status == "failed" and target.profile.not_found_as == "error_or_failed":
        code = refusal_code(turn, target)
        return [] if code == NOT_FOUND else [f"response.failed carries response.error.code {code!r}, expected {NOT_FOUND!r}"]
    if turn.status == "failed":
        code = ((turn.response or {}).get("error") or {}).get("code")
        return [f"the continuation ended response.failed (response.error.code {code!r}) instead of an error "
                f"event: the profile expects the error event of §3.10 ([errors] not_found_as = "
                f"{target.profile.not_found_as!r})"]
    if turn.status != "error":
        return [f"the continuation was not rejected with an error event (turn status {turn.status})"]
    problems = []
    if turn.error_code != NOT_FOUND:
        problems.append(f"error.code is {turn.error_code!r}, expected {NOT_FOUND!r}")
    want, status = target.profile.not_found_status, turn.error_status
    if want and status != want:
        problems.append(f"status is {status!r}, expected {want}")
    elif not want and not (isinstance(status, int) and 400 <= status < 500):
        problems.append(f"status is {status!r}, expected a 4xx status")
    inner = (turn.error or {}).get("error")
    inner = inner if isinstance(inner, dict) else {}
    if inner.get("type") not in target.profile.invalid_request_types:
        problems.append(f"error.type is {inner.get('type')!r}, expected one of "
                        f"{list(target.profile.invalid_request_types)} ([errors] invalid_request_types)")
    if inner.get("param") != "previous_response_id":
        problems.append(f"error.param is {inner.get('param')!r}, expected 'previous_response_id'")
    return problems


def _expect_not_found(expect, clause: str, turn: Turn, what: str, target) -> None:
    """Only the code: the full envelope is CACHE-MISS-STORE-FALSE's business."""
    code = refusal_code(turn, target)
    if turn.status in RAN:
        how = f"was continued instead of failing with {NOT_FOUND}"
    else:
        how = f"ended {turn.status} with code {code!r} instead of {NOT_FOUND}"
    expect(clause, code == NOT_FOUND, turn, f"{what} {how}")


# --- CACHE-MISS-STORE-FALSE --------------------------------------------------------------------

@pytest.mark.clause("CACHE-MISS-STORE-FALSE")
@pytest.mark.max_requests(creates=3)
def test_miss_not_latest_store_false(target, connect, expect, verdict):
    # a newer response pushes the first one out of a latest-only cache (§4.5 item 25); keeping
    # more is a legitimate difference (§5), judged only where the profile claims latest_only
    conn = connect()
    first = setup_turn(conn, input=PROMPT, store=False)
    setup_turn(conn, input="Reply with the single word: yes", store=False)
    turn = conn.turn(previous_response_id=first.response_id, input=PROMPT, store=False)
    if turn.status in RAN and not target.has("cache_latest_only"):
        verdict.info("observed a deeper cache: an older store=false response of the connection "
                     "could still be continued (allowed: the profile does not claim [cache] latest_only)",
                     "CACHE-MISS-STORE-FALSE")
        return
    problems = _not_found_problems(turn, target)
    expect("CACHE-MISS-STORE-FALSE", not problems, turn,
           "continuing from a store=false response that is no longer the connection's latest "
           "(the profile claims [cache] latest_only): " + "; ".join(problems))


@pytest.mark.clause("CACHE-MISS-STORE-FALSE")
@pytest.mark.max_requests(creates=1)
def test_miss_unknown_id(target, connect, expect):
    conn = connect()
    turn = conn.turn(previous_response_id=MADE_UP_ID, input=PROMPT, store=False)
    problems = _not_found_problems(turn, target)
    expect("CACHE-MISS-STORE-FALSE", not problems, turn,
           f"continuing from the made-up id {MADE_UP_ID}: " + "; ".join(problems))


# --- CACHE-MISS-STORE-TRUE-HYDRATED (MAY) ------------------------------------------------------

@pytest.mark.clause("CACHE-MISS-STORE-TRUE-HYDRATED")
@pytest.mark.max_requests(creates=2)
def test_store_true_hydrated_on_other_connection(target, connect, expect, nonce):
    first_conn, other = connect(), connect()
    first = setup_turn(first_conn, input=plant(nonce), store=True)
    probe = _probe(other, target, first.response_id, store=True)
    _continues_with_context(expect, "CACHE-MISS-STORE-TRUE-HYDRATED", probe, nonce,
                            "continuing a store=true response of another connection")


# --- ZDR-OTHER-CONNECTION / ZDR-AFTER-RECONNECT / ZDR-NOTHING-PERSISTED ------------------------

def _still_continuable(conn, response_id: str, what: str) -> None:
    """Guard: the id is valid on its own connection, so a miss elsewhere means something."""
    turn = conn.turn(previous_response_id=response_id, input=PROMPT, store=False)
    if turn.status not in RAN:
        raise HarnessError(f"cannot judge: {what} cannot be continued on its own connection either: "
                           f"{turn.summary()}")


@pytest.mark.clause("ZDR-OTHER-CONNECTION")
@pytest.mark.max_requests(creates=3)
def test_store_false_not_found_on_other_connection(target, connect, expect):
    owner, other = connect(), connect()
    first = setup_turn(owner, input=PROMPT, store=False)
    turn = other.turn(previous_response_id=first.response_id, input=PROMPT, store=False)
    _expect_not_found(expect, "ZDR-OTHER-CONNECTION", turn,
                      "a store=false response of another (still open) connection", target)
    _still_continuable(owner, first.response_id, "the store=false response")


@pytest.mark.clause("ZDR-AFTER-RECONNECT")
@pytest.mark.max_requests(creates=2)
def test_store_false_not_found_after_reconnect(target, connect, expect):
    before = connect()
    first = setup_turn(before, input=PROMPT, store=False)
    before.close()
    after = connect()
    turn = after.turn(previous_response_id=first.response_id, input=PROMPT, store=False)
    _expect_not_found(expect, "ZDR-AFTER-RECONNECT", turn, "a store=false response of a closed connection", target)


@pytest.mark.clause("ZDR-NOTHING-PERSISTED")
@pytest.mark.max_requests(creates=2)
def test_zdr_store_true_not_found_on_other_connection(target, connect, expect):
    owner, other = connect(), connect()
    first = setup_turn(owner, input=PROMPT, store=True)
    turn = other.turn(previous_response_id=first.response_id, input=PROMPT, store=True)
    _expect_not_found(expect, "ZDR-NOTHING-PERSISTED", turn,
                      "under ZDR, a store=true response of another connection", target)
    _still_continuable(owner, first.response_id, "the store=true response")


# --- RECONNECT-STORE-TRUE-CONTINUES (SHOULD) ---------------------------------------------------

@pytest.mark.clause("RECONNECT-STORE-TRUE-CONTINUES")
@pytest.mark.max_requests(creates=2)
def test_store_true_continues_after_reconnect(target, connect, expect, nonce):
    before = connect()
    first = setup_turn(before, input=plant(nonce), store=True)
    before.close()
    after = connect()
    probe = _probe(after, target, first.response_id, store=True)
    _continues_with_context(expect, "RECONNECT-STORE-TRUE-CONTINUES", probe, nonce,
                            "continuing a store=true response after a reconnect")
