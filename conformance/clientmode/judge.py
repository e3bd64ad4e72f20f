"""Judges a client from what a scenario recorded (sans-I/O): the client's frames and
connections as the reference server saw them, and its process's outcome, give one
``Judgement`` per client clause of the scenario (docs/spec.md §4.11, docs/clients.md).

``ok`` is None when the recording gave the clause nothing to check (the case then leaves it
NOT-REACHED rather than PASS). The checks are the rows of ``CHECKS``; those of lanes and
steering live in ``conformance.clientmode.lanes``, the reading of a recording they share
(``requests``, ``finished``) in ``conformance.clientmode.record``.
"""

from __future__ import annotations

import json
from typing import Callable

from conformance.clientmode import lanes, scenarios
from conformance.clientmode.record import TERMINAL, Connection, Direction, Judgement, Recording, Request, requests
from conformance.clientmode.record import finished as _finished
from conformance.clientmode.record import items_of as _items
from conformance.clientmode.record import process_outcome as _process
from conformance.clientmode.scenarios import Exit, Scenario

RETRY_ATTEMPTS_MAX = 10         # reconnect attempts after a close before the client gives up
RETRY_GAP_MIN_S = 0.1           # the least time between two reconnect attempts
HTTP_ONLY_CREATE_FIELDS = ("stream", "background")     # CLIENT-CREATE-NO-STREAM


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
        if event["type"] == "response.create" and scenarios.LANE_NAMES in scenario.all_clauses:
            # a create's lane name is CLIENT-LANE-NAMES' to judge where a scenario checks it
            issues = [issue for issue in issues if not str(issue).startswith("/stream_id:")]
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
            return Judgement(scenarios.KEY_IN_HEADER, False, f"upgrade {conn.index}: no 'Authorization: Bearer KEY' header")
    return Judgement(scenarios.KEY_IN_HEADER, True, f"{len(rec.connections)} upgrade(s), key in the header only")


