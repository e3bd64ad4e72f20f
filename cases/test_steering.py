"""Steering (P-steer): spec §2.2 (the ``response.steer`` event), §3.3 (``response.steer.accepted``
/ ``.pending`` / ``.failed``), §4.4 item 23a (the successor and its lane) and §4.9 items 46-49.

A steer must reach a response that is still running: the target turn asks for a long answer
(``casekit.LONG_PROMPT``), runs on a socket whose turns last a while when the target honours
test controls (``X-Conformance-Turn-Delay-Ms``), and the steer is sent as soon as its
``response.created`` arrives. A steer that came too late (the target had already ended) says
nothing about acceptance: the case cannot judge (ERROR, saying what the target must do). The
successor is told by ``previous_response_id`` = the target; the steer's context by the nonce
probe (``conformance/probes.py``). Each case costs at most 2 creates (the successor is the
target's own, not the client's).
"""

from __future__ import annotations

import time

import pytest

from conformance.casekit import LONG_PROMPT, PROMPT, RAN, TIME_TOOL, long_turn, paced, setup_turn, turn_budget
from conformance.client import HarnessError
from conformance.model import STEER_ENDED_CODES
from conformance.monitor import TERMINAL_TYPES
from conformance.probes import PROBE_PROMPT, plant, probe_fields, recorded_nonces, seen

TURN_DELAY_MS = 400
STEER_TEXT = "Also end your answer with the word: thanks"
STEER_EVENTS = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")
ENDED_CODES = STEER_ENDED_CODES


def _rid(msg: dict) -> str | None:
    resp = msg.get("response")
    return resp.get("id") if isinstance(resp, dict) else None


def _steer_of(msg: dict) -> dict:
    steer = msg.get("steer")
    return steer if isinstance(steer, dict) else {}


def _start(conn, target, **fields) -> str:
    """Send the target create and wait for its response.created; returns its id."""
    fields.setdefault("max_output_tokens", turn_budget(target))
    conn.create(**fields)
    got = conn.recv_until(lambda m: m.get("type") in ("response.created", "error"), target.turn_timeout)
    created = [m for m in got if m.get("type") == "response.created" and _rid(m)]
    if not created:
        raise HarnessError(f"the target turn did not start, so steering cannot be judged: {got[-3:]}")
    return _rid(created[0])


def _answer(conn, target, target_id: str) -> dict:
    """The first steer event (or error) answering a steer of ``target_id``."""
    def done(m: dict) -> bool:
        return m.get("type") == "error" or (m.get("type") in STEER_EVENTS
                                            and _steer_of(m).get("previous_response_id") == target_id)
    got = conn.recv_until(done, target.turn_timeout)
    if not got or not done(got[-1]):
        raise HarnessError(f"no answer to the steer of {target_id} within {target.turn_timeout:g}s")
    return got[-1]


def _too_late(target, target_id: str, ans: dict) -> str:
    return (f"cannot judge: the steer was sent as soon as response.created of {target_id} arrived, but the "
            f"target had already ended ({ans.get('type')} {((ans.get('error') or {}).get('code'))!r}). The target "
            f"must still be streaming one round trip after response.created (the suite asks for a long answer, "
            f"{LONG_PROMPT!r}, where the case allows): run with a model or deployment whose "
            "responses take longer (--model), or honour the X-Conformance-Turn-Delay-Ms test control "
            "([features] test_controls)")


def _accepted(conn, target, target_id: str) -> dict:
    ans = _answer(conn, target, target_id)
    if ans.get("type") == "response.steer.failed" and (ans.get("error") or {}).get("code") in ENDED_CODES:
        raise HarnessError(_too_late(target, target_id, ans))
    return ans


