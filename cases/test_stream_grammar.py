"""Event schemas and the streaming grammar of one response: spec §3.1-3.9 (event shapes,
lane tagging, extensions) and §4.3 items 11-18 (created first, item and part lifecycle,
indexes, deltas that add up, exactly one terminal event that comes last and carries the full
response, truncated items, sequence numbers, default lane untagged; item 15a: no private
trailer after the terminal event, a MUST under P-open, a SHOULD elsewhere) of docs/spec.md.

The monitor (conformance/monitor/) checks every frame of every case. These cases drive each
kind of stream a target offers (text, forced function call, reasoning summary, several items,
refusal, truncation, two responses on one socket), listen for stray events after the terminal
one, and state the monitor's verdict on the grammar clauses explicitly. The monitor's rules are
cross-checked against an independent reading of §4.3 in tests/test_grammar_crosscheck.py.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, TURN_BUDGET, expect_monitor_clean, turn_budget
from conformance.client import HarnessError
from conformance.deadlines import quiet_period
from conformance.monitor import TERMINAL_STATUS, TERMINAL_TYPES
from conformance.schemas import get_schemas

# the grammar of every generating stream (§4.3 items 11-18; §3.2 shapes)
GRAMMAR = ("SCHEMA-SERVER-EVENT", "STREAM-CREATED-FIRST", "STREAM-IN-PROGRESS-FOLLOWS",
           "STREAM-ITEM-LIFECYCLE", "STREAM-INDEXES-IN-ORDER", "STREAM-ANNOUNCED-ITEM",
           "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT", "STREAM-ONE-TERMINAL",
           "STREAM-TERMINAL-LAST", "STREAM-TERMINAL-RESPONSE", "STREAM-INCOMPLETE-ITEM-LAST",
           "SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "LANE-DEFAULT-UNTAGGED",
           "STREAM-ITEM-DONE-BEFORE-TERMINAL")

CITY_TOOL = {
    "type": "function", "name": "record_city",
    "description": "Record the name of a city the user mentions.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
}
COUNTRY_TOOL = {
    "type": "function", "name": "record_country",
    "description": "Record the name of a country the user mentions.",
    "parameters": {"type": "object", "properties": {"country": {"type": "string"}},
                   "required": ["country"], "additionalProperties": False},
}


# --- helpers -----------------------------------------------------------------------------

def _quiet_period(target, conn, turn) -> float:
    """How long to listen for stray frames after a terminal event: a few of the response's
    largest gaps between frames, at most 2 s (conformance/deadlines.py)."""
    cap = 0.2 if target.is_embedded else min(2.0, target.turn_timeout / 10)
    return quiet_period(conn.frame_times(turn.request), cap)


def _started(turn, what: str):
    """The grammar needs a response that started; anything else cannot be judged here."""
    if not any(e.get("type") in ("response.created", "response.queued", "response.in_progress")
               for e in turn.events):
        raise HarnessError(f"{what}: no response started, so its stream cannot be checked ({turn.summary()})")
    return turn


def _is_grammar_event(e: dict) -> bool:
    """A known server event of a response's own stream: not an error, not an extension, and
    not a steer/inject event (those share the numbering and may follow the terminal, §3.5)."""
    t = e.get("type")
    return (isinstance(t, str) and t.startswith("response.") and get_schemas().is_known(t)
            and not t.startswith(("response.steer.", "response.inject.")))


def _check_quiet_after(expect, conn, target, turn) -> None:
    """Listen briefly after the terminal event: nothing of that response may follow it."""
    if turn.status not in TERMINAL_STATUS.values():
        return
    late = [o.message for o in conn.recv_frames(_quiet_period(target, conn, turn)) if o.message is not None]
    # nothing else is pending on the connection, so any response event now is a stray one
    stray = [m.get("type") for m in late if _is_grammar_event(m)]
    expect("STREAM-ONE-TERMINAL", not any(t in TERMINAL_TYPES for t in stray), stray,
           "a second terminal event arrived after the first")
    expect("STREAM-TERMINAL-LAST", not stray, stray,
           f"{len(stray)} event(s) of the response arrived after its terminal event")


def _check_all(expect, conn, target, turn, clauses=GRAMMAR) -> None:
    _check_quiet_after(expect, conn, target, turn)
    expect_monitor_clean(expect, conn, clauses)


def _item_types(turn) -> list:
    return [i.get("type") for i in turn.output if isinstance(i, dict)]


# --- cases -------------------------------------------------------------------------------

@pytest.mark.clause(*GRAMMAR, "EXT-UNKNOWN-TOLERATED")
@pytest.mark.max_requests(creates=1)
def test_text_stream(target, connect, expect, verdict):
    conn = connect()
    turn = _started(conn.turn(input=PROMPT, store=False, max_output_tokens=turn_budget(target)),
                    "text turn")
    _check_all(expect, conn, target, turn)
    # extensions are allowed (§3.1); they must not have broken the attribution of the stream
    ext = sorted({f.message for f in conn.findings if f.kind == "extension"})
    if ext:
        verdict.info("extensions seen: " + "; ".join(ext[:10]), "EXT-UNKNOWN-TOLERATED")
    expect("EXT-UNKNOWN-TOLERATED", turn.status in TERMINAL_STATUS.values(), turn,
           "the stream with extension events did not end in a terminal event of its response")


@pytest.mark.clause(*GRAMMAR, "FC-DONE-NAME")
@pytest.mark.max_requests(creates=1)
def test_function_call_stream(target, connect, expect):
    conn = connect()
    turn = _started(conn.turn(input="Record the city Paris with the tool.", tools=[CITY_TOOL],
                              tool_choice={"type": "function", "name": "record_city"}, store=False,
                              max_output_tokens=turn_budget(target)),
                    "forced function call turn")
    _check_all(expect, conn, target, turn)
    if turn.status == "completed" and "function_call" not in _item_types(turn):
        raise HarnessError("the forced function call turn produced no function_call item: "
                           "the arguments grammar was not exercised")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_reasoning_summary_stream(target, connect, expect, verdict):
    conn = connect()
    turn = conn.turn(input=PROMPT, reasoning={"summary": "auto"}, store=False,
                     max_output_tokens=turn_budget(target))
    if turn.status == "error":
        err = (turn.error or {}).get("error") or {}
        about = f"{err.get('param') or ''} {turn.error_message or ''}".lower()
        if "reasoning" in about:
            verdict.unsupported(f"the target rejected reasoning.summary for model {target.model}: "
                                f"{turn.error_code} {turn.error_message!r:.120}")
    _started(turn, "reasoning summary turn")
    _check_all(expect, conn, target, turn)
    summary_events = [e for e in turn.events if str(e.get("type", "")).startswith("response.reasoning_summary")]
    if not summary_events:
        if target.has("reference_engine"):
            raise HarnessError("the reference server streamed no reasoning summary for reasoning.summary=auto")
        verdict.info("the model streamed no reasoning summary; only the other events were checked",
                     "STREAM-ITEM-LIFECYCLE")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
@pytest.mark.requires("reference_engine",
                      reason="two messages in one response need the reference engine's [[multi]] trigger")
def test_two_message_stream(target, connect, expect):
    conn = connect()
    turn = _started(conn.turn(input=f"{PROMPT} [[multi]]", store=False, max_output_tokens=TURN_BUDGET),
                    "[[multi]] turn")
    _check_all(expect, conn, target, turn)
    if _item_types(turn) != ["message", "message"]:
        raise HarnessError(f"[[multi]] did not give two messages: {_item_types(turn)}")


@pytest.mark.clause(*GRAMMAR, "FC-DONE-NAME")
@pytest.mark.max_requests(creates=1)
def test_parallel_function_calls_stream(target, connect, expect, verdict):
    # tool_choice "required" forces at least one call whatever the model; two are welcome
    conn = connect()
    turn = _started(conn.turn(input="Record the city Paris and the country France with the tools. [[parallel]]",
                              tools=[CITY_TOOL, COUNTRY_TOOL], tool_choice="required", parallel_tool_calls=True,
                              store=False, max_output_tokens=turn_budget(target)),
                    "parallel function calls turn")
    _check_all(expect, conn, target, turn)
    calls = _item_types(turn).count("function_call")
    if target.has("reference_engine") and turn.status == "completed" and calls != 2:
        raise HarnessError(f"[[parallel]] with two tools gave {calls} calls, expected 2")
    if calls < 2:
        verdict.info(f"{calls} function call item(s) in the response: a multi-item stream was not exercised",
                     "STREAM-INDEXES-IN-ORDER")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
@pytest.mark.requires("reference_engine",
                      reason="a refusal is not model-free; only the reference engine's [[refuse]] trigger is")
def test_refusal_stream(target, connect, expect):
    conn = connect()
    turn = _started(conn.turn(input=f"[[refuse]] {PROMPT}", store=False, max_output_tokens=TURN_BUDGET),
                    "[[refuse]] turn")
    _check_all(expect, conn, target, turn)
    if not any(e.get("type") == "response.refusal.done" for e in turn.events):
        raise HarnessError("[[refuse]] streamed no refusal")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_truncated_stream(target, connect, expect, verdict):
    conn = connect()
    turn = _started(conn.turn(input="Count from 1 to 200, separated by commas.", store=False, max_output_tokens=16),
                    "truncated turn")
    _check_all(expect, conn, target, turn)
    cut = [i for i in turn.output if isinstance(i, dict) and i.get("status") == "incomplete"]
    if turn.status != "incomplete" or not cut:
        if target.has("reference_engine"):
            raise HarnessError(f"the 16-token turn did not end with an incomplete item ({turn.summary()})")
        verdict.info(f"no item ended incomplete (status {turn.status}); STREAM-INCOMPLETE-ITEM-LAST held vacuously",
                     "STREAM-INCOMPLETE-ITEM-LAST")


@pytest.mark.clause("SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "STREAM-CREATED-FIRST",
                    "STREAM-TERMINAL-RESPONSE", "LANE-DEFAULT-UNTAGGED")
@pytest.mark.max_requests(creates=2)
def test_sequence_restarts_per_response(target, connect, expect):
    clauses = ("SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "STREAM-CREATED-FIRST",
               "STREAM-TERMINAL-RESPONSE", "LANE-DEFAULT-UNTAGGED")
    conn = connect()
    # the monitor numbers each response on its own: the second must restart at 0
    first = _started(conn.turn(input=PROMPT, store=False), "first turn")
    second = _started(conn.turn(input=PROMPT, store=False), "second turn")
    expect("STREAM-TERMINAL-RESPONSE", first.response_id != second.response_id, [first, second],
           "two responses on one connection share an id")
    expect_monitor_clean(expect, conn, clauses)


# --- nothing after the terminal event (§4.3 item 15a) ------------------------------------

_OPENERS = ("response.created", "response.queued")


def _trailers(messages: list) -> list[str]:
    """Frames that follow a terminal event before the next response opens and are neither an
    error nor a control event (§3.4: no number, no response): a private trailer such as
    ``response.done``. Read from the raw messages, independent of the monitor's attribution."""
    found, ended = [], False
    for message in messages:
        typ = message.get("type")
        if typ in TERMINAL_TYPES:
            ended = True
        elif typ in _OPENERS:  # a new response (a repeat of an old one is STREAM-TERMINAL-LAST's)
            ended = False
        elif ended and typ != "error" and ("sequence_number" in message or "response" in message
                                           or "response_id" in message):
            found.append(str(typ))
    return found


