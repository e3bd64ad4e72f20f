"""Attribution: which request a server frame answers, per lane, and the rules that then check
it (§4.3, §4.4, §4.9, §4.10 of docs/spec.md).

A *lane* is the create's ``stream_id`` (absent: the default lane); creates wait in a FIFO per
lane until answered. ``RULES`` below is the dispatch table: per event type its handler, the
clauses it (and the grammar step it calls) reports, and the rule in one sentence; a comment in
each handler names the steps it tries, in order. ``Attribution.handlers()`` builds the table
the ``StreamMonitor`` dispatches with.

Every attached event is also checked for its lane tag (``LANE-DEFAULT-UNTAGGED``,
``LANE-TAGGED``, §4.3 item 18). A mid-stream error ends its response (state ``done``, no
terminal type); a terminal event of it that follows is accepted, other events are
``STREAM-TERMINAL-LAST``. Steer and inject events may follow the terminal event. A steer's
automatic successor is a request of its own (``origin="steer"``), so request numbers may skip
values after a steer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from conformance.monitor.clauses import (
    EXT_UNKNOWN_TOLERATED, ERR_CODE_NESTED, FC_DONE_NAME, LANE_DEFAULT_UNTAGGED, LANE_TAGGED,
    PREVIOUS_ID_ECHOED, QUEUE_ONE_IN_FLIGHT, SEQ_FROM_ZERO_BY_ONE, SEQ_MONOTONIC, SEQ_PRESENT,
    STREAM_ANNOUNCED_ITEM, STREAM_CREATED_FIRST, STREAM_DELTAS_ADD_UP, STREAM_DONE_MATCHES_OUTPUT,
    STREAM_IN_PROGRESS_FOLLOWS, STREAM_INCOMPLETE_ITEM_LAST, STREAM_INDEXES_IN_ORDER,
    STREAM_ITEM_DONE_BEFORE_TERMINAL, STREAM_ITEM_LIFECYCLE, STREAM_ONE_TERMINAL, STREAM_TERMINAL_LAST,
    STREAM_TERMINAL_RESPONSE,
)
from conformance.monitor.events import (CONNECTION_LEVEL_CODES, DELTA_INFO, DONE_INFO, INDEX_EVENTS, INJECT_EVENTS,
                                        ITEM_EVENTS, PART_EVENTS, PLAIN_EVENTS, STEER_EVENTS, SUMMARY_PART_EVENTS,
                                        TERMINAL_STATUS, valid_lane_name)
from conformance.monitor.grammar import Item
from conformance.monitor.records import short
from conformance.monitor.requests import DONE, PENDING, REJECTED, STREAMING, Lane, Phase, Requests, RequestState


Handler = Callable[[dict, str], None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the dispatch table: ``events`` go to ``handler`` (an ``Attribution`` method),
    which reports ``clauses`` (itself or through the grammar step it calls)."""

    events: tuple[str, ...]
    handler: str
    clauses: tuple[str, ...]
    rule: str


# what every handler may also report for an event it attaches: its lane tag, its number, the
# response's in_progress due, and an event after the response ended
ATTACHED = (LANE_DEFAULT_UNTAGGED, LANE_TAGGED, SEQ_PRESENT, SEQ_MONOTONIC, SEQ_FROM_ZERO_BY_ONE,
            STREAM_IN_PROGRESS_FOLLOWS, STREAM_TERMINAL_LAST)
