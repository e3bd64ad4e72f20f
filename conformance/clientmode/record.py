"""What a client-mode scenario recorded: the client's connections and frames as the reference
server saw them, the server's answers, and the client process's outcome. Plain data, written
by ``conformance.clientmode.stage`` and ``runner``, read by ``judge`` and ``lanes``; it never
holds the key (only whether and where the client sent it).

Both judges read a recording the same way, so that reading lives here: ``requests`` pairs
each ``response.create`` with the answer the server gave it (docs/spec.md §4.4 items 19-20,
§4.9 item 47 for a steer's successor), ``finished`` says whether the client held its whole
conversation, and ``Judgement`` is what a check returns.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from conformance.clientmode.scenarios import Scenario

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
BUSY_CODE = "response_already_in_flight"   # the reference server's busy rejection (§4.4 item 19)
LIMIT_CODE = "websocket_connection_limit_reached"   # about the connection, not one request


class Direction(enum.StrEnum):
    IN = "in"       # client -> server
    OUT = "out"     # server -> client


@dataclass
class Frame:
    at: float                 # seconds since the scenario started
    direction: Direction
    text: bool                # a text frame (False: binary)
    data: str                 # the payload (binary frames decoded with replacement)
    size: int                 # bytes on the wire
    event: dict | None = None     # the parsed JSON object, when it is one


@dataclass
class Connection:
    index: int
    opened: float
    path: str
    key_in_header: bool       # Authorization: Bearer <the scenario's key>
    key_in_url: bool          # the key (or any part of it) in the path or query
    refused: int = 0          # HTTP status of a refused upgrade (0: accepted)
    closed: float | None = None
    closed_by: str = ""       # "server" or "client"
    close_code: int | None = None
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Process:
    """The client command's outcome."""

    returncode: int | None    # None: killed at the deadline
    duration_s: float
    timed_out: bool
    stdout: str = ""
    stderr: str = ""
    start_error: str = ""     # the command could not be started at all


@dataclass
class Recording:
    connections: list[Connection] = field(default_factory=list)
    dead_ids: list[str] = field(default_factory=list)     # ids answered previous_response_not_found
    limit_errors: list[str] = field(default_factory=list)  # when each lifetime error went out
    process: Process | None = None

    def frames(self, direction: Direction | None = None) -> list[tuple[Connection, Frame]]:
        """Every frame in time order with its connection."""
        rows = [(c, f) for c in self.connections for f in c.frames if direction is None or f.direction is direction]
        return sorted(rows, key=lambda row: row[1].at)


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
    overtaken_by: int | None = None     # a later create of its lane arrived before its answer
    answered_at: float | None = None    # when the server sent the answer
    steered: tuple[str, ...] = ()   # ids of its responses a steer ended, before the successor answering it

    @property
    def lane(self) -> str | None:
        return self.create.get("stream_id")


def _answer(req: Request, etype: str, event: dict, frame: Frame) -> None:
    response = event.get("response") or {}
    req.answer, req.response_id, req.answer_bytes, req.answered_at = etype, response.get("id"), frame.size, frame.at
    req.output = tuple(i for i in response.get("output") or () if isinstance(i, dict))
    req.calls = tuple(i.get("call_id") for i in req.output if i.get("type") == "function_call")


def requests(recording: Recording) -> list[Request]:
    """The creates in time order, each with the answer the server gave on its connection.

    Answers pair with creates as the reference server sends them: in order per connection and
    lane (``stream_id``), except a busy rejection, which answers the create that caused it
    (the latest). A create that arrives while earlier ones of its lane have no answer yet
    marks them ``overtaken`` (the client abandoned or pipelined them). A response the server
    starts with no create waiting is a steer's successor (§4.9 item 47): it answers the request
    whose response was steered, in place of the steered one's ending."""
    out: list[Request] = []
    waiting: dict[tuple, deque] = {}        # (connection, lane) -> creates without an answer
    last: dict[tuple, Request] = {}         # (connection, lane) -> the request answered last
    successor: dict[tuple, Request] = {}    # (connection, lane) -> the request a running successor answers
    for conn, frame in recording.frames():
        event = frame.event or {}
        etype = event.get("type")
        key = (conn.index, event.get("stream_id"))
        if frame.direction is Direction.IN:
            if etype == "response.create":
                req = Request(len(out) + 1, conn, frame, event)
                for earlier in waiting.get(key, ()):
                    earlier.overtaken_by = earlier.overtaken_by or req.number
                out.append(req)
                waiting.setdefault(key, deque()).append(req)
            continue
        queue = waiting.get(key)
        if not queue:
            if etype == "response.created" and key in last:
                successor[key] = last[key]
            elif etype in TERMINAL and key in successor:
                req = successor.pop(key)
                req.steered += (req.response_id,)
                _answer(req, etype, event, frame)
            continue
        if etype == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            code = error.get("code")
            if code == LIMIT_CODE:
                continue        # about the connection, not this request
            req = queue.pop() if code == BUSY_CODE else queue.popleft()
            req.answer, req.error_code, req.answered_at = "error", code, frame.at
            last[key] = req
        elif etype == "response.created":
            started = next((r for r in queue if r.response_id is None), None)
            if started is not None:
                started.response_id = (event.get("response") or {}).get("id")
        elif etype in TERMINAL:
            req = queue.popleft()
            _answer(req, etype, event, frame)
            last[key] = req
    return out


def items_of(create: dict) -> list:
    """The input items of a create (none when its input is a string)."""
    value = create.get("input")
    if isinstance(value, list):
        return [i for i in value if isinstance(i, dict)]
    return []


def process_outcome(recording: Recording) -> str:
    """How the client process ended, in words."""
    process = recording.process
    if process is None:
        return "the client did not run"
    if process.start_error:
        return process.start_error
    if process.timed_out:
        return f"still running at the deadline ({process.duration_s:g} s): killed"
    return f"exit {process.returncode} after {process.duration_s:g} s"


def completed_count(reqs: list[Request]) -> int:
    return sum(1 for r in reqs if r.answer == "response.completed")


def finished(recording: Recording, scenario: Scenario, reqs: list[Request]) -> tuple[bool, str]:
    """Did the client hold its whole conversation (every one of them, with lanes) and exit 0 in time?"""
    process = recording.process
    needed = scenario.turns * scenario.conversations
    passed = (process is not None and not process.timed_out and process.returncode == 0
              and completed_count(reqs) >= needed)
    return passed, f"{completed_count(reqs)} response(s) completed ({needed} needed); {process_outcome(recording)}"