def chain(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    pairs = [(a, b) for a, b in zip(reqs, reqs[1:]) if a.answer == "response.completed"]
    if not pairs:
        return Judgement(scenarios.CHAIN, None, "no request followed a completed response")
    for last, req in pairs:
        if req.create.get("previous_response_id") != last.response_id:
            return Judgement(scenarios.CHAIN, False, f"request {req.number}: previous_response_id "
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
    return Judgement(scenarios.NEW_INPUT_ONLY, True, f"{checked} continuation(s) with new input only; bytes per request: {sizes}")


def tool_output(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    pairs = [(a, b) for a, b in zip(reqs, reqs[1:]) if a.calls]
    if not pairs:
        return Judgement(scenarios.TOOL_OUTPUT, None, "no function call was followed by another request")
    for last, req in pairs:
        given = {i.get("call_id") for i in _items(req.create) if i.get("type") == "function_call_output"}
        missing = [c for c in last.calls if c not in given]
        if missing:
            return Judgement(scenarios.TOOL_OUTPUT, False, f"request {req.number} does not answer call(s) {', '.join(missing)}")
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
        return Judgement(scenarios.RETRIES_SPACED, False, f"{len(attempts)} reconnect attempt(s) and still trying at "
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
        return Judgement(scenarios.LARGE_FRAMES, False, f"{what}; the next request did not continue it on the same "
                                                f"connection (connection {big.connection.index} closed by "
                                                f"{big.connection.closed_by or '-'}, code {big.connection.close_code})")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.LARGE_FRAMES, passed, f"{what}; {why}")


def waits_for_slow(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """The request whose first event the stage delayed: between the create and that first event
    (both as the server saw them, so the client had certainly not seen the event yet) nothing
    may come from the client on that connection, the client may not close it, and no new
    connection may open."""
    slow = {n for n, act in scenario.acts.items() if act is scenarios.Act.SLOW_FIRST}
    req = next((r for r in reqs if r.number in slow), None)
    if req is None:
        return Judgement(scenarios.WAITS_FOR_SLOW, None, f"the client never sent request {min(slow, default=0)}")
    conn = req.connection
    after = conn.frames[conn.frames.index(req.frame) + 1:]
    first = next((f for f in after if f.direction is Direction.OUT), None)
    until = first.at if first is not None else float("inf")
    what = f"request {req.number} on connection {conn.index}"
    sent = [f for f in after if f.direction is Direction.IN and f.at < until]
    if sent:
        kind = (sent[0].event or {}).get("type") or "a frame"
        return Judgement(scenarios.WAITS_FOR_SLOW, False, f"{what}: {kind} sent {sent[0].at - req.frame.at:.2f} s after "
                                                  "the create, before the response's first event")
    if conn.closed_by == "client" and conn.closed is not None and conn.closed < until:
        return Judgement(scenarios.WAITS_FOR_SLOW, False, f"{what}: the client closed the connection "
                                                  f"{conn.closed - req.frame.at:.2f} s after the create, before "
                                                  "the response's first event")
    fresh = [c for c in rec.connections if req.frame.at < c.opened < until]
    if fresh:
        return Judgement(scenarios.WAITS_FOR_SLOW, False, f"{what}: connection {fresh[0].index} opened "
                                                  f"{fresh[0].opened - req.frame.at:.2f} s after the create, "
                                                  "before the response's first event")
    if first is None:
        return Judgement(scenarios.WAITS_FOR_SLOW, None, f"{what}: the response never began; {_process(rec)}")
    passed, why = _finished(rec, scenario, reqs)
    passed = passed and req.answer == "response.completed"
    return Judgement(scenarios.WAITS_FOR_SLOW, passed, f"{what} waited {first.at - req.frame.at:.2f} s for its first event "
                                           f"and ended {req.answer or 'without an answer'}; {why}")


def one_in_flight(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """Per connection and lane (``stream_id``; none is the default lane), a create the server
    received before it had sent the answer (terminal event or error) of every earlier create
    of that lane. Only a create that arrived before the answer went out counts: the client
    cannot have seen that answer, so no race can fail a sequential client."""
    followed = 0
    for conn in rec.connections:
        unanswered: dict = {}           # lane -> creates without an answer yet
        for frame in conn.frames:
            event = frame.event or {}
            etype, lane = event.get("type"), event.get("stream_id")
            if frame.direction is Direction.IN and etype == "response.create":
                if unanswered.get(lane, 0):
                    where = "the default lane" if lane is None else f"lane {lane!r}"
                    return Judgement(scenarios.ONE_IN_FLIGHT, False, f"connection {conn.index}, {where}: a response.create "
                                     f"arrived at {frame.at:g} s while {unanswered[lane]} earlier request(s) had "
                                     f"no terminal event or error yet ({_rejections(rec)})")
                followed += bool(unanswered.get(lane) is not None)
                unanswered[lane] = 1
            elif frame.direction is Direction.OUT and (etype in TERMINAL or etype == "error") and unanswered.get(lane):
                unanswered[lane] -= 1
    if not followed:
        return Judgement(scenarios.ONE_IN_FLIGHT, None, "no connection carried a second request")
    return Judgement(scenarios.ONE_IN_FLIGHT, True, f"{followed} request(s), each sent after the previous one's answer on "
                                            f"its connection ({_rejections(rec)})")


def _rejections(rec: Recording) -> str:
    busy = sum(1 for _, f in rec.frames(Direction.OUT) if (f.event or {}).get("type") == "error"
               and ((f.event or {}).get("error") or {}).get("code") == "response_already_in_flight")
    return f"{busy} busy rejection(s) sent"


def store_false(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.5 item 29, §4.6 item 37: a store=false response lives only in its connection's cache.
    A continuation naming one from another connection is refused whatever the timing; the first
    request on a new connection starts a new chain with the context (every function call the
    server made so far, or a compaction item)."""
    off = [r for r in reqs if r.create.get("store") is False]
    if not off:
        return Judgement(scenarios.STORE_FALSE, None, "no request with store=false (CONFORMANCE_CLIENT_STORE=false "
                                              "not followed?)")
    origin = {r.response_id: r for r in reqs if r.response_id}
    for req in off:
        previous = req.create.get("previous_response_id")
        source = origin.get(previous)
        if previous and (source is None or source.connection is not req.connection):
            where = f"connection {source.connection.index}" if source else "no connection of this run"
            return Judgement(scenarios.STORE_FALSE, False, f"request {req.number} on connection {req.connection.index} names "
                             f"the store=false response {previous} of {where}: that cache is gone")
    fresh = [r for r in off if r.connection.index > off[0].connection.index
             and r is next(q for q in reqs if q.connection is r.connection)]
    if not fresh:
        return Judgement(scenarios.STORE_FALSE, None, "no store=false request on a new connection")
    for req in fresh:
        made = {c for q in reqs if q.number < req.number for c in q.calls}
        items = _items(req.create)
        carried = {i.get("call_id") for i in items if i.get("type") == "function_call"}
        if made - carried and not any(i.get("type") == "compaction" for i in items):
            return Judgement(scenarios.STORE_FALSE, False, f"request {req.number} starts connection {req.connection.index} "
                             f"without the earlier context: function call(s) {', '.join(sorted(made - carried))} "
                             "missing")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.STORE_FALSE, passed, f"{len(fresh)} new connection(s) continued with the full context; {why}")


def ignores_abandoned(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.4 item 19a: a request overtaken by a later create of its lane (the client abandoned it)
    is still answered first; its response answers the abandoned request only. A later create
    that continues that response, or answers its function calls, read it as the next one's
    reply: the replies shifted. Which create a response answers is the server's own order, so
    timing cannot change the verdict."""
    abandoned = [r for r in reqs if r.overtaken_by is not None]
    if not abandoned:
        return Judgement(scenarios.IGNORES_ABANDONED, None, "the client abandoned no request (no create arrived before "
                                                    "the answer of the one before it)")
    owner = {r.response_id: r for r in abandoned if r.response_id}
    calls = {c: r for r in abandoned for c in r.calls}
    for req in reqs:
        previous = req.create.get("previous_response_id")
        if previous in owner and req.number > owner[previous].overtaken_by:
            gone = owner[previous]
            return Judgement(scenarios.IGNORES_ABANDONED, False, f"request {req.number} continues {previous}, the response "
                             f"of request {gone.number}, which the client abandoned when it sent request "
                             f"{gone.overtaken_by}: the abandoned response was read as a later request's reply")
        for item in _items(req.create):
            gone = calls.get(item.get("call_id")) if item.get("type") == "function_call_output" else None
            if gone is not None and req.number > gone.overtaken_by:
                return Judgement(scenarios.IGNORES_ABANDONED, False, f"request {req.number} answers call "
                                 f"{item.get('call_id')} of abandoned request {gone.number}'s response")
    passed, why = _finished(rec, scenario, reqs)
    shown = ", ".join(f"{r.number} (by {r.overtaken_by})" for r in abandoned)
    return Judgement(scenarios.IGNORES_ABANDONED, passed, f"abandoned request(s) {shown}; no later request took their "
                                              f"responses as its own; {why}")


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if isinstance(part, dict))


def _carried(create: dict) -> set:
    """What a create carries, by identity: function calls and their outputs by call_id, messages
    by role and text."""
    value = create.get("input")
    if isinstance(value, str):
        return {("message", "user", value)}
    out = set()
    for item in _items(create):
        kind = item.get("type") or "message"
        if kind in ("function_call", "function_call_output"):
            out.add((kind, item.get("call_id")))
        elif kind == "message":
            out.add(("message", item.get("role"), _text(item.get("content"))))
    return out


def no_lost_request(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """After the server closed a connection, the first request on the next one continues the last
    completed response (it names it, or starts a new chain carrying every function call so far)
    and carries the input that followed it: the outputs of its calls, and whatever the creates
    that got no answer on the closed connection carried. A send on the closed socket itself
    never reaches the server, or reaches it unanswered, depending on a race the client cannot
    see: either way the same request must follow, so the verdict does not depend on timing."""
    checked = []
    for conn in _closed_by_server(rec):
        first = next((r for r in reqs if r.connection is not conn and r.connection.index > conn.index), None)
        if first is None:
            continue            # no new request: CLIENT-RECONNECTS judges that
        before = [r for r in reqs if r.number < first.number]
        last = next((r for r in reversed(before) if r.answer == "response.completed"), None)
        lost = [r for r in before if r.connection is conn and not r.answer and (last is None or r.number > last.number)]
        need = set().union(*(_carried(r.create) for r in lost)) if lost else set()
        if last is not None:
            need |= {("function_call_output", c) for c in last.calls}
        previous = first.create.get("previous_response_id")
        where = f"request {first.number}, the first on connection {first.connection.index}"
        if previous:
            if last is None or previous != last.response_id:
                return Judgement(scenarios.NO_LOST_REQUEST, False, f"{where}, names {previous}; the last completed response "
                                 f"was {last.response_id if last else None}")
        else:
            need |= {("function_call", c) for r in before for c in r.calls}
        missing = need - _carried(first.create)
        if missing:
            shown = ", ".join(f"{kind} {' '.join(str(x)[:40] for x in rest)}" for kind, *rest in sorted(missing, key=str))
            return Judgement(scenarios.NO_LOST_REQUEST, False, f"{where}, lacks what followed the last completed response "
                             f"(request(s) {[r.number for r in lost] or 'none'} got no answer before the close): {shown}")
        checked.append(f"{first.number} ({len(lost)} unanswered before)")
    if not checked:
        return Judgement(scenarios.NO_LOST_REQUEST, None, "no request followed a connection the server closed")
    passed, why = _finished(rec, scenario, reqs)
    return Judgement(scenarios.NO_LOST_REQUEST, passed, f"request(s) {', '.join(checked)} carried on from the last completed "
                                            f"response; {why}")


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
    scenarios.WAITS_FOR_SLOW: waits_for_slow,
    scenarios.ONE_IN_FLIGHT: one_in_flight,
    scenarios.STORE_FALSE: store_false,
    scenarios.IGNORES_ABANDONED: ignores_abandoned,
    scenarios.NO_LOST_REQUEST: no_lost_request,
    **lanes.CHECKS,         # lanes and steering, for a client that claims them
}


def judge(recording: Recording, scenario: Scenario, clauses: tuple[str, ...] | None = None) -> list[Judgement]:
    """One judgement per clause of ``scenario`` (or of ``clauses``, some of them)."""
    reqs = requests(recording)
    return [CHECKS[clause](recording, scenario, reqs) for clause in scenario.all_clauses if clauses is None
            or clause in clauses]
