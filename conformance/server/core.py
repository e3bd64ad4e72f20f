"""One turn, transport-independent (spec §4.5 continuation, §4.7 warm-up, eviction).

``Core.execute`` resolves ``previous_response_id`` (connection cache first, then the store
for store=true ids unless ZDR), checks tool outputs, runs the engine, lays out the events
and updates the cache and the store *before* any event is sent, so that an id is usable as
soon as a client can see it.  A continuation that fails — an ``ApiError`` (4xx), a
``response.failed`` (5xx) or a safety block in mid-stream — evicts the id it referenced from
the connection cache when the parent is the latest response of the failing request's own
lane (a failed cross-lane fork keeps it, §4.4 item 23a).  On a socket (``websocket=True``)
the streaming variations of the settings apply (§4.3 item 16a).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from . import engine, stream
from .config import Settings
from .errors import ApiError, previous_not_found
from .state import ANY_LANE, ClosedCaches, ConnectionCache, Entry, IdFactory, ResponseStore, SharedStoreFalse
from .validate import check_input, invalid_type, missing


@dataclass(slots=True)
class Outcome:
    events: list  # numbered event dicts
    status: engine.TurnStatus
    response: dict  # the final response object


class Core:
    """Server-wide state and the turn pipeline shared by the WebSocket and HTTP paths."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flags = settings.flags
        self.ids = IdFactory()
        self.store = ResponseStore(None if settings.zdr else settings.store_path)
        self.shared_false = (SharedStoreFalse(any_owner=self.flags.tenant_continues_store_false)
                             if self.flags.store_false_shared_across_connections
                             or self.flags.tenant_continues_store_false else None)
        self.hydrates = settings.store_true_hydrates and not self.flags.no_hydration
        # only for the cache-survives-reconnect defect: closed connections' caches, per key
        self.closed_caches = ClosedCaches() if self.flags.cache_survives_reconnect else None
        # only for the pending-steer-survives-close defect: closed connections' queued steer input
        self.kept_steers: dict | None = {} if self.flags.pending_steer_survives_close else None

    # -- lookups -------------------------------------------------------------------------
    def resolve(self, response_id: str, owner: str, cache: ConnectionCache | None) -> tuple[Entry, bool]:
        """(entry, from_cache) or ApiError previous_response_not_found."""
        if cache is not None:
            entry = cache.get(response_id)
            if entry is not None and entry.owner == owner:
                return entry, True
        if self.closed_caches is not None:
            entry = self.closed_caches.get(response_id, owner)
            if entry is not None:
                return entry, True
        if self.hydrates and not (self.flags.store_true_not_cached and cache is not None
                                  and cache.made_here(response_id)):
            entry = self.store.get(response_id, owner, any_owner=self.flags.tenant_continues_store_true)
            if entry is not None:
                return entry, False
        if self.shared_false is not None:
            entry = self.shared_false.get(response_id, owner)
            if entry is not None:
                return entry, False
        refusal = previous_not_found(response_id, self.flags)
        if self.flags.tenant_refusal_quotes_context:
            foreign = self.store.get(response_id, owner, any_owner=True)
            if foreign is not None:     # the defect: the refusal quotes what the owner said
                refusal.message += f" It belongs to another project; it began: {json.dumps(foreign.context[:1])}"
        raise refusal

    def get_stored(self, response_id: str, owner: str) -> dict | None:
        if self.settings.zdr:
            return None
        entry = self.store.get(response_id, owner, any_owner=self.flags.tenant_get_across)
        return None if entry is None else entry.response

    # -- the turn ------------------------------------------------------------------------
    def execute(self, req, owner: str, cache: ConnectionCache | None, seq_start: int = 0,
                websocket: bool = False) -> Outcome:
        flags = self.flags
        settings = self.settings
        prev = req.previous_response_id
        carried: tuple = ()
        from_cache = False
        try:
            if prev is not None:
                entry, from_cache = self.resolve(prev, owner, cache)
                carried = () if flags.ignore_previous_response_id else entry.context
            elif flags.lane_reuse_continues and cache is not None and req.stream_id is not None:
                latest = cache.lanes().get(req.stream_id)  # the defect: the lane's latest is carried
                carried = latest.context if latest is not None else ()
            if not (flags.orphan_call_id_accepted or flags.validates_types_only):
                engine.check_tool_outputs(carried, req.input_items)
            warmup = not req.generate
            if warmup and flags.generate_false_ignored:
                req.generate = True
            gen = engine.generate(
                req, carried, new_id=self.ids.new, carried_cached=from_cache,
                count_history=not flags.usage_ignores_history,
                honour_forced=not flags.forced_tool_ignored,
                honour_max_output=not flags.max_output_tokens_ignored,
            )
            if gen.blocked_mid_stream is not None and not websocket:
                raise gen.blocked_mid_stream  # over HTTP the block comes before any output
        except ApiError as err:
            if err.code is None and settings.profile.error_code_required:
                err.code = "invalid_input"  # P-open: WebSocketErrorEvent needs a string code (§5.1)
            if prev is not None and err.evicts and cache is not None and self._evicts(req):
                cache.evict(prev, ANY_LANE if flags.fork_failure_evicts_parent else req.stream_id)
            raise
        if flags.incomplete_item_then_completed and gen.status is engine.TurnStatus.INCOMPLETE:
            gen.status, gen.incomplete_details = engine.TurnStatus.COMPLETED, None
        now = int(time.time())
        rid = self.ids.new("resp")
        echoed = None if flags.previous_id_not_echoed else prev
        started = stream.response_object(req, rid, now, echoed)
        final = stream.final_object(started, gen, now)
        events = stream.turn_events(started, final, gen, generate=req.generate)

        blocked = gen.blocked_mid_stream
        if blocked is not None:
            events = stream.blocked_mid_stream(events, blocked, flags)
        if gen.status is engine.TurnStatus.FAILED or blocked is not None:
            if prev is not None and cache is not None and self._evicts(req):
                cache.evict(prev, ANY_LANE if flags.fork_failure_evicts_parent else req.stream_id)
        else:
            inputs = () if (warmup and flags.warmup_drops_input) else tuple(req.input_items)
            outputs = () if flags.drops_previous_output else tuple(gen.output)
            entry = Entry(rid, owner, carried + inputs + outputs, final, req.store, req.stream_id)
            if cache is not None and not (warmup and flags.warmup_not_chainable):
                if flags.store_false_not_cached and not req.store:
                    cache.forget_lane(req.stream_id)
                elif flags.store_true_not_cached and req.store:
                    cache.forget_lane(req.stream_id, made_here=rid)
                else:
                    if flags.one_cache_slot:
                        cache.clear()  # the defect: one slot for every lane
                    elif flags.fork_takes_parent and prev is not None:
                        cache.evict(prev)  # the defect: the fork empties the parent's lane
                    cache.remember(req.stream_id, entry)
            if req.store:
                if not self.settings.zdr:
                    self.store.put(entry)
            elif self.shared_false is not None:
                self.shared_false.put(entry)

        if websocket and blocked is None and (settings.omit_setup_events or settings.terminal_output != "full"):
            events = stream.streaming_variations(events, settings.omit_setup_events, settings.terminal_output)
        if websocket and blocked is None and settings.control_events:
            events = stream.with_end_turn(events)  # the Codex backend's field (§3.6)
        if flags.rewrites_events and blocked is None:
            events = stream.apply_event_defects(events, flags)
        stream.number(events, seq_start, flags, req.stream_id)
        if flags.lane_terminal_untagged and events:
            events[-1].pop("stream_id", None)
        return Outcome(events, gen.status, final)

    def refusal_as_failed(self, req, err: ApiError, seq_start: int = 0) -> list[dict]:
        """``err`` as a response that fails at once (the not-found-as-response-failed defect)."""
        started = stream.response_object(req, self.ids.new("resp"), int(time.time()), req.previous_response_id)
        return stream.number(stream.refusal_as_failed(started, err.code, err.message), seq_start, self.flags,
                             req.stream_id)

    def _evicts(self, req) -> bool:
        flags = self.flags
        return not flags.no_eviction and not (flags.named_lane_no_eviction and req.stream_id is not None)

    # -- POST /responses/compact ---------------------------------------------------------
    def compact(self, body: dict, owner: str) -> dict:
        model = body.get("model")
        if model is None:
            raise missing("model")
        if not isinstance(model, str):
            raise invalid_type("model", "a string", model)
        raw = body.get("input")
        items = [] if raw is None else check_input(raw)
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise invalid_type("instructions", "a string", instructions)
        carried: tuple = ()
        prev = body.get("previous_response_id")
        if prev is not None:
            if not isinstance(prev, str):
                raise invalid_type("previous_response_id", "a string", prev)
            entry, _ = self.resolve(prev, owner, None)
            carried = entry.context
        context = list(carried) + list(items)
        output, in_tokens, out_tokens = engine.compact(instructions, context, self.ids.new,
                                                       drop_nonces=self.flags.compaction_drops_context,
                                                       items_as_given=self.flags.compact_items_as_given)
        return {
            "id": self.ids.new("cmp"),
            "object": "response" if self.flags.compact_wrong_object else "response.compaction",
            "created_at": int(time.time()),
            "output": output,
            "usage": {
                "input_tokens": in_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": out_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": in_tokens + out_tokens,
            },
        }
