"""Steering of one connection's responses (spec §4.9): the responses it has started, the
accepted steers waiting on them, and what happens to those steers when a response ends.

A ``response.steer`` naming a response that is streaming is answered with
``response.steer.accepted`` at once, numbered in the target's sequence.  The target stops at
its next safe boundary with ``response.incomplete`` (reason ``steered``), or finishes
normally when none is left; then its queued input either becomes an automatic successor (a
create continuing the target with the steer input and the target's settings, run next on its
lane: its ``response.created`` is the commit point) or, when the target stopped for tool
output, ``response.steer.pending`` follows and the input is prepended to the next create that
continues the target.  Failures are ``response.steer.failed``.

``Steering`` is a part of ``session.Session`` (one per connection); it sends its side events
itself and hands an automatic successor back to the session, which queues it on its lane.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from .engine import TurnStatus
from .stream import TERMINAL_TYPES, steered_terminal, streaming_variations
from .validate import validate_steer

MAX_STEERS = 4  # accepted steers waiting on one response (more: too_many_pending_steers)
ENDED_KEPT = 1024  # ended responses remembered per connection, to answer steers naming them


class LiveResponse:
    """A response this connection has started (steering state, §4.9): its lane, request,
    last sequence number sent, how many side events shifted its own numbering, the accepted
    steers ``(steer_id, items, original input)``, the shortened final response when a steer
    stopped it at a safe boundary, and, once ended, its status."""

    __slots__ = ("id", "lane", "req", "last_seq", "shift", "steers", "status", "steerable", "cut")

    def __init__(self, rid: str, req) -> None:
        self.id = rid
        self.lane = req.stream_id
        self.req = req
        self.last_seq = -1
        self.shift = 0
        self.steers: list = []
        self.status: str | None = None
        self.cut: dict | None = None  # the final response when a steer stopped it early
        body = req.body
        # not supported for conversation-bound or automatically compacted responses (§2.2)
        self.steerable = body.get("conversation") is None and body.get("context_management") is None


class Steering:
    """The steering state of one connection: responses streaming now (``live``), ended ones
    (to answer steers naming them), and steer input waiting for the explicit create that
    continues a response stopped for tool output (``pending``)."""

    def __init__(self, core, owner: str, cache, framer, transport) -> None:
        self.core = core
        self.owner = owner
        self.flags = core.flags
        self.settings = core.settings
        self.cache = cache
        self.framer = framer
        self.transport = transport
        self.live: dict[str, LiveResponse] = {}
        self.ended: OrderedDict[str, LiveResponse] = OrderedDict()
        self.pending: dict[str, list] = {}

    # -- a response's life -----------------------------------------------------------------
    def start(self, response_id: str, req) -> LiveResponse:
        """A response starts streaming; it may be steered until it ends."""
        live = self.live[response_id] = LiveResponse(response_id, req)
        return live

    def end(self, live: LiveResponse, outcome) -> None:
        """The response has stopped streaming: a steer-cut response replaces the full one."""
        if live.cut is not None:
            self.keep_steered(live, outcome.response)
            outcome.response, outcome.status = live.cut, TurnStatus.INCOMPLETE
        self._record_end(live, outcome)

    def prepend_pending(self, req) -> None:
        """The explicit create after ``response.steer.pending``: the queued input goes first
        (§4.9 item 48)."""
        kept = self.core.kept_steers
        if kept and req.previous_response_id in kept:  # the defect: another connection's steer input
            self.pending[req.previous_response_id] = kept.pop(req.previous_response_id)
        if self.pending and req.previous_response_id in self.pending:
            queued = self.pending.pop(req.previous_response_id)
            if not self.flags.steer_pending_input_dropped:
                req.input_items = queued + list(req.input_items)

    def forget(self) -> None:
        """The socket is gone: queued steering is connection-local (§4.9 item 50)."""
        if self.core.kept_steers is not None:
            self.core.kept_steers.update(self.pending)
        self.pending.clear()

    def cut(self, live: LiveResponse, events: list, offsets: list, boundary: int) -> tuple[list, list, int]:
        """Stop ``live`` at the safe ``boundary`` (§4.9 item 47): its events and send offsets
        up to there, then the steered terminal event."""
        term = steered_terminal(events, boundary)
        if self.flags.steered_reason_missing:
            term["response"]["incomplete_details"] = None
        live.cut = term["response"]
        if self.settings.terminal_output != "full":
            term = streaming_variations([term], False, self.settings.terminal_output)[0]
        return events[:boundary] + [term], offsets[:boundary + 1], boundary + 1

    def keep_steered(self, live: LiveResponse, full: dict) -> None:
        """The cut response replaces the full one in the cache and the store: its context
        holds only the items it sent."""
        final = live.cut
        entry = self.cache.get(live.id) or self.core.store.get(live.id, self.owner)
        if entry is None:
            return
        whole = len(full.get("output") or ())
        entry.context = entry.context[:len(entry.context) - whole] + tuple(final["output"])
        entry.response = final
        if entry.store and not self.settings.zdr:
            self.core.store.put(entry)

    @staticmethod
    def number(live: LiveResponse, batch: list) -> None:
        """Final sequence numbers of a batch of ``live``'s own events (after any side events)."""
        for event in batch:
            seq = event.get("sequence_number")
            if type(seq) is int:
                if live.shift:
                    seq += live.shift
                    event["sequence_number"] = seq
                live.last_seq = seq

    # -- response.steer ------------------------------------------------------------------
    def read(self, event: dict) -> tuple[str, list, object]:
        """``(target id, input items, the input as sent)`` of a ``response.steer``; raises
        ``ApiError`` for a malformed one (a connection-level error)."""
        if self.flags.steer_extra_fields_accepted:  # the defect: unknown fields are dropped, not refused
            event = {k: v for k, v in event.items() if k in ("type", "previous_response_id", "input")}
        target_id, items = validate_steer(event)
        return target_id, items, event["input"]

    async def answer(self, target_id: str, items: list, original) -> None:
        """Accept a well-formed steer, or say why it failed."""
        live = self.live.get(target_id)
        if live is None:
            ended = self.ended.get(target_id)
            if ended is not None and self.flags.steer_accepts_finished:
                await self.side_event(ended, {"type": "response.steer.accepted",
                                              "steer": {"id": self.core.ids.new("steer"),
                                                        "previous_response_id": target_id}})
            elif ended is None:
                code = "response_not_active" if self.flags.steer_unknown_wrong_code else "response_not_found"
                await self.failed(None, target_id, original, None, code,
                                  f"No active response with id '{target_id}' on this connection.")
            elif ended.status == "completed":
                await self.failed(ended, target_id, original, None, "response_already_completed",
                                  f"Response '{target_id}' has already completed.")
            else:
                await self.failed(ended, target_id, original, None, "response_not_active",
                                  f"Response '{target_id}' is no longer active ({ended.status}).")
            return
        if self.flags.steer_refused:
            await self.failed(live, target_id, original, None, "steering_not_supported",
                              "This model does not support steering.")
            return
        if not live.steerable and not self.flags.steer_compaction_accepted:
            await self.failed(live, target_id, original, None, "steering_not_supported",
                              "Responses bound to a conversation or using automatic compaction "
                              "cannot be steered.")
            return
        if len(live.steers) >= MAX_STEERS:
            await self.failed(live, target_id, original, None, "too_many_pending_steers",
                              f"Response '{target_id}' already has {MAX_STEERS} pending steers.")
            return
        steer_id = self.core.ids.new("steer")
        live.steers.append((steer_id, items, original))
        await self.side_event(live, {"type": "response.steer.accepted",
                                     "steer": {"id": steer_id, "previous_response_id": target_id}})

    async def side_event(self, live: LiveResponse | None, event: dict) -> None:
        """A steer event: the next number of its target's sequence (0 without a target),
        tagged with the target's lane."""
        if live is None:
            event["sequence_number"] = 0
        else:
            live.last_seq += 1
            if live.status is None:
                live.shift += 1  # the target's own later events move up by one
            event["sequence_number"] = live.last_seq
            if live.lane is not None:
                event["stream_id"] = live.lane
        data, binary = self.framer.frame(event)
        await self.transport.send(data, binary)

    async def failed(self, live: LiveResponse | None, target_id: str, original, steer_id: str | None,
                     code: str, message: str) -> None:
        steer = {"previous_response_id": target_id, "input": original}
        if self.flags.steer_failed_no_echo:
            del steer["input"]
        if steer_id is not None:
            steer["id"] = steer_id
        await self.side_event(live, {"type": "response.steer.failed", "steer": steer,
                                     "error": {"type": "invalid_request_error", "code": code,
                                               "message": message}})

    def _record_end(self, live: LiveResponse, outcome) -> None:
        self.live.pop(live.id, None)
        last = outcome.events[-1] if outcome.events else {}
        live.status = outcome.status.value if last.get("type") in TERMINAL_TYPES else "failed"
        self.ended[live.id] = live
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)

    async def after_steered(self, live: LiveResponse, outcome):
        """The steered response has ended: pending, a successor, or the steers fail.  Returns
        the automatic successor (a create for the session to run next on the target's lane),
        or None."""
        steers, live.steers = live.steers, []
        if live.status == "failed":
            for steer_id, _, original in steers:
                if self.flags.steer_failed_new_id:
                    steer_id = None
                await self.failed(live, live.id, original, steer_id, "successor_creation_failed",
                                  f"Response '{live.id}' failed, so no successor could be created.")
            return None
        calls = [it for it in outcome.response.get("output") or () if it.get("type") == "function_call"]
        items = [item for _, steer_items, _ in steers for item in steer_items]
        if calls:
            # stopped for client tool output: the input waits for the explicit create (§4.9 item 48)
            required = [{"type": "function_call_output", "call_id": c["call_id"], "name": c["name"]}
                        for c in calls]
            for steer_id, _, _ in steers:
                await self.side_event(live, {"type": "response.steer.pending",
                                             "steer": {"id": steer_id, "previous_response_id": live.id},
                                             "reason": "waiting_for_required_input",
                                             "required_input": required})
            self.pending.setdefault(live.id, []).extend(items)
            return None
        if self.flags.steer_no_successor:
            return None  # the defect: accepted steers vanish with their target
        # the automatic successor inherits the settings and continues with the queued input
        successor = copy.copy(live.req)
        successor.previous_response_id = live.id
        successor.input_items = [] if self.flags.steer_input_lost else items
        successor.generate = True
        return successor