def _check_nothing_after_terminal(expect, conn, target, clause: str) -> None:
    """Two turns back to back (the second create sent as soon as the first ended), then a
    quiet period after the second: a private frame after either terminal event is a finding of
    that response, and the second turn's own events start with its response.created."""
    first = _started(conn.turn(input=PROMPT, store=False), "first turn")
    second = _started(conn.turn(input=PROMPT, store=False), "second turn")
    if second.status in TERMINAL_STATUS.values():
        conn.recv_frames(_quiet_period(target, conn, second))
    trailers = _trailers(conn.messages)
    expect(clause, not trailers, trailers,
           f"{len(trailers)} private frame(s) followed a terminal event: {', '.join(trailers[:4])}")
    borrowed = [e.get("type") for e in second.events
                if isinstance(e.get("response"), dict) and e["response"].get("id") == first.response_id]
    expect(clause, not borrowed and second.event_types[:1] in (["response.created"], ["response.queued"]),
           second, f"the second turn's events begin with {second.event_types[:2]} and include {borrowed} "
                   "of the first response")
    expect_monitor_clean(expect, conn, (clause,))


@pytest.mark.clause("STREAM-NOTHING-AFTER-TERMINAL")
@pytest.mark.max_requests(creates=2)
def test_nothing_after_terminal(target, connect, expect):
    """P-open: the Open Responses spec says no frame follows the terminal event (a MUST)."""
    _check_nothing_after_terminal(expect, connect(), target, "STREAM-NOTHING-AFTER-TERMINAL")


@pytest.mark.clause("STREAM-NO-TRAILING-FRAME")
@pytest.mark.max_requests(creates=2)
def test_no_trailing_frame(target, connect, expect):
    """The OpenAI profiles: a private trailer after the terminal event is a SHOULD finding."""
    _check_nothing_after_terminal(expect, connect(), target, "STREAM-NO-TRAILING-FRAME")