def _until_successor_ends(conn, target, target_id: str) -> tuple[dict | None, dict | None, dict | None]:
    """(target's terminal, successor's response.created, successor's terminal), read from the socket."""
    deadline = time.monotonic() + 2 * target.turn_timeout

    def state():
        term = succ = succ_term = None
        for m in conn.messages:
            typ, rid = m.get("type"), _rid(m)
            if typ in TERMINAL_TYPES and rid == target_id and term is None:
                term = m
            elif typ == "response.created" and (m.get("response") or {}).get("previous_response_id") == target_id \
                    and rid != target_id and succ is None:
                succ = m
            elif succ is not None and typ in TERMINAL_TYPES and rid == _rid(succ) and succ_term is None:
                succ_term = m
        return term, succ, succ_term

    term, succ, succ_term = state()
    while succ_term is None and not conn.closed and time.monotonic() < deadline:
        conn.recv_until(lambda m: m.get("type") in TERMINAL_TYPES, deadline - time.monotonic())
        term, succ, succ_term = state()
    return term, succ, succ_term


def _end_ok(expect, term: dict | None, target_id: str) -> None:
    resp = (term or {}).get("response") or {}
    reason = (resp.get("incomplete_details") or {}).get("reason")
    # its own output budget may end it too: that is no steering outcome, but no violation either
    ok = term is not None and (term["type"] == "response.completed"
                               or (term["type"] == "response.incomplete" and reason in ("steered", "max_output_tokens")))
    expect("STEER-TARGET-ENDS", ok, term,
           f"the steered target {target_id} ended {(term or {}).get('type', 'without a terminal event')} "
           f"(reason {reason!r}); expected response.completed or response.incomplete with reason steered")


@pytest.mark.clause("STEER-ACCEPTED", "STEER-TARGET-ENDS", "STEER-SUCCESSOR")
@pytest.mark.parametrize("lane", [None, "steer-lane"], ids=["default_lane", "named_lane"])
@pytest.mark.max_requests(creates=1)
def test_steer_accepted_and_successor(target, connect, expect, lane):
    conn = paced(target, connect, TURN_DELAY_MS)
    # on the reference server the named-lane target has two items, so a steer can stop it between them
    text = long_turn(target)["input"] if lane else LONG_PROMPT
    target_id = _start(conn, target, input=text, store=False, stream_id=lane)
    conn.steer(target_id, STEER_TEXT)
    ans = _accepted(conn, target, target_id)
    steer = _steer_of(ans)
    expect("STEER-ACCEPTED", ans.get("type") == "response.steer.accepted", ans,
           f"a steer of the running response {target_id} got {ans.get('type')} instead of response.steer.accepted")
    expect("STEER-ACCEPTED", isinstance(steer.get("id"), str) and bool(steer.get("id")), ans,
           "response.steer.accepted carries no steer.id")
    expect("STEER-ACCEPTED", ans.get("stream_id") == lane, ans,
           f"response.steer.accepted carries stream_id {ans.get('stream_id')!r}, the target's lane is {lane!r}")
    term, succ, succ_term = _until_successor_ends(conn, target, target_id)
    _end_ok(expect, term, target_id)
    expect("STEER-SUCCESSOR", succ is not None, ans,
           f"no successor response (previous_response_id {target_id}) was created after the accepted steer")
    expect("STEER-SUCCESSOR", succ.get("stream_id") == lane, succ,
           f"the successor runs on lane {succ.get('stream_id')!r}, the target's lane is {lane!r}")
    ended = (succ_term or {}).get("type", "")
    expect("STEER-SUCCESSOR", ended in ("response.completed", "response.incomplete"), succ_term,
           f"the successor {_rid(succ)} ended {ended or 'without a terminal event'}")