# the dispatch table, in order (a later row wins for a type two rows name); rows with no events
# are the fallbacks the StreamMonitor picks by the schemas' verdict on a type no row names
RULES: tuple[Rule, ...] = (
    Rule(("error",), "_h_error", (ERR_CODE_NESTED, LANE_TAGGED),
         "Ends the lane's live response when sequenced (or when no client event awaits an answer), "
         "else rejects the lane's oldest pending create, else any lane's, else is connection-level."),
    Rule(("response.queued",), "_h_queued", (STREAM_CREATED_FIRST, QUEUE_ONE_IN_FLIGHT),
         "Queues the request its id, the lane's oldest pending create or an expected steer successor "
         "names; after the start only right after a response.created with status queued."),
    Rule(("response.created",), "_h_created", (STREAM_CREATED_FIRST, QUEUE_ONE_IN_FLIGHT, PREVIOUS_ID_ECHOED),
         "Starts, once, the response of the lane's oldest pending create (or a steer successor, another "
         "lane's create, else an unsolicited request), one streaming per lane, previous id echoed."),
    Rule(("response.in_progress",), "_h_in_progress", (STREAM_CREATED_FIRST,),
         "Follows response.created in the response its id names, else the lane's newest streaming one."),
    Rule(("response.output_item.added",), "_h_item_added",
         (STREAM_ITEM_LIFECYCLE, STREAM_INDEXES_IN_ORDER, STREAM_INCOMPLETE_ITEM_LAST),
         "Announces an item of the lane's live response at the next output_index."),
    Rule(("response.output_item.done",), "_h_item_done",
         (STREAM_ITEM_LIFECYCLE, STREAM_ANNOUNCED_ITEM, STREAM_DONE_MATCHES_OUTPUT),
         "Closes an announced open item; its final form matches what streamed for it."),
    Rule((PART_EVENTS[0], SUMMARY_PART_EVENTS[0]), "_h_part_added",
         (STREAM_ANNOUNCED_ITEM, STREAM_ITEM_LIFECYCLE, STREAM_INDEXES_IN_ORDER),
         "Opens a part of an announced open item at the next index."),
    Rule((PART_EVENTS[1], SUMMARY_PART_EVENTS[1]), "_h_part_done",
         (STREAM_ANNOUNCED_ITEM, STREAM_ITEM_LIFECYCLE, STREAM_DONE_MATCHES_OUTPUT),
         "Closes an open part; its text is what its deltas added up to."),
    Rule(tuple(TERMINAL_STATUS), "_h_terminal",
         (STREAM_ONE_TERMINAL, STREAM_TERMINAL_RESPONSE, STREAM_ITEM_DONE_BEFORE_TERMINAL, STREAM_ITEM_LIFECYCLE,
          STREAM_INCOMPLETE_ITEM_LAST, STREAM_DONE_MATCHES_OUTPUT, PREVIOUS_ID_ECHOED),
         "Ends, once, the response its id names (else the lane's oldest streaming one) with a response "
         "object whose output is the items streamed."),
    Rule(tuple(DELTA_INFO), "_h_delta", (STREAM_ANNOUNCED_ITEM, STREAM_ITEM_LIFECYCLE),
         "Adds to an open part or value of an announced open item."),
    Rule(tuple(DONE_INFO), "_h_text_done",
         (STREAM_ANNOUNCED_ITEM, STREAM_ITEM_LIFECYCLE, STREAM_DELTAS_ADD_UP, FC_DONE_NAME),
         "Ends a text or arguments value: its deltas added up (a function call's with the item's name)."),
    Rule(ITEM_EVENTS, "_h_item_event", (STREAM_ANNOUNCED_ITEM,), "Names an announced open item by item_id."),
    Rule(INDEX_EVENTS, "_h_index_event", (STREAM_ANNOUNCED_ITEM,), "Names an announced item by output_index."),
    Rule(PLAIN_EVENTS, "_h_plain", (), "Belongs to the lane's live response."),
    Rule(STEER_EVENTS, "_h_steer", (),
         "Numbered with the response it names (else the lane's only live one); accepted expects its successor."),
    Rule(INJECT_EVENTS, "_h_inject", (), "Numbered with the response it names, else the lane's only live one."),
    Rule((), "generic_event", (STREAM_ANNOUNCED_ITEM,),
         "A type the schemas know and no row names: an item event, an index event, else a plain one."),
    Rule((), "extension_event", (EXT_UNKNOWN_TOLERATED,),
         "An extension (§3.1): a control event belongs to no response, another is numbered with the "
         "lane's only live one."),
)


