"""A request of one connection, as the monitor tracks it: its ``Phase``, its ``RequestState``
(what it was sent and what answered it), the ``Lane`` (``stream_id``) whose FIFO it waits in,
and ``Requests``, the book of one connection's requests and findings that the rules of
``attribution`` write (§4.4, §4.10 of docs/spec.md)."""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conformance.monitor.clauses import STREAM_CREATED_FIRST
from conformance.monitor.grammar import STRICT, Grammar, Leniency
from conformance.monitor.records import VIOLATION, Finding, Observed, short


class Phase(enum.StrEnum):
    """Where a request is: waiting for an answer, streaming, ended, or rejected by an error."""

    PENDING = "pending"
    STREAMING = "streaming"
    DONE = "done"
    REJECTED = "rejected"


PENDING, STREAMING, DONE, REJECTED = Phase.PENDING, Phase.STREAMING, Phase.DONE, Phase.REJECTED


@dataclass(eq=False)
class RequestState:
    """One request (a ``response.create``, or a steer's automatic successor) and its outcome."""

    index: int
    create: dict
    lane: str | None
    events: list = field(default_factory=list)
    response_id: str | None = None
    response: dict | None = None
    error: dict | None = None
    state: Phase = PENDING
    terminal_type: str | None = None
    findings: list = field(default_factory=list)
    origin: str = "create"  # "create" | "steer" (automatic successor) | "unsolicited"
    created: dict | None = None  # the response object of response.created
    grammar: Grammar = field(default_factory=Grammar, repr=False)


