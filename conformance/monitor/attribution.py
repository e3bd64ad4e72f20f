"""Attribution: which request a server frame answers, per lane (§4.4, §4.9, §4.10 of docs/spec.md).

A *lane* is the create's ``stream_id`` (absent: the default lane); creates wait in a FIFO per
lane until answered. Each rule tries its steps in order; a comment in the code names each step.

==== ======================== =============================================== ======================
rule events                   steps, in order                                 clauses it reports
==== ======================== =============================================== ======================
1    ``response.created``,    id seen; the lane's response started without an QUEUE-ONE-IN-FLIGHT,
     ``response.queued``      id; the steered response's successor (§4.9 item PREVIOUS-ID-ECHOED,
                              47); the lane's oldest pending create; an       STREAM-CREATED-FIRST
                              expected successor; any lane's oldest pending
                              (a mis-tag); else created opens an
                              "unsolicited" request (noted), queued is
                              unattributed
2    ``response.in_progress``, id seen; the lane's newest (in_progress) or    STREAM-CREATED-FIRST,
     terminal events          oldest (terminal) streaming response; the       STREAM-TERMINAL-RESPONSE
                              connection's only streaming one; a pending
                              create, started implicitly; else unattributed
3    item, part and delta     the lane's one streaming response; the owner of STREAM-CREATED-FIRST,
     events                   the announced ``item_id``; among the lane's     STREAM-TERMINAL-LAST
                              streaming ones the one whose next number it
                              carries, else the newest; the lane's pending
                              create, implicitly; the only streaming one; the
                              lane's last finished one; any lane's pending;
                              else unattributed
4    ``error``                the lane's live response when sequenced, or     LANE-TAGGED (unless
                              when nothing is pending and no other client     exempt, §6 question
                              event awaits an answer; untagged and sequenced: 17)
                              the only streaming response; else it rejects
                              the lane's oldest pending create, else any
                              lane's; else ``connection_errors``
5    ``response.steer.*``,    the response named; the lane's only streaming   SEQ-* (shared
     ``response.inject.*``    one; else unattributed                          numbering, §3.5)
6    extensions (§3.1)        control events (no ``sequence_number``, no      SEQ-*
                              response id, §3.4): none; else the lane's only
                              streaming one
==== ======================== =============================================== ======================

Every attached event is also checked for its lane tag (``LANE-DEFAULT-UNTAGGED``,
``LANE-TAGGED``, §4.3 item 18). A mid-stream error ends its response (state ``done``, no terminal type); a
terminal event of it that follows is accepted, other events are ``STREAM-TERMINAL-LAST``.
Steer and inject events may follow the terminal event. A steer's automatic successor is a
request of its own (``origin="steer"``), so request numbers may skip values after a steer.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conformance.monitor.clauses import (
    ERR_CODE_NESTED, LANE_DEFAULT_UNTAGGED, LANE_TAGGED, PREVIOUS_ID_ECHOED, QUEUE_ONE_IN_FLIGHT,
    STREAM_ANNOUNCED_ITEM, STREAM_CREATED_FIRST, STREAM_ONE_TERMINAL, STREAM_TERMINAL_LAST,
    STREAM_TERMINAL_RESPONSE,
)
from conformance.monitor.events import CONNECTION_LEVEL_CODES, DELTA_INFO, DONE_INFO, valid_lane_name
from conformance.monitor.grammar import STRICT, Grammar, Item, Leniency
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


class Lane:
    """The requests of one ``stream_id``."""

    __slots__ = ("pending", "streaming", "last", "steered")

    def __init__(self) -> None:
        self.pending: deque = deque()  # creates not answered yet, oldest first
        self.streaming: list = []
        self.last: RequestState | None = None  # the last response that ended
        self.steered: list = []  # responses with an accepted steer whose successor is expected


class Attribution:
    """The requests of one connection and the handlers that tie each event to one of them."""

    def __init__(self, lenient: Leniency = STRICT) -> None:
        self.lenient = lenient
        self.requests: list[RequestState] = []
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
        self._obs: Observed | None = None
        self._loose: list[Finding] = []  # findings of the current frame made before attribution
        self._report = self._add  # bound once: the grammar's finding sink on the hot paths

    # --- findings

    def _add(self, clause: str, message: str, rs: RequestState | None = None, kind: str = VIOLATION,
             pointer: str | None = None) -> Finding:
        obs = self._obs
        f = Finding(clause, message, kind, obs.index if obs is not None else None,
                    rs.response_id if rs is not None else None, pointer)
        self.findings.append(f)
        if obs is not None:
            obs.findings.append(f)
        if rs is not None:
            rs.findings.append(f)
        elif obs is not None:
            self._loose.append(f)
        return f

    def _request(self, create: dict, lane: str | None, origin: str = "create") -> RequestState:
        """A new request, numbered in order, with the profile's leniencies."""
        rs = RequestState(len(self.requests), create, lane, origin=origin, grammar=Grammar(self.lenient))
        self.requests.append(rs)
        return rs

    # --- lanes and pending creates

    def _lane(self, key: Any) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    @staticmethod
    def _lane_key(ev: dict) -> Any:
        sid = ev.get("stream_id")
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
        streaming = [rs for ln in self._lanes.values() for rs in ln.streaming]
        return streaming[0] if len(streaming) == 1 else None

    def _unattributed(self, ev: dict, message: str) -> None:
        """An event that belongs to no request; STREAM-CREATED-FIRST once per connection and type."""
        self.unattributed.append(ev)
        key = ("unattributed", ev["type"])
        if key not in self._once:
            self._once.add(key)
            self._add(STREAM_CREATED_FIRST, message)

    # --- a request's life

    def _begin(self, rs: RequestState, rid: Any, first_type: str) -> None:
        """rs starts streaming (response.created, or an implicit start by another event)."""
        lane = self._lane(rs.lane)
        if rs.state == STREAMING:
            return
        if lane.streaming:
            other = lane.streaming[-1]
            self._add(QUEUE_ONE_IN_FLIGHT,
                      f"response {rid!r} started while {other.response_id!r} (request {other.index}) "
                      f"of the same lane was still streaming", rs)
        rs.state = STREAMING
        lane.streaming.append(rs)
        if type(rid) is str:
            rs.response_id = rid
            self._by_id.setdefault(rid, rs)
        rs.grammar.first_event(self._add, rs, first_type)

    def _implicit(self, ev: dict, typ: str) -> RequestState | None:
        """An event of a response that has not started: take the pending create it answers."""
        rs = self._take_pending(self._lane_key(ev))
        if rs is None:
            return None
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        self._begin(rs, rid, typ)
        return rs

    def _end(self, rs: RequestState, state: Phase, terminal_type: str | None) -> None:
        lane = self._lane(rs.lane)
        if rs in lane.streaming:
            lane.streaming.remove(rs)
        rs.state = state
        rs.terminal_type = terminal_type
        if state == DONE:
            lane.last = rs

    def _lane_check(self, rs: RequestState, ev: dict) -> None:
        sid = ev.get("stream_id")
        if sid == rs.lane:
            return
        if rs.lane is None:
            rs.grammar.once_add(self._add, rs, "lane", LANE_DEFAULT_UNTAGGED,
                                f"{ev['type']} carries stream_id {short(sid)} but its create named no lane")
        else:
            rs.grammar.once_add(self._add, rs, "lane", LANE_TAGGED,
                                f"{ev['type']} carries stream_id {short(sid)}, expected {rs.lane!r}")

    def _attach_unsequenced(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self._obs.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)

    def _attach(self, rs: RequestState, ev: dict, typ: str) -> None:
        """A streaming event of the live response rs: its lane, then its grammar step."""
        rs.events.append(ev)
        self._obs.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)
        rs.grammar.step(self._report, rs, ev, typ)

    def _after_end(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self._obs.request = rs.index
        rs.grammar.once_add(self._add, rs, "after-end", STREAM_TERMINAL_LAST,
                            f"{ev['type']} arrived after the response ended ({rs.terminal_type or 'error event'})")

    def _check_previous(self, rs: RequestState, resp: dict, typ: str) -> None:
        if rs.origin == "unsolicited":
            return
        expected = rs.create.get("previous_response_id")
        got = resp.get("previous_response_id")
        if expected != got:
            rs.grammar.once_add(self._add, rs, "prev", PREVIOUS_ID_ECHOED,
                                f"{typ}: response.previous_response_id is {short(got)}, the create sent {short(expected)}")

    # --- rule 1: response.created / response.queued

    def _new_response_owner(self, ev: dict, rid: Any) -> RequestState | None:
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        resp = ev.get("response")
        prev = resp.get("previous_response_id") if type(resp) is dict else None
        if lane is not None:
            for rs in lane.streaming:  # started implicitly, before any id was known
                if rs.response_id is None:
                    return rs
            if lane.steered:  # the steered response's successor continues it (§4.9 item 47)
                for target in lane.steered:
                    if prev is not None and target.response_id == prev and not (
                        lane.pending and lane.pending[0].create.get("previous_response_id") == prev
                    ):
                        return self._successor(lane, target)
            if lane.pending:  # the lane's oldest pending create
                return lane.pending.popleft()
            if lane.steered:  # an expected steer successor
                return self._successor(lane, lane.steered[0])
        rs = self._take_pending(key)  # another lane's create: the lane clause reports the tag
        if rs is not None:
            return rs
        if ev.get("type") == "response.created":  # answers nothing: still check its stream
            rs = self._request({}, key if type(key) is str else None, origin="unsolicited")
            self.notes.append(f"frame {self._obs.index}: response.created {short(rid)} answers no create "
                              f"(request {rs.index} opened as unsolicited)")
            return rs
        return None

    def _successor(self, lane: Lane, target: RequestState) -> RequestState:
        lane.steered.remove(target)
        create: dict | None = None
        for i, steer in enumerate(self._steers_sent):
            if steer.get("previous_response_id") == target.response_id:
                create = self._steers_sent.pop(i)
                break
        if create is None:
            create = {"type": "response.steer", "previous_response_id": target.response_id}
        return self._request(create, target.lane, origin="steer")

    def _h_queued(self, ev: dict, typ: str) -> None:
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is None:
            rs = self._new_response_owner(ev, rid)
            if rs is None:
                self.unattributed.append(ev)
                return
            if type(rid) is str:
                rs.response_id = rid
                self._by_id[rid] = rs
        if rs.state == DONE:
            self._after_end(rs, ev)
            return
        g = rs.grammar
        if rs.state == STREAMING and not g.queued and len(rs.events) == 1 and type(rs.created) is dict \
                and rs.created.get("status") == "queued":
            # right after a response.created with status queued: accepted (§4.3 item 11 update);
            # response.in_progress is still due next
            g.in_progress_due = False
            self._attach(rs, ev, typ)
            g.in_progress_due = g.queued = True
            return
        if rs.state == STREAMING:
            self._attach(rs, ev, typ)
            self._add(STREAM_CREATED_FIRST, "response.queued after the response started", rs)
            return
        g.queued = True
        self._attach(rs, ev, typ)

    def _h_created(self, ev: dict, typ: str) -> None:
        resp = ev.get("response")
        if type(resp) is not dict:
            resp = {}
        rid = resp.get("id")
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is not None and rs.state != PENDING:  # a known response: a repeat
            if rs.state == DONE:
                self._after_end(rs, ev)
                return
            self._attach(rs, ev, typ)
            if rs.created is not None:
                self._add(STREAM_CREATED_FIRST, f"second response.created for {rid!r}", rs)
            else:
                rs.created = resp
            return
        if rs is None:
            rs = self._new_response_owner(ev, rid)
        if rs.state == STREAMING:  # adopted an implicitly started response
            if type(rid) is str:
                rs.response_id = rid
                self._by_id.setdefault(rid, rs)
            rs.created = resp
            self._attach(rs, ev, typ)
            return
        self._begin(rs, rid, typ)
        rs.created = resp
        self._attach(rs, ev, typ)
        rs.grammar.in_progress_due = True
        self._check_previous(rs, resp, typ)

    # --- rule 2: response.in_progress and terminal events

    def _lifecycle_owner(self, ev: dict, typ: str) -> tuple[RequestState | None, Any]:
        resp = ev.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is not None:  # the id names it
            return rs, rid
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        if lane is not None and lane.streaming:
            if typ != "response.in_progress":  # a terminal event naming no known id ends the
                return lane.streaming[0], rid  # lane's oldest (responses of a lane end in order)
            return lane.streaming[-1], rid  # in_progress: the lane's newest streaming response
        rs = self._sole_streaming() or self._implicit(ev, typ)  # the only streaming one; a pending create
        if rs is None:
            self._unattributed(ev, f"{typ} for {short(rid)} outside any started response")
        return rs, rid

    def _h_in_progress(self, ev: dict, typ: str) -> None:
        rs, _ = self._lifecycle_owner(ev, typ)
        if rs is None:
            return
        if rs.state == PENDING:  # queued, then in_progress without created
            self._begin(rs, rs.response_id, typ)
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)

    def _h_terminal(self, ev: dict, typ: str) -> None:
        rs, rid = self._lifecycle_owner(ev, typ)
        if rs is None:
            return
        resp = ev.get("response")
        if rs.state == PENDING:
            self._begin(rs, rid, typ)
        if rs.state != STREAMING:
            rs.events.append(ev)
            self._obs.request = rs.index
            if rs.terminal_type is None and rs.error is not None:
                rs.terminal_type = typ  # error mid-stream, then its terminal event: accepted (once)
                if type(resp) is dict:
                    rs.response = resp
                rs.grammar.shared_number(self._add, rs, ev, typ)
            elif rs.state == DONE:
                self._add(STREAM_ONE_TERMINAL, f"{typ} is a second terminal event (first: {rs.terminal_type})", rs)
            else:
                self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)
        if type(resp) is not dict:  # a MUST under every profile (§4.3 items 15, 16a)
            self._add(STREAM_TERMINAL_RESPONSE, f"{typ} carries no response object", rs, pointer="/response")
            self._end(rs, DONE, typ)
            return
        rs.grammar.terminal(self._add, rs, typ, resp, rid)
        self._check_previous(rs, resp, typ)
        rs.response = resp
        self._end(rs, DONE, typ)

    # --- rule 3: item, part and delta events

    def _route(self, ev: dict) -> RequestState | None:
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None:
            s = lane.streaming
            if len(s) == 1:  # the lane's one streaming response
                return s[0]
        return self._route_slow(ev, lane)

    def _route_slow(self, ev: dict, lane: Lane | None) -> RequestState | None:
        iid = ev.get("item_id")
        if iid is None and ev["type"] == "response.output_item.done":
            item = ev.get("item")
            iid = item.get("id") if type(item) is dict else None
        if type(iid) is str:
            owner = self._item_owner.get(iid)
            if owner is not None:  # the response that announced the item (any lane)
                return owner
        if lane is not None and lane.streaming:
            if len(lane.streaming) > 1:  # overlapping responses on one lane: follow the numbering
                seq = ev.get("sequence_number")
                for rs in lane.streaming:
                    if rs.grammar.seq is not None and rs.grammar.seq + 1 == seq:
                        return rs
            return lane.streaming[-1]
        if lane is not None and lane.pending:  # the lane's pending create, started implicitly
            return self._implicit(ev, ev["type"])
        rs = self._sole_streaming()
        if rs is not None:
            return rs
        if lane is not None and lane.last is not None:  # the lane's last one: TERMINAL-LAST follows
            return lane.last
        rs = self._implicit(ev, ev["type"])  # any lane's pending create
        if rs is None:
            self._unattributed(ev, f"{ev['type']} outside any response (no response.created before it)")
        return rs

    def _misrouted(self, rs: RequestState, ev: dict, iid: Any) -> bool:
        """An item event whose item belongs to another, finished response: terminal-last."""
        if type(iid) is not str:
            return False
        owner = self._item_owner.get(iid)
        if owner is None or owner is rs or owner.state == STREAMING:
            return False
        self._after_end(owner, ev)
        return True

    def _routed_item(self, ev: dict, typ: str, by_index: bool = False) -> tuple[RequestState | None, Item | None]:
        """Route an item/part event and find its announced, open item: ``(rs, item)``, with
        item None when there is none (the finding is made) or the event has no response."""
        rs = self._route(ev)
        if rs is None:
            return None, None
        return rs, self._item_for(rs, ev, typ, by_index)

    def _item_for(self, rs: RequestState, ev: dict, typ: str, by_index: bool = False) -> Item | None:
        """Attach ``ev`` to ``rs`` and find the announced, open item it references."""
        g = rs.grammar
        if by_index:
            oi = ev.get("output_index")
            it = g.by_output_index.get(oi) if type(oi) is int else None
            if rs.state != STREAMING:
                self._after_end(rs, ev)
                return None
            self._attach(rs, ev, typ)
            return g.announced_by_index(self._add, rs, typ, oi, it)
        iid = ev.get("item_id")
        if type(iid) is not str:
            iid = None
        it = g.items.get(iid)
        if (it is None or it.done) and self._misrouted(rs, ev, iid):
            return None
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return None
        self._attach(rs, ev, typ)
        if it is None and iid is not None and self.lenient.setup_events:  # an implicit item: its owner
            self._item_owner.setdefault(iid, rs)
        return g.announced(self._add, rs, ev, typ, it, iid)

    def _h_plain(self, ev: dict, typ: str) -> RequestState | None:
        """An event without an item reference: attached to its live response, which is returned
        (None when it has none, or it ended: then STREAM-TERMINAL-LAST)."""
        rs = self._route(ev)
        if rs is None:
            return None
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return None
        self._attach(rs, ev, typ)
        return rs

    def _h_item_added(self, ev: dict, typ: str) -> None:
        rs = self._h_plain(ev, typ)
        if rs is None:
            return
        iid = rs.grammar.item_added(self._add, rs, ev, self._item_owner)
        if iid is not None:
            self._item_owner.setdefault(iid, rs)

    def _h_item_done(self, ev: dict, typ: str) -> None:
        rs = self._route(ev)
        if rs is None:
            return
        iid, it = rs.grammar.done_item(ev)
        if (it is None or it.done) and self._misrouted(rs, ev, iid):
            return
        if rs.state != STREAMING:
            self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)
        if it is None and iid is not None and self.lenient.setup_events:
            self._item_owner.setdefault(iid, rs)
        rs.grammar.item_done(self._add, rs, ev, iid, it)

    def _h_part_added(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is not None:
            rs.grammar.part_added(self._add, rs, ev, typ, it)

    def _h_part_done(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is not None:
            rs.grammar.part_done(self._add, rs, ev, typ, it)

    def _h_delta(self, ev: dict, typ: str) -> None:
        # the hottest path: one live response on the lane, its announced open item, the next number
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid) if sid is None or type(sid) is str else None
        if lane is not None and len(lane.streaming) == 1:
            rs = lane.streaming[0]
        else:
            rs = self._route_slow(ev, lane)
            if rs is None:
                return
        g = rs.grammar
        iid = ev.get("item_id")
        it = g.items.get(iid) if type(iid) is str else None
        seq = ev.get("sequence_number")
        last = g.seq
        if (it is not None and not it.done and rs.state is STREAMING and not g.in_progress_due
                and sid == rs.lane and last is not None and type(seq) is int and seq == last + 1):
            # what _attach and Grammar.announced would do for such an event, inline
            rs.events.append(ev)
            self._obs.request = rs.index
            g.seq = seq
            if ev.get("output_index") != it.output_index:
                g.once_add(self._add, rs, ("oi", iid), STREAM_ANNOUNCED_ITEM,
                           f"{typ} for item {iid!r} has output_index {short(ev.get('output_index'))}, "
                           f"the item was announced at {it.output_index}")
        else:
            it = self._item_for(rs, ev, typ)
            if it is None:
                return
        g.delta(self._report, rs, ev, typ, it, DELTA_INFO[typ])

    def _h_text_done(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is not None:
            rs.grammar.text_done(self._add, rs, ev, typ, it, DONE_INFO[typ])

    def _h_item_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ)

    def _h_index_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ, by_index=True)

    def _h_generic(self, ev: dict, typ: str) -> None:
        """A type the schemas know but the grammar has no rule for."""
        if "item_id" in ev:
            self._h_item_event(ev, typ)
        elif "output_index" in ev:
            self._h_index_event(ev, typ)
        else:
            self._h_plain(ev, typ)

    # --- rule 4: error

    def _h_error(self, ev: dict, typ: str) -> None:
        err = ev.get("error")
        if type(err) is not dict and "code" in ev:
            self._add(ERR_CODE_NESTED,
                      f"error event uses the flat legacy shape (top-level code {short(ev.get('code'))}, no error object)",
                      pointer="/code")
        key = self._lane_key(ev)
        lane = self._lanes.get(key)
        has_seq = "sequence_number" in ev
        rs: RequestState | None = None
        if lane is not None and lane.streaming and (has_seq or not lane.pending):
            if has_seq or not self._unanswered_other:  # unsequenced: only when no client event awaits an answer
                rs = lane.streaming[-1]
        if rs is None and key is None and has_seq:  # untagged, sequenced: the only streaming response
            rs = self._sole_streaming()
        if rs is not None:  # mid-stream error of a live response; its terminal event may follow
            rs.grammar.in_progress_due = False
            if has_seq:
                self._attach(rs, ev, typ)
            else:
                self._attach_unsequenced(rs, ev)
            rs.error = ev
            self._end(rs, DONE, None)
            return
        rs = self._take_pending(key)  # a rejection: the lane's oldest pending create, else any lane's
        if rs is None:  # answers no create: connection-level
            if self._unanswered_other:
                self._unanswered_other -= 1
            self.connection_errors.append(ev)
            return
        rs.events.append(ev)
        self._obs.request = rs.index
        rs.error = ev
        rs.state = REJECTED
        sid = ev.get("stream_id")
        if sid != rs.lane:
            code = err.get("code") if type(err) is dict else ev.get("code")
            exempt = sid is None and rs.lane is not None and (  # §6 question 17
                not valid_lane_name(rs.lane) or (type(code) is str and code in CONNECTION_LEVEL_CODES)
            )
            if not exempt:
                self._lane_check(rs, ev)

    # --- rule 5: steer and inject events

    def _side_event(self, rid: Any, ev: dict, typ: str) -> RequestState | None:
        """A steer/inject event: attached to the response ``rid`` names (else the lane's only
        streaming one) and numbered with it; returns that response."""
        rs = self._by_id.get(rid) if type(rid) is str else None
        if rs is None:
            lane = self._lanes.get(self._lane_key(ev))
            if lane is not None and len(lane.streaming) == 1:
                rs = lane.streaming[0]
        if rs is None:
            self.unattributed.append(ev)
            return None
        self._attach_unsequenced(rs, ev)
        rs.grammar.shared_number(self._add, rs, ev, typ)
        return rs

    def _h_steer(self, ev: dict, typ: str) -> None:
        if self._unanswered_other:
            self._unanswered_other -= 1
        steer = ev.get("steer")
        if type(steer) is not dict:
            steer = {}
        rs = self._side_event(steer.get("previous_response_id"), ev, typ)
        if rs is None:
            return
        lane = self._lane(rs.lane)
        if typ == "response.steer.accepted":  # its successor is expected
            if rs not in lane.steered:
                lane.steered.append(rs)
        elif rs in lane.steered and (typ == "response.steer.pending" or steer.get("id") is not None):
            lane.steered.remove(rs)

    def _h_inject(self, ev: dict, typ: str) -> None:
        self._side_event(ev.get("response_id"), ev, typ)

    # --- rule 6: extensions

    def _h_extension_event(self, ev: dict, typ: str) -> None:
        if "sequence_number" not in ev and "response_id" not in ev and "response" not in ev:
            return  # a control event (ping, codex.rate_limits, ...; §3.4): no response owns it
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None and len(lane.streaming) == 1:
            rs = lane.streaming[0]
            rs.events.append(ev)
            self._obs.request = rs.index
            rs.grammar.shared_number(self._add, rs, ev, typ)

