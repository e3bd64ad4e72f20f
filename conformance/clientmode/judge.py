"""Judges a client from what a scenario recorded (sans-I/O): the client's frames and
connections as the reference server saw them, and its process's outcome, give one
``Judgement`` per client clause of the scenario (docs/spec.md §4.11, docs/clients.md).

``ok`` is None when the recording gave the clause nothing to check (the case then leaves it
NOT-REACHED rather than PASS). The checks are the rows of ``CHECKS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from conformance.clientmode import scenarios
from conformance.clientmode.record import Connection, Direction, Frame, Recording
from conformance.clientmode.scenarios import Exit, Scenario

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
RETRY_ATTEMPTS_MAX = 10         # reconnect attempts after a close before the client gives up
RETRY_GAP_MIN_S = 0.1           # the least time between two reconnect attempts
HTTP_ONLY_CREATE_FIELDS = ("stream", "background")     # CLIENT-CREATE-NO-STREAM


@dataclass(frozen=True)
class Judgement:
    clause: str
    ok: bool | None             # None: nothing to check in this recording
    message: str = ""


@dataclass
class Request:
    """One ``response.create`` and what answered it on its connection."""

    number: int                 # 1-based, across connections
    connection: Connection
    frame: Frame
    create: dict
    answer: str = ""            # the terminal event type, "error", or "" (none before the next request)
    response_id: str | None = None
    calls: tuple[str, ...] = ()     # call_ids of the function calls of a completed response
    output: tuple[dict, ...] = ()
    error_code: str | None = None
    answer_bytes: int = 0       # size of the frame that ended it


def requests(recording: Recording) -> list[Request]:
    """The creates in time order, each with the answer the server gave on its connection."""
    out: list[Request] = []
    open_on: dict[int, Request] = {}        # connection index -> the request being answered
    for conn, frame in recording.frames():
        event = frame.event or {}
        if frame.direction is Direction.IN:
            if event.get("type") == "response.create":
                req = Request(len(out) + 1, conn, frame, event)
                out.append(req)
                open_on[conn.index] = req
            continue
        req = open_on.get(conn.index)
        if req is None or req.answer:
            continue
        etype = event.get("type")
        if etype == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            code = error.get("code")
            if code == "websocket_connection_limit_reached":
                continue        # about the connection, not this request
            req.answer, req.error_code = "error", code
        elif etype in TERMINAL:
            response = event.get("response") or {}
            req.answer, req.response_id, req.answer_bytes = etype, response.get("id"), frame.size
            output = tuple(i for i in response.get("output") or () if isinstance(i, dict))
            req.output = output
            req.calls = tuple(i.get("call_id") for i in output if i.get("type") == "function_call")
    return out


def _items(create: dict) -> list:
    value = create.get("input")
    if isinstance(value, list):
        return [i for i in value if isinstance(i, dict)]
    return []


def _process(recording: Recording) -> str:
    process = recording.process
    if process is None:
        return "the client did not run"
    if process.start_error:
        return process.start_error
    if process.timed_out:
        return f"still running at the deadline ({process.duration_s:g} s): killed"
    return f"exit {process.returncode} after {process.duration_s:g} s"


def _completed(reqs: list[Request]) -> int:
    return sum(1 for r in reqs if r.answer == "response.completed")


def _finished(recording: Recording, scenario: Scenario, reqs: list[Request]) -> tuple[bool, str]:
    """Did the client hold its whole conversation and exit 0 in time?"""
    process = recording.process
    passed = (process is not None and not process.timed_out and process.returncode == 0
              and _completed(reqs) >= scenario.turns)
    return passed, f"{_completed(reqs)}/{scenario.turns} turns completed; {_process(recording)}"


# --- one check per clause ------------------------------------------------------------------------

def text_json(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    from conformance.schemas import get_schemas
    schemas = get_schemas()
    frames = rec.frames(Direction.IN)
    if not frames:
        return Judgement(scenarios.TEXT_JSON, None, "the client sent no frame")
    for conn, frame in frames:
        where = f"connection {conn.index}, frame at {frame.at:g} s"
        if not frame.text:
            return Judgement(scenarios.TEXT_JSON, False, f"{where}: a binary frame")
        event = frame.event
        if event is None or not isinstance(event.get("type"), str):
            return Judgement(scenarios.TEXT_JSON, False, f"{where}: not one JSON object with a string type: "
                                                         f"{frame.data[:200]!r}")
        if schemas.direction(event["type"]) != "client":
            return Judgement(scenarios.TEXT_JSON, False, f"{where}: {event['type']!r} is not a client event")
        issues = schemas.validate(event)
        if issues:
            return Judgement(scenarios.TEXT_JSON, False, f"{where}: {event['type']} invalid: {issues[0]}")
    return Judgement(scenarios.TEXT_JSON, True, f"{len(frames)} frame(s), each a valid client event")


def create_flat(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    if not reqs:
        return Judgement(scenarios.CREATE_FLAT, None, "no response.create")
    for req in reqs:
        if isinstance(req.create.get("response"), dict):
            return Judgement(scenarios.CREATE_FLAT, False, f"request {req.number} nests its fields in a response "
                                                           "object (the Realtime shape), not at the top level")
    return Judgement(scenarios.CREATE_FLAT, True, f"{len(reqs)} flat create(s)")


def create_no_stream(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    if not reqs:
        return Judgement(scenarios.CREATE_NO_STREAM, None, "no response.create")
    for req in reqs:
        sent = [f"{name}: {json.dumps(req.create[name])}" for name in HTTP_ONLY_CREATE_FIELDS if name in req.create]
        if sent:
            return Judgement(scenarios.CREATE_NO_STREAM, False, f"request {req.number} carries the HTTP-only "
                                                                f"{', '.join(sent)}")
    return Judgement(scenarios.CREATE_NO_STREAM, True, f"{len(reqs)} create(s) without stream or background")


def key_in_header(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    if not rec.connections:
        return Judgement(scenarios.KEY_IN_HEADER, None, "no upgrade")
    for conn in rec.connections:
        if conn.key_in_url:
            return Judgement(scenarios.KEY_IN_HEADER, False, f"upgrade {conn.index}: the key is in the URL")
        if not conn.key_in_header:
            return Judgement(scenarios.KEY_IN_HEADER, False,
                             f"upgrade {conn.index}: no 'Authorization: Bearer KEY' header")
    return Judgement(scenarios.KEY_IN_HEADER, True, f"{len(rec.connections)} upgrade(s), key in the header only")


def chain(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    pairs = [(a, b) for a, b in zip(reqs, reqs[1:]) if a.answer == "response.completed"]
    if not pairs:
        return Judgement(scenarios.CHAIN, None, "no request followed a completed response")
    for last, req in pairs:
        if req.create.get("previous_response_id") != last.response_id:
            return Judgement(scenarios.CHAIN, False,
                             f"request {req.number}: previous_response_id "
                             f"{req.create.get('previous_response_id')!r}, the last response "
                             f"was {last.response_id!r}")
    return Judgement(scenarios.CHAIN, True, f"{len(pairs)} continuation(s), each naming the last response")


def new_input_only(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    sizes = [req.frame.size for req in reqs]
    seen_calls: set = set()         # call_ids the server sent
    answered: set = set()           # call_ids the client already answered
    assistant: set = set()          # texts of assistant messages the server sent
    checked = 0
    for req in reqs:
        if req.create.get("previous_response_id"):
            checked += 1
            for item in _items(req.create):
                kind = item.get("type")
                if kind == "function_call" and item.get("call_id") in seen_calls:
                    return Judgement(scenarios.NEW_INPUT_ONLY, False, f"request {req.number} resends the server's "
                                     f"function call {item.get('call_id')}; bytes per request: {sizes}")
                if kind == "function_call_output" and item.get("call_id") in answered:
                    return Judgement(scenarios.NEW_INPUT_ONLY, False, f"request {req.number} resends the output of "
                                     f"{item.get('call_id')}; bytes per request: {sizes}")
                if item.get("role") == "assistant" and json.dumps(item.get("content"), sort_keys=True) in assistant:
                    return Judgement(scenarios.NEW_INPUT_ONLY, False, f"request {req.number} resends an assistant "
                                     f"message; bytes per request: {sizes}")
        for item in _items(req.create):
            if item.get("type") == "function_call_output":
                answered.add(item.get("call_id"))
        seen_calls.update(req.calls)
        for item in req.output:
            if item.get("type") == "message":
                assistant.add(json.dumps([{"type": "output_text", "text": c.get("text")}
                                          for c in item.get("content") or () if isinstance(c, dict)],
                                         sort_keys=True))
                assistant.add(json.dumps(item.get("content"), sort_keys=True))
    if not checked:
        return Judgement(scenarios.NEW_INPUT_ONLY, None, "no continuation")
    return Judgement(scenarios.NEW_INPUT_ONLY, True,
                     f"{checked} continuation(s) with new input only; bytes per request: {sizes}")


def tool_output(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    pairs = [(a, b) for a, b in zip(reqs, reqs[1:]) if a.calls]
    if not pairs:
        return Judgement(scenarios.TOOL_OUTPUT, None, "no function call was followed by another request")
    for last, req in pairs:
        given = {i.get("call_id") for i in _items(req.create) if i.get("type") == "function_call_output"}
        missing = [c for c in last.calls if c not in given]
        if missing:
            return Judgement(scenarios.TOOL_OUTPUT, False,
                             f"request {req.number} does not answer call(s) {', '.join(missing)}")
    return Judgement(scenarios.TOOL_OUTPUT, True, f"{len(pairs)} tool call turn(s) answered")


def one_socket(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    if len(reqs) < 2:
        return Judgement(scenarios.ONE_SOCKET, None, "fewer than two requests")
    used = sorted({r.connection.index for r in reqs})
    return Judgement(scenarios.ONE_SOCKET, len(used) == 1, f"{len(reqs)} requests over {len(used)} connection(s) "
                     "that the server kept open")


def finishes(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.FINISHES, passed, why)


def eviction(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    dead = set(rec.dead_ids)
    if not dead:
        return Judgement(scenarios.EVICTION, None, "no previous_response_not_found was sent")
    first = next(r for r in reqs if r.create.get("previous_response_id") in dead)
    later = [r for r in reqs if r.number > first.number]
    repeated = [r.number for r in later if r.create.get("previous_response_id") in dead]
    if repeated:
        shown = ", ".join(map(str, repeated[:10])) + (f" and {len(repeated) - 10} more" if len(repeated) > 10 else "")
        return Judgement(scenarios.EVICTION, False, f"request(s) {shown} name the dead id again after "
                                                    "previous_response_not_found")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.EVICTION, passed, ("recovered without the dead id; " if later else "no request after "
                                                  "previous_response_not_found; ") + why)


def _closed_by_server(rec: Recording) -> list[Connection]:
    return [c for c in rec.connections if c.closed_by == "server" and not c.refused]


def reconnects(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    closed = _closed_by_server(rec)
    if not closed:
        return Judgement(scenarios.RECONNECTS, None, "the server closed no connection")
    after = [c for c in rec.connections if c.opened >= (closed[0].closed or 0) and not c.refused]
    if not after:
        return Judgement(scenarios.RECONNECTS, False, f"no new connection after the server closed connection "
                                                      f"{closed[0].index}; {_process(rec)}")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.RECONNECTS, passed, f"{len(after)} new connection(s) after the close; {why}")


def retries_spaced(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    closed = _closed_by_server(rec)
    if not closed:
        return Judgement(scenarios.RETRIES_SPACED, None, "the server closed no connection")
    attempts = [c.opened for c in rec.connections if c.index > closed[0].index]
    gaps = [round(b - a, 3) for a, b in zip(attempts, attempts[1:])]
    process = rec.process
    if process is None or process.timed_out:
        return Judgement(scenarios.RETRIES_SPACED, False,
                         f"{len(attempts)} reconnect attempt(s) and still trying at "
                         f"the deadline; {_process(rec)}")
    if len(attempts) > RETRY_ATTEMPTS_MAX:
        return Judgement(scenarios.RETRIES_SPACED, False, f"{len(attempts)} reconnect attempts (at most "
                                                          f"{RETRY_ATTEMPTS_MAX}); {_process(rec)}")
    if gaps and min(gaps) < RETRY_GAP_MIN_S:
        return Judgement(scenarios.RETRIES_SPACED, False, f"reconnect attempts {min(gaps):g} s apart (at least "
                                                          f"{RETRY_GAP_MIN_S:g} s); gaps {gaps[:10]}")
    return Judgement(scenarios.RETRIES_SPACED, True, f"{len(attempts)} reconnect attempt(s), gaps {gaps[:10]}; "
                                                     f"{_process(rec)}")


def _gives_up(clause: str, answers: tuple[str, ...], rec: Recording, reqs: list[Request]) -> Judgement:
    hit = next((r for r in reqs if r.answer in answers), None)
    if hit is None:
        return Judgement(clause, None, f"no request ended with {' or '.join(answers)}")
    process = rec.process
    what = f"request {hit.number} ended with {hit.answer}"
    if process is None or process.timed_out:
        return Judgement(clause, False, f"{what}; the client hung: {_process(rec)}")
    if process.returncode == 0:
        return Judgement(clause, False, f"{what}; the client exited 0 as if it had succeeded")
    return Judgement(clause, True, f"{what}; the caller saw it: {_process(rec)}")


def error_ends(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    return _gives_up(scenarios.ERROR_ENDS, ("error",), rec, reqs)


def failed_ends(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    return _gives_up(scenarios.FAILED_ENDS, ("response.failed", "response.incomplete"), rec, reqs)


def unknown_events(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    sent = sum(1 for _, f in rec.frames(Direction.OUT) if (f.event or {}).get("type") == "conformance.unknown_event")
    if not sent:
        return Judgement(scenarios.UNKNOWN_EVENTS, None, "no unknown event was sent")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.UNKNOWN_EVENTS, passed, f"{sent} unknown event(s) among the responses; {why}")


def large_frames(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    big = next((r for r in reqs if r.answer_bytes > 2**20), None)
    if big is None:
        return Judgement(scenarios.LARGE_FRAMES, None, "no frame over 1 MiB was sent")
    what = f"request {big.number} ended with a {big.answer_bytes}-byte {big.answer}"
    after = next((r for r in reqs if r.number == big.number + 1), None)
    # a client that read the frame continues from that response on the same socket; one that
    # could not read it lost the socket (1009) and the response with it
    if after is not None and (after.connection is not big.connection
                              or after.create.get("previous_response_id") != big.response_id):
        return Judgement(scenarios.LARGE_FRAMES, False,
                         f"{what}; the next request did not continue it on the same "
                         f"connection (connection {big.connection.index} closed by "
                         f"{big.connection.closed_by or '-'}, code {big.connection.close_code})")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.LARGE_FRAMES, passed, f"{what}; {why}")


Check = Callable[[Recording, Scenario, list], Judgement]
CHECKS: dict[str, Check] = {
    scenarios.TEXT_JSON: text_json,
    scenarios.CREATE_FLAT: create_flat,
    scenarios.CREATE_NO_STREAM: create_no_stream,
    scenarios.KEY_IN_HEADER: key_in_header,
    scenarios.CHAIN: chain,
    scenarios.NEW_INPUT_ONLY: new_input_only,
    scenarios.TOOL_OUTPUT: tool_output,
    scenarios.ONE_SOCKET: one_socket,
    scenarios.FINISHES: finishes,
    scenarios.EVICTION: eviction,
    scenarios.RECONNECTS: reconnects,
    scenarios.RETRIES_SPACED: retries_spaced,
    scenarios.ERROR_ENDS: error_ends,
    scenarios.FAILED_ENDS: failed_ends,
    scenarios.UNKNOWN_EVENTS: unknown_events,
    scenarios.LARGE_FRAMES: large_frames,
}


def judge(recording: Recording, scenario: Scenario) -> list[Judgement]:
    """One judgement per clause of ``scenario``."""
    reqs = requests(recording)
    return [CHECKS[clause](recording, scenario, reqs) for clause in scenario.all_clauses]