class Tally:
    """A request's events under ``retain="live"``: counted, not kept. The rules read only how
    many a request has (its first, right after a queued ``response.created``), so a monitor
    that keeps none judges as one that keeps them all."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def append(self, event: Any) -> None:
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return f"Tally({self.count})"


# the create's fields a finished response keeps under retain="live" (the report's model names)
KEPT_CREATE_FIELDS = ("type", "model", "previous_response_id", "stream_id")
# retain="live": ended responses kept (released) so that later events of them are judged as
# theirs; older ones are forgotten, ENDED_KEPT at a time
ENDED_KEPT = 64


class Lane:
    """The requests of one ``stream_id``."""

    __slots__ = ("pending", "streaming", "last", "steered")

    def __init__(self) -> None:
        self.pending: deque = deque()  # creates not answered yet, oldest first
        self.streaming: list = []
        self.last: RequestState | None = None  # the last response that ended
        self.steered: list = []  # responses with an accepted steer whose successor is expected


class Requests:
    """The requests of one connection, their lanes, and the findings made about them."""

    RETAIN = ("all", "live")

    def __init__(self, lenient: Leniency = STRICT) -> None:
        self.lenient = lenient
        self.live = False  # retain="live": events counted, ended responses' bulk released
        self._ended: list[RequestState] = []  # retain="live": ended, not yet forgotten, oldest first
        self.requests: list[RequestState | None] = []  # None: forgotten (retain="live" only)
        self.findings: list[Finding] = []
        self.connection_errors: list[dict] = []
        self.notes: list[str] = []
        self.internal_errors: list[str] = []
        self.unattributed: list[dict] = []
        self._lanes: dict[Any, Lane] = {None: Lane()}
        self._by_id: dict[str, RequestState] = {}
        self._item_owner: dict[str, RequestState] = {}
        self._once: set = set()  # dedupe keys of findings of no request
        self._steers_sent: list[dict] = []
        self._unanswered_other = 0  # client events other than creates that await an answer
        self.frame: Observed | None = None
        self.loose: list[Finding] = []  # findings of the current frame made before attribution
        self._report = self.add  # bound once: the grammar's finding sink on the hot paths

    def retain(self, mode: str) -> None:
        """``"all"`` keeps every event and response object for the harness to read; ``"live"``
        (the proxy) keeps per request only what the rules still read once it ended, so a long
        session's memory grows by a small record per turn (ValueError for another value)."""
        if mode not in self.RETAIN:
            raise ValueError(f"retain must be 'all' or 'live', got {mode!r}")
        self.live = mode == "live"

    def release(self, request: RequestState) -> None:
        """``request`` ended (retain="live"): drop what no rule reads after the end, the
        response objects, the create's input and the text its deltas streamed."""
        request.response = request.created = None
        create = request.create
        request.create = {key: create[key] for key in KEPT_CREATE_FIELDS if key in create}
        for item in request.grammar.order:
            item.deltas.clear()
            item.done_values.clear()
        self._ended.append(request)
        if len(self._ended) >= 2 * ENDED_KEPT:
            self._forget()

    def clear(self) -> None:
        """Drop the whole book (requests, lanes, ids) once nobody reads it: its parts refer to
        one another through bound methods, so without this it waits for a full collection of
        the garbage collector instead of going at once."""
        self.requests.clear()
        self._ended.clear()
        self._lanes.clear()
        self._by_id.clear()
        self._item_owner.clear()
        self.frame = None

    def _forget(self) -> None:
        """retain="live": the ENDED_KEPT oldest ended requests leave the book (their slot in
        ``requests`` becomes None, their ids are no longer known), but never a lane's last
        response or one whose steer's successor is expected. An event naming a forgotten
        response is then judged as one naming an unknown response: still a finding, perhaps
        of another clause (docs/interfaces.md)."""
        lanes = self._lanes.values()
        needed = {id(lane.last) for lane in lanes} | {id(request) for lane in lanes for request in lane.steered}
        oldest, self._ended = self._ended[:ENDED_KEPT], self._ended[ENDED_KEPT:]
        gone = set()
        for request in oldest:
            if id(request) in needed:
                self._ended.append(request)
            elif self.requests[request.index] is request:
                self.requests[request.index] = None
                gone.add(id(request))
        if gone:  # one pass per ENDED_KEPT responses: constant time per response
            self._by_id = {rid: request for rid, request in self._by_id.items() if id(request) not in gone}
            self._item_owner = {iid: request for iid, request in self._item_owner.items() if id(request) not in gone}

    def sent(self, event: Any) -> int | None:
        """The client sent ``event``; returns the request number of a ``response.create``."""
        if type(event) is dict and event.get("type") == "response.create":
            sid = event.get("stream_id")
            lane = sid if type(sid) is str else None
            request = self._request(event, lane)
            self._lane(lane).pending.append(request)
            return request.index
        if type(event) is dict and event.get("type") == "response.steer":
            self._steers_sent.append(event)
        self._unanswered_other += 1
        return None

    def settle(self, frame: Observed, dedupe_keys: dict[int, tuple]) -> None:
        """Findings made before the frame was attributed (framing, schema) join its request.

        A schema issue (same event type, pointer and rule) is reported once per request, or
        once per connection for frames of no request, to keep reports small; ``dedupe_keys``
        maps such a finding's id to its key."""
        loose, self.loose = self.loose, []
        request = self.requests[frame.request] if frame.request is not None else None
        once = request.grammar.once if request is not None else self._once
        for finding in loose:
            key = dedupe_keys.pop(id(finding), None)
            if key is not None:
                if key in once:
                    self._drop(frame, finding)
                    continue
                once.add(key)
            if request is not None:
                if finding.response_id is None:
                    finding.response_id = request.response_id
                request.findings.append(finding)
        dedupe_keys.clear()

    def _drop(self, frame: Observed, finding: Finding) -> None:
        for found in (frame.findings, self.findings):
            for index in range(len(found) - 1, -1, -1):
                if found[index] is finding:
                    del found[index]
                    break

    # --- findings

    def add(self, clause: str, message: str, request: RequestState | None = None, kind: str = VIOLATION,
            pointer: str | None = None) -> Finding:
        obs = self.frame
        finding = Finding(clause, message, kind, obs.index if obs is not None else None,
                          request.response_id if request is not None else None, pointer)
        self.findings.append(finding)
        if obs is not None:
            obs.findings.append(finding)
        if request is not None:
            request.findings.append(finding)
        elif obs is not None:
            self.loose.append(finding)
        return finding

    def _request(self, create: dict, lane: str | None, origin: str = "create") -> RequestState:
        """A new request, numbered in order, with the profile's leniencies."""
        request = RequestState(len(self.requests), create, lane, origin=origin, grammar=Grammar(self.lenient))
        if self.live:
            request.events = Tally()
        self.requests.append(request)
        return request

    # --- lanes and pending creates

    def _lane(self, key: Any) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    @staticmethod
    def _lane_key(event: dict) -> Any:
        sid = event.get("stream_id")
        if sid is None or type(sid) is str:
            return sid
        return ("invalid", short(sid))

    def _take_pending(self, key: Any) -> RequestState | None:
        """The lane's oldest pending create, else the oldest of any lane."""
        lane = self._lanes.get(key)
        if lane is not None and lane.pending:
            return lane.pending.popleft()
        best: Lane | None = None
        for other in self._lanes.values():
            if other.pending and (best is None or other.pending[0].index < best.pending[0].index):
                best = other
        if best is not None:
            return best.pending.popleft()
        return None

    def _sole_streaming(self) -> RequestState | None:
        """The only streaming response of the connection (any lane); None when there are none or several."""
        streaming = [request for ln in self._lanes.values() for request in ln.streaming]
        return streaming[0] if len(streaming) == 1 else None

    def _unattributed(self, event: dict, message: str) -> None:
        """An event that belongs to no request; STREAM-CREATED-FIRST once per connection and type."""
        self.unattributed.append(event)
        key = ("unattributed", event["type"])
        if key not in self._once:
            self._once.add(key)
            self.add(STREAM_CREATED_FIRST, message)