@pytest.mark.clause("STEER-SUCCESSOR-CONTEXT")
@pytest.mark.max_requests(creates=2)
def test_steer_input_reaches_successor(target, connect, expect, nonce_factory):
    conn, nonce = paced(target, connect, TURN_DELAY_MS), nonce_factory()
    target_id = _start(conn, target, input=LONG_PROMPT, store=False)
    conn.steer(target_id, plant(nonce))
    ans = _accepted(conn, target, target_id)
    if ans.get("type") != "response.steer.accepted":
        raise HarnessError(f"the steer was not accepted, so its context cannot be judged: {ans}")
    _, succ, succ_term = _until_successor_ends(conn, target, target_id)
    if succ is None or succ_term is None:
        raise HarnessError("no successor ran after the accepted steer (see STEER-SUCCESSOR)")
    probe = conn.turn(**probe_fields(target, store=False, previous_response_id=_rid(succ)))
    if probe.status not in RAN:
        raise HarnessError(f"the probe continuing the successor did not run: {probe.summary()}")
    expect("STEER-SUCCESSOR-CONTEXT", seen(recorded_nonces(probe), nonce), probe,
           f"{nonce}, planted in the steer's input, is not in the context after the successor {_rid(succ)}")


def _steered_tool_call(conn, target, nonce: str, store: bool) -> tuple[str, dict, dict | None, list]:
    """A target forced to call a client tool, steered with ``nonce`` while it runs: (its id,
    the steer's second answer, its terminal event, its function calls)."""
    target_id = _start(conn, target, input="What time is it? Use the tool.", tools=[TIME_TOOL], store=store,
                       tool_choice={"type": "function", "name": "get_time"})
    conn.steer(target_id, plant(nonce))
    first = _accepted(conn, target, target_id)
    if first.get("type") != "response.steer.accepted":
        raise HarnessError(f"the steer was not accepted, so the pending path cannot be judged: {first}")
    pending = _answer(conn, target, target_id)
    term = next((m for m in conn.messages if m.get("type") in TERMINAL_TYPES and _rid(m) == target_id), None)
    calls = [i for i in ((term or {}).get("response") or {}).get("output") or [] if i.get("type") == "function_call"]
    if not calls:
        raise HarnessError(f"the target made no function call, so it did not stop for tool output: {term}")
    return target_id, pending, term, calls


def _tool_outputs_probe(target, target_id: str, calls: list, store: bool) -> dict:
    """The explicit create after the pending steer: the tool outputs, then a nonce probe."""
    outputs = [{"type": "function_call_output", "call_id": c.get("call_id"), "output": "12:00"} for c in calls]
    return probe_fields(target, store=store, previous_response_id=target_id,
                        input=outputs + [{"role": "user", "content": PROBE_PROMPT}])


@pytest.mark.clause("STEER-PENDING")
@pytest.mark.max_requests(creates=2)
def test_steer_pending_for_tool_output(target, connect, expect, nonce_factory):
    conn, nonce = paced(target, connect, TURN_DELAY_MS), nonce_factory()
    target_id, pending, term, calls = _steered_tool_call(conn, target, nonce, store=False)
    expect("STEER-PENDING", (term or {}).get("type") == "response.completed", term,
           f"a target stopping for tool output ended {(term or {}).get('type')}, expected response.completed")
    expect("STEER-PENDING", pending.get("type") == "response.steer.pending"
           and pending.get("reason") == "waiting_for_required_input", pending,
           f"after the target stopped for tool output the steer got {pending.get('type')} "
           f"(reason {pending.get('reason')!r}), expected response.steer.pending waiting_for_required_input")
    stubs = pending.get("required_input") if isinstance(pending.get("required_input"), list) else []
    named = {s.get("call_id") for s in stubs if isinstance(s, dict)}
    expect("STEER-PENDING", calls[0].get("call_id") in named, pending,
           f"required_input {stubs!r:.200} does not name the target's call {calls[0].get('call_id')!r}")
    probe = conn.turn(**_tool_outputs_probe(target, target_id, calls, store=False))
    if probe.status not in RAN:
        raise HarnessError(f"the create with the tool outputs did not run: {probe.summary()}")
    expect("STEER-PENDING", seen(recorded_nonces(probe), nonce), probe,
           f"{nonce}, planted in the pending steer, is not in the context of the create with the tool outputs")


