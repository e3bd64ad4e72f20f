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
    STREAM_ITEM_DONE_BEFORE_TERMINAL, STREAM_ITEM_LIFECYCLE, STREAM_NO_TRAILING_FRAME, STREAM_NOTHING_AFTER_TERMINAL,
    STREAM_ONE_TERMINAL, STREAM_TERMINAL_LAST, STREAM_TERMINAL_RESPONSE,
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
    Rule((), "extension_event", (EXT_UNKNOWN_TOLERATED, STREAM_NO_TRAILING_FRAME, STREAM_NOTHING_AFTER_TERMINAL),
         "An extension (§3.1): a control event belongs to no response, one naming a response that ended "
         "is a private trailer of it (§4.3 item 15a), another is numbered with the lane's only live one."),
)


class Attribution(Requests):
    """The rules of one connection: which request each event answers, and its checks (``RULES``)."""

    # the clause a private frame after a response's terminal event breaks (§4.3 item 15a): a
    # SHOULD, unless the profile forbids it outright (StreamMonitor's after_terminal)
    trailing_clause = STREAM_NO_TRAILING_FRAME
    FORBIDDEN, DISCOURAGED = "forbidden", "discouraged"

    def forbid_trailing(self, after_terminal: str) -> None:
        """``"forbidden"`` (P-open: STREAM-NOTHING-AFTER-TERMINAL, a MUST) or ``"discouraged"``."""
        if after_terminal not in (self.FORBIDDEN, self.DISCOURAGED):
            raise ValueError(f"after_terminal must be 'forbidden' or 'discouraged', got {after_terminal!r}")
        self.trailing_clause = (STREAM_NOTHING_AFTER_TERMINAL if after_terminal == self.FORBIDDEN
                                else STREAM_NO_TRAILING_FRAME)

    def handlers(self) -> dict[str, Handler]:
        """The dispatch table of ``RULES``: event type -> this connection's handler."""
        table: dict[str, Handler] = {}
        for row in RULES:
            handler = getattr(self, row.handler)
            for typ in row.events:
                table[typ] = handler
        return table

    # --- a request's life

    def _begin(self, request: RequestState, rid: Any, first_type: str) -> None:
        """``request`` starts streaming (response.created, or an implicit start by another event)."""
        lane = self._lane(request.lane)
        if request.state == STREAMING:
            return
        if lane.streaming:
            other = lane.streaming[-1]
            self.add(QUEUE_ONE_IN_FLIGHT,
                     f"response {rid!r} started while {other.response_id!r} (request {other.index}) "
                     f"of the same lane was still streaming", request)
        request.state = STREAMING
        lane.streaming.append(request)
        if type(rid) is str:
            request.response_id = rid
            self._by_id.setdefault(rid, request)
        request.grammar.first_event(self.add, request, first_type)

    def _implicit(self, event: dict, typ: str) -> RequestState | None:
        """An event of a response that has not started: take the pending create it answers."""
        request = self._take_pending(self._lane_key(event))
        if request is None:
            return None
        resp = event.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        self._begin(request, rid, typ)
        return request

    def _end(self, request: RequestState, state: Phase, terminal_type: str | None) -> None:
        lane = self._lane(request.lane)
        if request in lane.streaming:
            lane.streaming.remove(request)
        request.state = state
        request.terminal_type = terminal_type
        if state == DONE:
            lane.last = request
            if self.live:
                self.release(request)

    def _lane_check(self, request: RequestState, event: dict) -> None:
        sid = event.get("stream_id")
        if sid == request.lane:
            return
        if request.lane is None:
            request.grammar.once_add(self.add, request, "lane", LANE_DEFAULT_UNTAGGED,
                                     f"{event['type']} carries stream_id {short(sid)} but its create named no lane")
        else:
            request.grammar.once_add(self.add, request, "lane", LANE_TAGGED,
                                     f"{event['type']} carries stream_id {short(sid)}, expected {request.lane!r}")

    def _attach_unsequenced(self, request: RequestState, event: dict) -> None:
        request.events.append(event)
        self.frame.request = request.index
        if event.get("stream_id") != request.lane:
            self._lane_check(request, event)

    def _attach(self, request: RequestState, event: dict, typ: str) -> None:
        """A streaming event of the live response ``request``: its lane, then its grammar step."""
        request.events.append(event)
        self.frame.request = request.index
        if event.get("stream_id") != request.lane:
            self._lane_check(request, event)
        request.grammar.step(self._report, request, event, typ)

    def _after_end(self, request: RequestState, event: dict) -> None:
        request.events.append(event)
        self.frame.request = request.index
        request.grammar.once_add(self.add, request, "after-end", STREAM_TERMINAL_LAST,
                                 f"{event['type']} arrived after the response ended "
                                 f"({request.terminal_type or 'error event'})")

    def _check_previous(self, request: RequestState, resp: dict, typ: str) -> None:
        if request.origin == "unsolicited":
            return
        expected = request.create.get("previous_response_id")
        got = resp.get("previous_response_id")
        if expected != got:
            request.grammar.once_add(self.add, request, "prev", PREVIOUS_ID_ECHOED,
                                     f"{typ}: response.previous_response_id is {short(got)}, "
                                     f"the create sent {short(expected)}")

    # --- rule 1: response.created / response.queued

    def _new_response_owner(self, event: dict, rid: Any) -> RequestState | None:
        key = self._lane_key(event)
        lane = self._lanes.get(key)
        resp = event.get("response")
        prev = resp.get("previous_response_id") if type(resp) is dict else None
        if lane is not None:
            for request in lane.streaming:  # started implicitly, before any id was known
                if request.response_id is None:
                    return request
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
        request = self._take_pending(key)  # another lane's create: the lane clause reports the tag
        if request is not None:
            return request
        if event.get("type") == "response.created":  # answers nothing: still check its stream
            request = self._request({}, key if type(key) is str else None, origin="unsolicited")
            self.notes.append(f"frame {self.frame.index}: response.created {short(rid)} answers no create "
                              f"(request {request.index} opened as unsolicited)")
            return request
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

    def _h_queued(self, event: dict, typ: str) -> None:
        resp = event.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        request = self._by_id.get(rid) if type(rid) is str else None
        if request is None:
            request = self._new_response_owner(event, rid)
            if request is None:
                self.unattributed.append(event)
                return
            if type(rid) is str:
                request.response_id = rid
                self._by_id[rid] = request
        if request.state == DONE:
            self._after_end(request, event)
            return
        grammar = request.grammar
        if request.state == STREAMING and not grammar.queued and len(request.events) == 1 \
                and type(request.created) is dict \
                and request.created.get("status") == "queued":
            # right after a response.created with status queued: accepted (§4.3 item 11 update);
            # response.in_progress is still due next
            grammar.in_progress_due = False
            self._attach(request, event, typ)
            grammar.in_progress_due = grammar.queued = True
            return
        if request.state == STREAMING:
            self._attach(request, event, typ)
            self.add(STREAM_CREATED_FIRST, "response.queued after the response started", request)
            return
        grammar.queued = True
        self._attach(request, event, typ)

    def _h_created(self, event: dict, typ: str) -> None:
        resp = event.get("response")
        if type(resp) is not dict:
            resp = {}
        rid = resp.get("id")
        request = self._by_id.get(rid) if type(rid) is str else None
        if request is not None and request.state != PENDING:  # a known response: a repeat
            if request.state == DONE:
                self._after_end(request, event)
                return
            self._attach(request, event, typ)
            if request.created is not None:
                self.add(STREAM_CREATED_FIRST, f"second response.created for {rid!r}", request)
            else:
                request.created = resp
            return
        if request is None:
            request = self._new_response_owner(event, rid)
        if request.state == STREAMING:  # adopted an implicitly started response
            if type(rid) is str:
                request.response_id = rid
                self._by_id.setdefault(rid, request)
            request.created = resp
            self._attach(request, event, typ)
            return
        self._begin(request, rid, typ)
        request.created = resp
        self._attach(request, event, typ)
        request.grammar.in_progress_due = True
        self._check_previous(request, resp, typ)

    # --- rule 2: response.in_progress and terminal events

    def _lifecycle_owner(self, event: dict, typ: str) -> tuple[RequestState | None, Any]:
        resp = event.get("response")
        rid = resp.get("id") if type(resp) is dict else None
        request = self._by_id.get(rid) if type(rid) is str else None
        if request is not None:  # the id names it
            return request, rid
        key = self._lane_key(event)
        lane = self._lanes.get(key)
        if lane is not None and lane.streaming:
            if typ != "response.in_progress":  # a terminal event naming no known id ends the
                return lane.streaming[0], rid  # lane's oldest (responses of a lane end in order)
            return lane.streaming[-1], rid  # in_progress: the lane's newest streaming response
        request = self._sole_streaming() or self._implicit(event, typ)  # the only streaming one; a pending create
        if request is None:
            self._unattributed(event, f"{typ} for {short(rid)} outside any started response")
        return request, rid

    def _h_in_progress(self, event: dict, typ: str) -> None:
        request, _ = self._lifecycle_owner(event, typ)
        if request is None:
            return
        if request.state == PENDING:  # queued, then in_progress without created
            self._begin(request, request.response_id, typ)
        if request.state != STREAMING:
            self._after_end(request, event)
            return
        self._attach(request, event, typ)

    def _h_terminal(self, event: dict, typ: str) -> None:
        request, rid = self._lifecycle_owner(event, typ)
        if request is None:
            return
        resp = event.get("response")
        if request.state == PENDING:
            self._begin(request, rid, typ)
        if request.state != STREAMING:
            request.events.append(event)
            self.frame.request = request.index
            if request.terminal_type is None and request.error is not None:
                request.terminal_type = typ  # error mid-stream, then its terminal event: accepted (once)
                if type(resp) is dict and not self.live:
                    request.response = resp
                request.grammar.shared_number(self.add, request, event, typ)
            elif request.state == DONE:
                self.add(STREAM_ONE_TERMINAL,
                         f"{typ} is a second terminal event (first: {request.terminal_type})", request)
            else:
                self._after_end(request, event)
            return
        self._attach(request, event, typ)
        if type(resp) is not dict:  # a MUST under every profile (§4.3 items 15, 16a)
            self.add(STREAM_TERMINAL_RESPONSE, f"{typ} carries no response object", request, pointer="/response")
            self._end(request, DONE, typ)
            return
        request.grammar.terminal(self.add, request, typ, resp, rid)
        self._check_previous(request, resp, typ)
        request.response = resp
        self._end(request, DONE, typ)

    # --- rule 3: item, part and delta events

    def _route(self, event: dict) -> RequestState | None:
        sid = event.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None:
            streaming = lane.streaming
            if len(streaming) == 1:  # the lane's one streaming response
                return streaming[0]
        return self._route_slow(event, lane)

    def _route_slow(self, event: dict, lane: Lane | None) -> RequestState | None:
        iid = event.get("item_id")
        if iid is None and event["type"] == "response.output_item.done":
            item = event.get("item")
            iid = item.get("id") if type(item) is dict else None
        if type(iid) is str:
            owner = self._item_owner.get(iid)
            if owner is not None:  # the response that announced the item (any lane)
                return owner
        if lane is not None and lane.streaming:
            if len(lane.streaming) > 1:  # overlapping responses on one lane: follow the numbering
                seq = event.get("sequence_number")
                for request in lane.streaming:
                    if request.grammar.seq is not None and request.grammar.seq + 1 == seq:
                        return request
            return lane.streaming[-1]
        if lane is not None and lane.pending:  # the lane's pending create, started implicitly
            return self._implicit(event, event["type"])
        request = self._sole_streaming()
        if request is not None:
            return request
        if lane is not None and lane.last is not None:  # the lane's last one: TERMINAL-LAST follows
            return lane.last
        request = self._implicit(event, event["type"])  # any lane's pending create
        if request is None:
            self._unattributed(event, f"{event['type']} outside any response (no response.created before it)")
        return request

    def _misrouted(self, request: RequestState, event: dict, iid: Any) -> bool:
        """An item event whose item belongs to another, finished response: terminal-last."""
        if type(iid) is not str:
            return False
        owner = self._item_owner.get(iid)
        if owner is None or owner is request or owner.state == STREAMING:
            return False
        self._after_end(owner, event)
        return True

    def _routed_item(self, event: dict, typ: str, by_index: bool = False) -> tuple[RequestState | None, Item | None]:
        """Route an item/part event and find its announced, open item: ``(request, item)``, with
        item None when there is none (the finding is made) or the event has no response."""
        request = self._route(event)
        if request is None:
            return None, None
        return request, self._item_for(request, event, typ, by_index)

    def _item_for(self, request: RequestState, event: dict, typ: str, by_index: bool = False) -> Item | None:
        """Attach ``event`` to ``request`` and find the announced, open item it references."""
        grammar = request.grammar
        if by_index:
            output_index = event.get("output_index")
            item = grammar.by_output_index.get(output_index) if type(output_index) is int else None
            if request.state != STREAMING:
                self._after_end(request, event)
                return None
            self._attach(request, event, typ)
            return grammar.announced_by_index(self.add, request, typ, output_index, item)
        iid = event.get("item_id")
        if type(iid) is not str:
            iid = None
        item = grammar.items.get(iid)
        if (item is None or item.done) and self._misrouted(request, event, iid):
            return None
        if request.state != STREAMING:
            self._after_end(request, event)
            return None
        self._attach(request, event, typ)
        if item is None and iid is not None and self.lenient.setup_events:  # an implicit item: its owner
            self._item_owner.setdefault(iid, request)
        return grammar.announced(self.add, request, event, typ, item, iid)

    def _h_plain(self, event: dict, typ: str) -> RequestState | None:
        """An event without an item reference: attached to its live response, which is returned
        (None when it has none, or it ended: then STREAM-TERMINAL-LAST)."""
        request = self._route(event)
        if request is None:
            return None
        if request.state != STREAMING:
            self._after_end(request, event)
            return None
        self._attach(request, event, typ)
        return request

    def _h_item_added(self, event: dict, typ: str) -> None:
        request = self._h_plain(event, typ)
        if request is None:
            return
        iid = request.grammar.item_added(self.add, request, event, self._item_owner)
        if iid is not None:
            self._item_owner.setdefault(iid, request)

    def _h_item_done(self, event: dict, typ: str) -> None:
        request = self._route(event)
        if request is None:
            return
        iid, item = request.grammar.done_item(event)
        if (item is None or item.done) and self._misrouted(request, event, iid):
            return
        if request.state != STREAMING:
            self._after_end(request, event)
            return
        self._attach(request, event, typ)
        if item is None and iid is not None and self.lenient.setup_events:
            self._item_owner.setdefault(iid, request)
        request.grammar.item_done(self.add, request, event, iid, item)

    def _h_part_added(self, event: dict, typ: str) -> None:
        request, item = self._routed_item(event, typ)
        if item is not None:
            request.grammar.part_added(self.add, request, event, typ, item)

    def _h_part_done(self, event: dict, typ: str) -> None:
        request, item = self._routed_item(event, typ)
        if item is not None:
            request.grammar.part_done(self.add, request, event, typ, item)

    def _h_delta(self, event: dict, typ: str) -> None:
        # the hottest path: one live response on the lane, its announced open item, the next number
        sid = event.get("stream_id")
        lane = self._lanes.get(sid) if sid is None or type(sid) is str else None
        if lane is not None and len(lane.streaming) == 1:
            request = lane.streaming[0]
        else:
            request = self._route_slow(event, lane)
            if request is None:
                return
        grammar = request.grammar
        iid = event.get("item_id")
        item = grammar.items.get(iid) if type(iid) is str else None
        seq = event.get("sequence_number")
        last = grammar.seq
        if (item is not None and not item.done and request.state is STREAMING and not grammar.in_progress_due
                and sid == request.lane and last is not None and type(seq) is int and seq == last + 1):
            # what _attach and Grammar.announced would do for such an event, inline
            request.events.append(event)
            self.frame.request = request.index
            grammar.seq = seq
            if event.get("output_index") != item.output_index:
                grammar.once_add(self.add, request, ("oi", iid), STREAM_ANNOUNCED_ITEM,
                                 f"{typ} for item {iid!r} has output_index {short(event.get('output_index'))}, "
                                 f"the item was announced at {item.output_index}")
        else:
            item = self._item_for(request, event, typ)
            if item is None:
                return
        grammar.delta(self._report, request, event, typ, item, DELTA_INFO[typ])

    def _h_text_done(self, event: dict, typ: str) -> None:
        request, item = self._routed_item(event, typ)
        if item is not None:
            request.grammar.text_done(self.add, request, event, typ, item, DONE_INFO[typ])

    def _h_item_event(self, event: dict, typ: str) -> None:
        self._routed_item(event, typ)

    def _h_index_event(self, event: dict, typ: str) -> None:
        self._routed_item(event, typ, by_index=True)

    def generic_event(self, event: dict, typ: str) -> None:
        """A type the schemas know but the grammar has no rule for."""
        if "item_id" in event:
            self._h_item_event(event, typ)
        elif "output_index" in event:
            self._h_index_event(event, typ)
        else:
            self._h_plain(event, typ)

    # --- rule 4: error

    def _h_error(self, event: dict, typ: str) -> None:
        err = event.get("error")
        if type(err) is not dict and "code" in event:
            self.add(ERR_CODE_NESTED,
                     f"error event uses the flat legacy shape (top-level code {short(event.get('code'))}, "
                     "no error object)",
                     pointer="/code")
        key = self._lane_key(event)
        lane = self._lanes.get(key)
        has_seq = "sequence_number" in event
        request: RequestState | None = None
        if lane is not None and lane.streaming and (has_seq or not lane.pending):
            if has_seq or not self._unanswered_other:  # unsequenced: only when no client event awaits an answer
                request = lane.streaming[-1]
        if request is None and key is None and has_seq:  # untagged, sequenced: the only streaming response
            request = self._sole_streaming()
        if request is not None:  # mid-stream error of a live response; its terminal event may follow
            request.grammar.in_progress_due = False
            if has_seq:
                self._attach(request, event, typ)
            else:
                self._attach_unsequenced(request, event)
            request.error = event
            self._end(request, DONE, None)
            return
        request = self._take_pending(key)  # a rejection: the lane's oldest pending create, else any lane's
        if request is None:  # answers no create: connection-level
            if self._unanswered_other:
                self._unanswered_other -= 1
            self.connection_errors.append(event)
            return
        request.events.append(event)
        self.frame.request = request.index
        request.error = event
        request.state = REJECTED
        if self.live:
            self.release(request)
        sid = event.get("stream_id")
        if sid != request.lane:
            code = err.get("code") if type(err) is dict else event.get("code")
            exempt = sid is None and request.lane is not None and (  # §6 question 17
                not valid_lane_name(request.lane) or (type(code) is str and code in CONNECTION_LEVEL_CODES)
            )
            if not exempt:
                self._lane_check(request, event)

    # --- rule 5: steer and inject events

    def _side_event(self, rid: Any, event: dict, typ: str) -> RequestState | None:
        """A steer/inject event: attached to the response ``rid`` names (else the lane's only
        streaming one) and numbered with it; returns that response."""
        request = self._by_id.get(rid) if type(rid) is str else None
        if request is None:
            lane = self._lanes.get(self._lane_key(event))
            if lane is not None and len(lane.streaming) == 1:
                request = lane.streaming[0]
        if request is None:
            self.unattributed.append(event)
            return None
        self._attach_unsequenced(request, event)
        request.grammar.shared_number(self.add, request, event, typ)
        return request

    def _h_steer(self, event: dict, typ: str) -> None:
        if self._unanswered_other:
            self._unanswered_other -= 1
        steer = event.get("steer")
        if type(steer) is not dict:
            steer = {}
        request = self._side_event(steer.get("previous_response_id"), event, typ)
        if request is None:
            return
        lane = self._lane(request.lane)
        if typ == "response.steer.accepted":  # its successor is expected
            if request not in lane.steered:
                lane.steered.append(request)
        elif request in lane.steered and (typ == "response.steer.pending" or steer.get("id") is not None):
            lane.steered.remove(request)

    def _h_inject(self, event: dict, typ: str) -> None:
        self._side_event(event.get("response_id"), event, typ)

    # --- rule 6: extensions

    def _ended_owner(self, event: dict) -> RequestState | None:
        """The response that ended with a terminal event and that an extension event names (its
        ``response_id`` or ``response.id``); without an id, the lane's last one when nothing of the
        lane is streaming or waiting. None: the event is no trailer of a finished response."""
        resp = event.get("response")
        rid = event.get("response_id", resp.get("id") if type(resp) is dict else None)
        if type(rid) is str:
            request = self._by_id.get(rid)
        else:
            lane = self._lanes.get(self._lane_key(event))
            request = lane.last if lane is not None and not lane.streaming and not lane.pending else None
        if request is None or request.state != DONE or request.terminal_type is None:
            return None
        return request

    def extension_event(self, event: dict, typ: str) -> None:
        if "sequence_number" not in event and "response_id" not in event and "response" not in event:
            return  # a control event (ping, codex.rate_limits, ...; §3.4): no response owns it
        ended = self._ended_owner(event)
        if ended is not None:  # a private trailer (response.done, ...): it ends nothing, starts nothing
            ended.events.append(event)
            self.frame.request = ended.index
            ended.grammar.once_add(self.add, ended, "trailer", self.trailing_clause,
                                   f"{typ} arrived after the response ended ({ended.terminal_type}): a private "
                                   "trailing frame (only a new response's events, control events or an error "
                                   "may follow)")
            return
        sid = event.get("stream_id")
        lane = self._lanes.get(sid if sid is None or type(sid) is str else None)
        if lane is not None and len(lane.streaming) == 1:
            request = lane.streaming[0]
            request.events.append(event)
            self.frame.request = request.index
            request.grammar.shared_number(self.add, request, event, typ)

