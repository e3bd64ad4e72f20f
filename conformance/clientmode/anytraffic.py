"""Judges traffic that follows no scenario (sans-I/O): a client's own test command, or a
gateway's upstream side in the sandwich (docs/clients.md "A client's own tests", "Gateways").

Only the client clauses that hold for any traffic are judged here (``ANY_TRAFFIC``): frames,
the create's shape and fields, the key in the header, and, where a request continues a
response, the chain, the new input and the tool outputs (docs/spec.md §4.11 items 53-57).
Clauses that need a scenario's trigger (eviction, a close, an error, a large frame) or the
N-turn contract (one socket, finishing) are not judged: those runs leave them UNTESTED.

``excused(clause, frame)`` says that the part of a frame a clause reads was relayed as the
gateway's own client sent it (the suite's server cases send invalid frames and odd
continuations on purpose): that violation is not the gateway's, so the frame is neither a
violation nor evidence that the clause held. A client's own tests excuse nothing.
``new_chain(frame)`` (the sandwich only) says why a request without ``previous_response_id``
is a continuation the gateway's client sent, made into a new chain: a CLIENT-CONTINUES-CHAIN
violation no excuse takes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from conformance.clientmode import scenarios as scenario_table
from conformance.clientmode.judge import HTTP_ONLY_CREATE_FIELDS, TERMINAL, Judgement
from conformance.clientmode.record import Connection, Direction, Frame, Recording

ANY_TRAFFIC = (scenario_table.TEXT_JSON, scenario_table.CREATE_FLAT, scenario_table.CREATE_NO_STREAM,
               scenario_table.KEY_IN_HEADER, scenario_table.CHAIN, scenario_table.NEW_INPUT_ONLY,
               scenario_table.TOOL_OUTPUT)
SHOWN = 3           # violations named in one message

Excused = Callable[[str, Frame], bool]
NewChain = Callable[[Frame], "str | None"]     # the sandwich: why a request is a rewritten continuation


def _never(clause: str, frame: Frame) -> bool:
    return False


@dataclass
class Request:
    """One ``response.create`` and what answered it on its connection."""

    connection: Connection
    frame: Frame
    create: dict
    after: "Request | None"         # the request answered before it on the same connection
    answer: str = ""                # terminal event type, "error", or ""
    response_id: str | None = None
    calls: tuple = ()               # call_ids of the function calls of its response
    output: tuple = ()


@dataclass
class Tally:
    """Frames (or requests) a clause judged, the violations among them, the excused ones."""

    clause: str
    judged: int = 0
    excused: int = 0
    violations: list[str] = field(default_factory=list)

    def count(self, violation: str | None, frame: Frame, excused: Excused) -> None:
        if violation is not None and excused(self.clause, frame):
            self.excused += 1
        elif violation is not None:
            self.judged += 1
            self.violations.append(violation)
        else:
            self.judged += 1

    def judgement(self, what: str, none: str) -> Judgement:
        relayed = f"; {self.excused} relayed exactly as the gateway's client sent them" if self.excused else ""
        if self.violations:
            more = f" (and {len(self.violations) - SHOWN} more)" if len(self.violations) > SHOWN else ""
            return Judgement(self.clause, False, f"{len(self.violations)} of {self.judged} {what}: "
                             + "; ".join(self.violations[:SHOWN]) + more + relayed)
        if not self.judged:
            return Judgement(self.clause, None, none + relayed)
        return Judgement(self.clause, True, f"{self.judged} {what}, none violates it{relayed}")


def requests(recording: Recording) -> list[Request]:
    """The creates in time order, each with its answer and the request before it on its connection."""
    out: list[Request] = []
    open_on: dict[int, Request] = {}
    for conn, frame in recording.frames():
        event = frame.event or {}
        if frame.direction is Direction.IN:
            if event.get("type") == "response.create":
                req = Request(conn, frame, event, open_on.get(conn.index))
                out.append(req)
                open_on[conn.index] = req
            continue
        req = open_on.get(conn.index)
        if req is None or req.answer:
            continue
        etype = event.get("type")
        if etype == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            if error.get("code") != "websocket_connection_limit_reached":
                req.answer = "error"
        elif etype in TERMINAL:
            response = event.get("response") if isinstance(event.get("response"), dict) else {}
            req.answer, req.response_id = etype, response.get("id")
            req.output = tuple(i for i in response.get("output") or () if isinstance(i, dict))
            req.calls = tuple(i.get("call_id") for i in req.output if i.get("type") == "function_call")
    return out


def _where(req_or_conn: Request | Connection, frame: Frame) -> str:
    conn = req_or_conn.connection if isinstance(req_or_conn, Request) else req_or_conn
    return f"connection {conn.index} at {frame.at:g} s"


def _items(create: dict) -> list[dict]:
    value = create.get("input")
    return [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []


def text_json(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    from conformance.schemas import get_schemas
    schemas = get_schemas()
    tally = Tally(scenario_table.TEXT_JSON)
    for conn, frame in rec.frames(Direction.IN):
        event, problem = frame.event, None
        if not frame.text:
            problem = "a binary frame"
        elif event is None or not isinstance(event.get("type"), str):
            problem = f"not one JSON object with a string type: {frame.data[:120]!r}"
        elif schemas.direction(event["type"]) != "client":
            problem = f"{event['type']!r} is not a client event"
        elif issues := schemas.validate(event):
            problem = f"{event['type']} invalid: {issues[0]}"
        tally.count(problem and f"{_where(conn, frame)}: {problem}", frame, excused)
    return tally.judgement("client frame(s)", "the client sent no frame")


def create_flat(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    tally = Tally(scenario_table.CREATE_FLAT)
    for req in reqs:
        nested = isinstance(req.create.get("response"), dict)
        tally.count(f"{_where(req, req.frame)}: fields nested in a response object (the Realtime shape)"
                    if nested else None, req.frame, excused)
    return tally.judgement("response.create(s)", "no response.create")


def create_no_stream(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    tally = Tally(scenario_table.CREATE_NO_STREAM)
    for req in reqs:
        sent = [f"{name}: {json.dumps(req.create[name])}" for name in HTTP_ONLY_CREATE_FIELDS if name in req.create]
        tally.count(f"{_where(req, req.frame)}: the HTTP-only {', '.join(sent)}" if sent else None,
                    req.frame, excused)
    return tally.judgement("response.create(s)", "no response.create")


def key_in_header(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    """The key in a URL is a violation. An upgrade without it in the header was refused (401)
    and is not one: a test may send a wrong key on purpose. But some upgrade must carry it."""
    clause = scenario_table.KEY_IN_HEADER
    if not rec.connections:
        return Judgement(clause, None, "no upgrade")
    in_url = [c.index for c in rec.connections if c.key_in_url]
    if in_url:
        return Judgement(clause, False, f"the key is in the URL of upgrade(s) {', '.join(map(str, in_url[:10]))}")
    carried = sum(1 for c in rec.connections if c.key_in_header)
    if not carried:
        return Judgement(clause, False, f"none of {len(rec.connections)} upgrade(s) carried "
                                        "'Authorization: Bearer KEY' (each was refused with 401)")
    without = len(rec.connections) - carried
    return Judgement(clause, True, f"{carried} upgrade(s) with the key in the header, none in a URL"
                     + (f"; {without} without it, refused (401)" if without else ""))


def _continues_last(req: Request) -> bool:
    """A continuation right after a completed response on the same connection."""
    return bool(req.create.get("previous_response_id")) and req.after is not None \
        and req.after.answer == "response.completed"


def _no_new_chain(frame: Frame) -> str | None:
    return None


def chain(rec: Recording, reqs: list[Request], excused: Excused, new_chain: NewChain = _no_new_chain) -> Judgement:
    """A continuation right after a completed response names it; and, in the sandwich, no
    request without previous_response_id is a continuation of the gateway's client made into
    a new chain (``new_chain`` says which; a client's own tests have no such pairs)."""
    tally = Tally(scenario_table.CHAIN)
    fresh = 0
    for req in reqs:
        if not req.create.get("previous_response_id"):
            made = new_chain(req.frame)
            fresh += made is None
            if made is not None:        # never excused: the client's frame named a response
                tally.count(f"{_where(req, req.frame)}: {made}", req.frame, _never)
            continue
        if not _continues_last(req):
            continue
        named, last = req.create.get("previous_response_id"), req.after.response_id
        tally.count(None if named == last else f"{_where(req, req.frame)}: previous_response_id {named!r}, "
                    f"the last response on the connection was {last!r}", req.frame, excused)
    judgement = tally.judgement("continuation(s) checked", "no request continued a completed response on its "
                                "connection")
    if judgement.ok and new_chain is not _no_new_chain:
        return Judgement(judgement.clause, True, f"{tally.judged} continuation(s) right after a completed response "
                         f"on the same connection, each naming that response in previous_response_id; "
                         f"{fresh} request(s) without previous_response_id, none of them a continuation the "
                         "gateway's client sent made into a new chain" + _relayed_note(tally))
    if judgement.ok:
        return Judgement(judgement.clause, True, f"{tally.judged} continuation(s) right after a completed "
                         "response on the same connection, each naming that response in previous_response_id"
                         + _relayed_note(tally))
    return judgement


def _relayed_note(tally: Tally) -> str:
    return f"; {tally.excused} relayed exactly as the gateway's client sent them" if tally.excused else ""


def tool_output(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    tally = Tally(scenario_table.TOOL_OUTPUT)
    by_id = {r.response_id: r for r in reqs if r.response_id}
    for req in reqs:
        named = by_id.get(req.create.get("previous_response_id"))
        if named is None or not named.calls:
            continue
        given = {i.get("call_id") for i in _items(req.create) if i.get("type") == "function_call_output"}
        missing = [c for c in named.calls if c not in given]
        tally.count(f"{_where(req, req.frame)} does not answer call(s) {', '.join(map(str, missing))}"
                    if missing else None, req.frame, excused)
    return tally.judgement("continuation(s) of a response with function calls",
                           "no request continued a response with function calls")


def _assistant_key(content: object) -> str:
    return json.dumps(content, sort_keys=True)


def new_input_only(rec: Recording, reqs: list[Request], excused: Excused) -> Judgement:
    """A continuation resends history when it carries a function call the server made, an
    output already sent, or an assistant message the server sent (anywhere in the run)."""
    tally = Tally(scenario_table.NEW_INPUT_ONLY)
    seen_calls: set = set()
    answered: set = set()
    assistant: set = set()
    for req in reqs:
        if req.create.get("previous_response_id"):
            resent = None
            for item in _items(req.create):
                kind = item.get("type")
                if kind == "function_call" and item.get("call_id") in seen_calls:
                    resent = f"the server's function call {item.get('call_id')}"
                elif kind == "function_call_output" and item.get("call_id") in answered:
                    resent = f"the output of {item.get('call_id')} again"
                elif item.get("role") == "assistant" and _assistant_key(item.get("content")) in assistant:
                    resent = "an assistant message the server sent"
                if resent:
                    break
            tally.count(resent and f"{_where(req, req.frame)} ({req.frame.size} bytes) resends {resent}",
                        req.frame, excused)
        answered.update(i.get("call_id") for i in _items(req.create) if i.get("type") == "function_call_output")
        seen_calls.update(req.calls)
        for item in req.output:
            if item.get("type") == "message":
                content = [c for c in item.get("content") or () if isinstance(c, dict)]
                assistant.add(_assistant_key(item.get("content")))
                assistant.add(_assistant_key([{"type": "output_text", "text": c.get("text")} for c in content]))
    return tally.judgement("continuation(s)", "no continuation (no previous_response_id)")


CHECKS = {
    scenario_table.TEXT_JSON: text_json,
    scenario_table.CREATE_FLAT: create_flat,
    scenario_table.CREATE_NO_STREAM: create_no_stream,
    scenario_table.KEY_IN_HEADER: key_in_header,
    scenario_table.CHAIN: chain,
    scenario_table.NEW_INPUT_ONLY: new_input_only,
    scenario_table.TOOL_OUTPUT: tool_output,
}


def judge_any(recording: Recording, excused: Excused = _never,
              new_chain: NewChain = _no_new_chain) -> list[Judgement]:
    """One judgement per clause of ``ANY_TRAFFIC``; ``ok`` None: nothing to judge."""
    reqs = requests(recording)
    return [chain(recording, reqs, excused, new_chain) if clause == scenario_table.CHAIN
            else CHECKS[clause](recording, reqs, excused) for clause in ANY_TRAFFIC]