class Attribution(Requests):
    """The rules of one connection: which request each event answers, and its checks (``RULES``)."""

    def handlers(self) -> dict[str, Handler]:
        """The dispatch table of ``RULES``: event type -> this connection's handler."""
        table: dict[str, Handler] = {}
        for row in RULES:
            handler = getattr(self, row.handler)
            for typ in row.events:
                table[typ] = handler
        return table

    # --- a request's life

    def _begin(self, rs: RequestState, rid: Any, first_type: str) -> None:
        """rs starts streaming (response.created, or an implicit start by another event)."""
        lane = self._lane(rs.lane)
        if rs.state == STREAMING:
            return
        if lane.streaming:
            other = lane.streaming[-1]
            self.add(QUEUE_ONE_IN_FLIGHT,
                      f"response {rid!r} started while {other.response_id!r} (request {other.index}) "
                      f"of the same lane was still streaming", rs)
        rs.state = STREAMING
        lane.streaming.append(rs)
        if type(rid) is str:
            rs.response_id = rid
            self._by_id.setdefault(rid, rs)
        rs.grammar.first_event(self.add, rs, first_type)

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
            rs.grammar.once_add(self.add, rs, "lane", LANE_DEFAULT_UNTAGGED,
                                f"{ev['type']} carries stream_id {short(sid)} but its create named no lane")
        else:
            rs.grammar.once_add(self.add, rs, "lane", LANE_TAGGED,
                                f"{ev['type']} carries stream_id {short(sid)}, expected {rs.lane!r}")

    def _attach_unsequenced(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self.frame.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)

    def _attach(self, rs: RequestState, ev: dict, typ: str) -> None:
        """A streaming event of the live response rs: its lane, then its grammar step."""
        rs.events.append(ev)
        self.frame.request = rs.index
        if ev.get("stream_id") != rs.lane:
            self._lane_check(rs, ev)
        rs.grammar.step(self._report, rs, ev, typ)

    def _after_end(self, rs: RequestState, ev: dict) -> None:
        rs.events.append(ev)
        self.frame.request = rs.index
        rs.grammar.once_add(self.add, rs, "after-end", STREAM_TERMINAL_LAST,
                            f"{ev['type']} arrived after the response ended ({rs.terminal_type or 'error event'})")

    def _check_previous(self, rs: RequestState, resp: dict, typ: str) -> None:
        if rs.origin == "unsolicited":
            return
        expected = rs.create.get("previous_response_id")
        got = resp.get("previous_response_id")
        if expected != got:
            rs.grammar.once_add(self.add, rs, "prev", PREVIOUS_ID_ECHOED,
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
            self.notes.append(f"frame {self.frame.index}: response.created {short(rid)} answers no create "
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
            self.add(STREAM_CREATED_FIRST, "response.queued after the response started", rs)
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
                self.add(STREAM_CREATED_FIRST, f"second response.created for {rid!r}", rs)
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
            self.frame.request = rs.index
            if rs.terminal_type is None and rs.error is not None:
                rs.terminal_type = typ  # error mid-stream, then its terminal event: accepted (once)
                if type(resp) is dict:
                    rs.response = resp
                rs.grammar.shared_number(self.add, rs, ev, typ)
            elif rs.state == DONE:
                self.add(STREAM_ONE_TERMINAL, f"{typ} is a second terminal event (first: {rs.terminal_type})", rs)
            else:
                self._after_end(rs, ev)
            return
        self._attach(rs, ev, typ)
        if type(resp) is not dict:  # a MUST under every profile (§4.3 items 15, 16a)
            self.add(STREAM_TERMINAL_RESPONSE, f"{typ} carries no response object", rs, pointer="/response")
            self._end(rs, DONE, typ)
            return
        rs.grammar.terminal(self.add, rs, typ, resp, rid)
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
            return g.announced_by_index(self.add, rs, typ, oi, it)
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
        return g.announced(self.add, rs, ev, typ, it, iid)

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
        iid = rs.grammar.item_added(self.add, rs, ev, self._item_owner)
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
        rs.grammar.item_done(self.add, rs, ev, iid, it)

    def _h_part_added(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is not None:
            rs.grammar.part_added(self.add, rs, ev, typ, it)

    def _h_part_done(self, ev: dict, typ: str) -> None:
        rs, it = self._routed_item(ev, typ)
        if it is not None:
            rs.grammar.part_done(self.add, rs, ev, typ, it)

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
            self.frame.request = rs.index
            g.seq = seq
            if ev.get("output_index") != it.output_index:
                g.once_add(self.add, rs, ("oi", iid), STREAM_ANNOUNCED_ITEM,
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
            rs.grammar.text_done(self.add, rs, ev, typ, it, DONE_INFO[typ])

    def _h_item_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ)

    def _h_index_event(self, ev: dict, typ: str) -> None:
        self._routed_item(ev, typ, by_index=True)

    def generic_event(self, ev: dict, typ: str) -> None:
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
            self.add(ERR_CODE_NESTED,
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
        self.frame.request = rs.index
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
        rs.grammar.shared_number(self.add, rs, ev, typ)
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

    def extension_event(self, ev: dict, typ: str) -> None:
        if "sequence_number" not in ev and "response_id" not in ev and "response" not in ev:
            return  # a control event (ping, codex.rate_limits, ...; §3.4): no response owns it
        sid = ev.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None and len(lane.streaming) == 1:
            rs = lane.streaming[0]
            rs.events.append(ev)
            self.frame.request = rs.index
            rs.grammar.shared_number(self.add, rs, ev, typ)