@pytest.mark.clause("STEER-CONNECTION-LOCAL")
@pytest.mark.max_requests(creates=2)
def test_pending_steer_is_connection_local(target, connect, expect, nonce_factory):
    # a store=true target, so that another connection can continue it (hydrated)
    conn, nonce = paced(target, connect, TURN_DELAY_MS), nonce_factory()
    target_id, pending, _, calls = _steered_tool_call(conn, target, nonce, store=True)
    if pending.get("type") != "response.steer.pending":
        raise HarnessError(f"no response.steer.pending, so no steer input was queued: {pending}")
    conn.close()
    probe = connect().turn(**_tool_outputs_probe(target, target_id, calls, store=True))
    if probe.status not in RAN:
        raise HarnessError(f"the target could not be continued from another connection: {probe.summary()}")
    expect("STEER-CONNECTION-LOCAL", not seen(recorded_nonces(probe), nonce), probe,
           f"{nonce}, planted in a steer queued on a connection that then closed, is in the context of a "
           "continuation of its target from another connection")


def _failed_answer(conn, target, target_id: str, input_value) -> dict:
    conn.steer(target_id, input_value)
    return _answer(conn, target, target_id)


def _expect_echo(expect, ans: dict, target_id: str, input_value) -> None:
    steer = _steer_of(ans)
    err = ans.get("error") if isinstance(ans.get("error"), dict) else {}
    expect("STEER-FAILED-ECHO", steer.get("input") == input_value and steer.get("previous_response_id") == target_id,
           ans, "response.steer.failed does not repeat the steer's input and previous_response_id")
    expect("STEER-FAILED-ECHO", err.get("type") == "invalid_request_error" and isinstance(err.get("code"), str),
           ans, f"response.steer.failed has error {err!r:.200}; expected type invalid_request_error and a code")


@pytest.mark.clause("STEER-ENDED-REFUSED", "STEER-FAILED-ECHO")
@pytest.mark.parametrize("ending", ["completed", "incomplete"])
@pytest.mark.max_requests(creates=1)
def test_steer_of_ended_response_refused(target, connect, expect, ending):
    conn = connect()
    budget = {"max_output_tokens": 16, "input": "Count from 1 to 200, separated by commas."} \
        if ending == "incomplete" else {"input": PROMPT, "max_output_tokens": turn_budget(target)}
    turn = setup_turn(conn, store=False, **budget)
    if turn.status != ending:
        raise HarnessError(f"the setup turn ended {turn.status}, not {ending}: {turn.summary()}")
    ans = _failed_answer(conn, target, turn.response_id, STEER_TEXT)
    code = (ans.get("error") or {}).get("code") if isinstance(ans.get("error"), dict) else None
    expect("STEER-ENDED-REFUSED", ans.get("type") == "response.steer.failed" and code in ENDED_CODES, ans,
           f"a steer of the {ending} response {turn.response_id} got {ans.get('type')} (code {code!r}); "
           f"expected response.steer.failed with {' or '.join(ENDED_CODES)}")
    if ans.get("type") == "response.steer.failed":
        _expect_echo(expect, ans, turn.response_id, STEER_TEXT)


@pytest.mark.clause("STEER-NOT-FOUND", "STEER-FAILED-ECHO")
@pytest.mark.max_requests(creates=1)
def test_steer_of_unknown_response_refused(target, connect, expect):
    conn = connect()
    setup_turn(conn, input=PROMPT, store=False)   # the connection is in use; the id is not
    unknown = "resp_conformance_unknown_steer_0000"
    value = [{"role": "user", "content": STEER_TEXT}]
    ans = _failed_answer(conn, target, unknown, value)
    code = (ans.get("error") or {}).get("code") if isinstance(ans.get("error"), dict) else None
    expect("STEER-NOT-FOUND", ans.get("type") == "response.steer.failed" and code == "response_not_found", ans,
           f"a steer of an unknown id got {ans.get('type')} (code {code!r}); expected response.steer.failed "
           "with response_not_found")
    if ans.get("type") == "response.steer.failed":
        _expect_echo(expect, ans, unknown, value)


@pytest.mark.clause("STEER-INVALID")
@pytest.mark.max_requests(creates=1)
def test_steer_with_stream_id_refused(target, connect, expect):
    conn = paced(target, connect, TURN_DELAY_MS)
    target_id = _start(conn, target, input=long_turn(target)["input"], store=False, stream_id="inv-lane")
    conn.steer(target_id, STEER_TEXT, stream_id="inv-lane")
    ans = _answer(conn, target, target_id)
    code = (ans.get("error") or {}).get("code") if isinstance(ans.get("error"), dict) else None
    expect("STEER-INVALID", ans.get("type") in ("response.steer.failed", "error") and code == "invalid_input", ans,
           f"a steer carrying stream_id got {ans.get('type')} (code {code!r}); expected invalid_input "
           "(response.steer.failed or error)")
    later = conn.recv_until(lambda m: m.get("type") in TERMINAL_TYPES and _rid(m) == target_id, target.turn_timeout)
    accepted = [m for m in conn.messages if m.get("type") == "response.steer.accepted"]
    expect("STEER-INVALID", not accepted, accepted[:1], "a steer carrying stream_id was accepted")
    if not later:
        raise HarnessError(f"the target {target_id} did not end after the refused steer")


@pytest.mark.clause("STEER-NOT-STEERABLE")
@pytest.mark.max_requests(creates=1)
def test_steer_of_compacting_response_refused(target, connect, expect):
    conn = paced(target, connect, TURN_DELAY_MS)
    target_id = _start(conn, target, input=long_turn(target)["input"], store=False,
                       context_management=[{"type": "compaction"}])
    ans = _failed_answer(conn, target, target_id, STEER_TEXT)
    code = (ans.get("error") or {}).get("code") if isinstance(ans.get("error"), dict) else None
    if code in ENDED_CODES:
        raise HarnessError(_too_late(target, target_id, ans))
    expect("STEER-NOT-STEERABLE", ans.get("type") == "response.steer.failed" and code == "steering_not_supported",
           ans, f"a steer of a response with automatic compaction got {ans.get('type')} (code {code!r}); "
                "expected response.steer.failed with steering_not_supported")


@pytest.mark.clause("STEER-FAILED-AFTER-ACCEPT")
@pytest.mark.max_requests(creates=1)
def test_steer_fails_with_its_target(target, connect, expect):
    # only the reference server can be made to fail a running response ([[fail]] trigger)
    conn = paced(target, connect, TURN_DELAY_MS)
    target_id = _start(conn, target, input=f"[[fail]] {PROMPT}", store=False)
    conn.steer(target_id, STEER_TEXT)
    first = _accepted(conn, target, target_id)
    if first.get("type") != "response.steer.accepted":
        raise HarnessError(f"the steer was not accepted, so a failure after acceptance cannot be judged: {first}")
    then = _answer(conn, target, target_id)
    term = next((m for m in conn.messages if m.get("type") in TERMINAL_TYPES and _rid(m) == target_id), None)
    if (term or {}).get("type") != "response.failed":
        raise HarnessError(f"the [[fail]] target did not end response.failed: {term}")
    expect("STEER-FAILED-AFTER-ACCEPT", then.get("type") == "response.steer.failed"
           and _steer_of(then).get("id") == _steer_of(first).get("id"), then,
           f"after its target failed, the accepted steer {_steer_of(first).get('id')!r} got {then.get('type')} "
           f"with steer.id {_steer_of(then).get('id')!r}; expected response.steer.failed with the same id")
