"""Named defects of the reference server: the one place each is documented.

A defect makes the server break exactly one behaviour, named after the clause of
``cases/clauses.toml`` it violates.  The kill matrix starts the server with one defect
at a time and proves that the suite notices.  ``resolve_flags`` turns the chosen names
into a frozen :class:`Flags` record once, at start-up, so that the hot path only reads
booleans.  ``Flags`` is derived from ``DEFECTS``: each defect is declared once, here.

Adding a defect is one entry in ``DEFECTS``: ``_d(name, clause, summary[, level][, profile]
[, rewrites=FRAMES|EVENTS][, also=((profile, clause, verdict), ...)])``; the server then reads ``flags.<name with '-' -> '_'>`` where
the behaviour breaks.  ``--list-defects``, ``--reference-defect`` and the kill matrix
(tests/test_kill_matrix.py) pick it up from here; tests/server/test_server_defects.py asks
for a direct check ``c_<name>`` of the broken behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

from ..vocabulary import FAIL, PASS


@dataclass(frozen=True)
class Defect:
    name: str
    clause: str
    summary: str
    level: str = "MUST"
    # the profile the kill matrix judges it under: a built-in name or a TOML file relative to
    # the repository ("" = the default); a defect of a profile fact is tolerated elsewhere
    profile: str = ""
    # FRAMES: rewrites frames on their way out; EVENTS: rewrites the event list of a turn
    rewrites: str = ""
    # more runs of the kill matrix: (profile, clause, expected verdict) where a profile judges the
    # same behaviour by another clause or level (a SHOULD here is a MUST under P-open; a shape
    # one profile refuses another allows: verdict PASS)
    also: tuple[tuple[str, str, str], ...] = ()

    @property
    def attribute(self) -> str:
        """Its ``Flags`` attribute: the name with '-' -> '_'."""
        return self.name.replace("-", "_")


FRAMES, EVENTS = "frames", "events"


def _d(name: str, clause: str, summary: str, level: str = "MUST", profile: str = "",
       rewrites: str = "", also: tuple[tuple[str, str, str], ...] = ()) -> tuple[str, Defect]:
    return name, Defect(name, clause, summary, level, profile, rewrites, also)


# P-open (docs/spec.md §5.1): fields the published Open Responses schema requires
P_OPEN_PROFILE = "open-responses"
P_OPEN_COMPACT_PROFILE = "tests/data/profiles/open-responses-compact.toml"  # P-open + compact endpoint


DEFECTS: dict[str, Defect] = dict(
    [
        _d("ignore-previous-response-id", "CONT-CONTEXT-CARRIED",
           "A continuation does not see the referenced response: previous input and output are not carried."),
        _d("reject-when-busy", "QUEUE-FIFO",
           "A response.create sent while a response is in flight is rejected with an error instead of queued."),
        _d("interleave-responses", "QUEUE-ONE-IN-FLIGHT",
           "Queued creates run concurrently, so the events of two responses interleave on the default lane."),
        _d("no-eviction", "EVICT-ON-FAILED-CONTINUATION",
           "A failed continuation leaves the id it referenced in the connection cache."),
        _d("store-false-shared-across-connections", "ZDR-OTHER-CONNECTION",
           "store=false responses are kept in a server-wide cache, so another connection can continue them."),
        _d("renamed-not-found-code", "CACHE-MISS-STORE-FALSE",
           "A cache miss is reported with code response_not_found instead of previous_response_not_found."),
        _d("not-found-status-404", "CACHE-MISS-STORE-FALSE",
           "previous_response_not_found is sent with status 404 instead of 400."),
        _d("flat-error-shape", "ERR-CODE-NESTED",
           "Error events use the legacy flat shape (code/message/param at top level, no error object)."),
        _d("sequence-per-connection", "SEQ-FROM-ZERO-BY-ONE",
           "sequence_number counts per connection: the second response does not start at 0.", "SHOULD",
           rewrites=EVENTS),
        _d("sequence-gaps", "SEQ-FROM-ZERO-BY-ONE",
           "sequence_number goes up by 2, leaving gaps.", "SHOULD", rewrites=EVENTS),
        _d("sequence-not-monotonic", "SEQ-MONOTONIC",
           "Two sequence numbers inside each generating response are swapped.", rewrites=EVENTS),
        _d("missing-terminal-event", "STREAM-ONE-TERMINAL",
           "The terminal event (response.completed/incomplete/failed) is never sent.", rewrites=EVENTS),
        _d("deltas-dont-add-up", "STREAM-DELTAS-ADD-UP",
           "One text delta is dropped, so the deltas do not add up to the .done text.", rewrites=EVENTS),
        _d("sse-framing", "WS-NO-SSE-FRAMING",
           "Frames are wrapped in SSE framing (event:/data: lines) instead of bare JSON.", rewrites=FRAMES),
        _d("binary-frames", "WS-TEXT-JSON-FRAMES",
           "Server events are sent as binary frames instead of text frames.", rewrites=FRAMES),
        _d("large-frames-truncated", "WS-LARGE-SERVER-FRAME",
           "Server frames over 1 MiB are cut at 1 MiB, as a relay with a 1 MiB message buffer does.",
           rewrites=FRAMES),
        _d("silent-after-handshake", "TURN-TEXT",
           "The upgrade succeeds but no frame is ever answered."),
        _d("create-never-answered", "CREATE-ANSWERED",
           "response.create frames get no answer at all (other client events are answered as usual)."),
        _d("closes-mid-response", "STREAM-ONE-TERMINAL",
           "After response.created and response.in_progress the server closes the socket (1000) "
           "without an error event or a terminal event."),
        _d("generate-false-ignored", "WARMUP-NO-OUTPUT",
           "generate:false is ignored: the warm-up generates output like a normal turn."),
        _d("warmup-not-chainable", "WARMUP-CHAINABLE",
           "A generate:false response is not cached, so chaining from it fails with previous_response_not_found."),
        _d("previous-id-not-echoed", "PREVIOUS-ID-ECHOED",
           "The response object carries previous_response_id null even on a continuation."),
        _d("never-expires", "LIFETIME-LIMIT-ERROR",
           "The connection lifetime limit is never enforced (no websocket_connection_limit_reached)."),
        _d("closes-after-error", "ERR-CONNECTION-USABLE",
           "The server closes the connection after every error event."),
        _d("background-accepted", "CREATE-BACKGROUND-REJECTED",
           "background:true is accepted and runs as a normal turn."),
        _d("requires-model-query", "WS-NO-QUERY-PARAM",
           "The upgrade is refused (400) unless the URL carries a ?model= query parameter."),
        _d("no-auth", "WS-AUTH-BEARER",
           "The upgrade is accepted without (or with an invalid) Authorization header."),
        _d("terminal-not-last", "STREAM-TERMINAL-LAST",
           "An output_item.done of the response is sent again after its terminal event.", rewrites=EVENTS),
        _d("output-mismatch", "STREAM-DONE-MATCHES-OUTPUT",
           "The terminal response.output holds a different text than the streamed .done events.", rewrites=EVENTS),
        _d("created-not-first", "STREAM-CREATED-FIRST",
           "response.in_progress is sent before response.created.", rewrites=EVENTS),
        _d("default-lane-tagged", "LANE-DEFAULT-UNTAGGED",
           "Default-lane events carry stream_id \"default\".", rewrites=FRAMES),
        _d("usage-ignores-history", "CONT-USAGE-COUNTS-CONTEXT",
           "usage.input_tokens counts only the new input and instructions, not the carried history.", "SHOULD"),
        _d("stream-true-rejected", "CREATE-STREAM-TOLERATED",
           "stream:true in a WebSocket response.create is rejected with an error.", "SHOULD"),
        _d("missing-created-response-fields", "SCHEMA-SERVER-EVENT",
           "The response object in lifecycle events lacks the schema-required field tools.", rewrites=EVENTS),
        _d("text-frames-not-json-object", "WS-TEXT-JSON-FRAMES",
           "Every response.in_progress event is sent as a JSON array wrapping the event.", rewrites=FRAMES),
        _d("no-in-progress", "STREAM-IN-PROGRESS-FOLLOWS",
           "response.in_progress is never sent: the first item follows response.created directly.", "SHOULD",
           rewrites=EVENTS),
        _d("part-never-closed", "STREAM-ITEM-LIFECYCLE",
           "content_part.done is never sent: output_item.done follows the .done of the text or refusal directly.",
           rewrites=EVENTS),
        _d("output-index-skips", "STREAM-INDEXES-IN-ORDER",
           "output_index starts at 1: the first item is announced (and streamed) at index 1, the next at 2.",
           rewrites=EVENTS),
        _d("delta-for-unannounced-item", "STREAM-ANNOUNCED-ITEM",
           "output_text.delta and output_text.done events carry an item_id that no output_item.added "
           "announced (the announced message itself is never streamed).", rewrites=EVENTS),
        _d("completed-without-usage", "STREAM-TERMINAL-RESPONSE",
           "The response in response.completed carries usage null.", rewrites=EVENTS),
        _d("incomplete-item-then-completed", "STREAM-INCOMPLETE-ITEM-LAST",
           "A message cut by max_output_tokens ends incomplete, but the response ends response.completed "
           "(status completed)."),
        _d("sequence-missing", "SEQ-PRESENT",
           "Delta events carry no sequence_number (the numbers of the other events are unchanged)."),
        _d("forced-tool-ignored", "TURN-FUNCTION-CALL",
           "tool_choice forcing a function is ignored: the turn answers with a text message instead of the call."),
        _d("max-output-tokens-ignored", "TURN-MAX-OUTPUT-INCOMPLETE",
           "max_output_tokens never truncates: the turn completes with the full reply."),
        _d("flat-fields-ignored", "CREATE-FLAT-PAYLOAD",
           "The top-level instructions of a WebSocket response.create are not read: the turn runs without "
           "them and the response echoes instructions null."),
        _d("error-without-type", "ERR-ENVELOPE",
           "Error events lack error.type."),
        _d("error-without-status", "ERR-STATUS-PRESENT",
           "Request-level error events lack the top-level status (the lifetime-limit error keeps it).", "SHOULD",
           also=((P_OPEN_PROFILE, "ERR-STATUS-REQUIRED", FAIL),)),
        # error shapes seen in the field (§3.10, §4.10 item 51a)
        _d("error-status-code-instead", "ERR-STATUS-PRESENT",
           "Request-level error events carry status_code in place of status (the lifetime-limit error keeps "
           "status).", "SHOULD", also=((P_OPEN_PROFILE, "ERR-STATUS-REQUIRED", FAIL),)),
        _d("error-message-only", "ERR-ENVELOPE",
           "previous_response_not_found is sent as the message-only error of the ChatGPT/Codex backend: "
           "error.type and a message (\"Invalid `previous_response_id`.\"), no code, no param."),
        _d("error-detail-body", "ERR-ENVELOPE",
           "Request-level error events carry a {\"detail\": message} body (and status) instead of the error "
           "object."),
        _d("malformed-json-ignored", "CLIENT-MALFORMED-JSON",
           "A client text frame that is not a JSON object gets no answer at all.", "SHOULD"),
        _d("unknown-event-ignored", "CLIENT-UNKNOWN-EVENT",
           "A client event of unknown type gets no answer at all.", "SHOULD"),
        _d("binary-frame-processed", "CLIENT-BINARY-FRAME",
           "A binary client frame is decoded as UTF-8 and handled like a text frame (a create in it runs).",
           "SHOULD"),
        _d("binary-frame-drops-connection", "CLIENT-BINARY-FRAME",
           "A binary client frame makes the server drop the TCP connection: no error event, no close frame.",
           "SHOULD"),
        _d("conversation-ignored", "CREATE-PREVIOUS-AND-CONVERSATION",
           "conversation together with previous_response_id is not rejected: the conversation is ignored "
           "and the turn runs."),
        _d("store-false-not-cached", "CACHE-HIT-STORE-FALSE",
           "A store=false response is not kept in the connection cache (its lane is emptied), so continuing "
           "from it gets previous_response_not_found."),
        _d("store-true-not-cached", "CACHE-HIT-STORE-TRUE",
           "A store=true response is not kept in the connection cache and hydration serves only ids made on "
           "other connections, so it cannot be continued on its own connection (elsewhere it can)."),
        _d("no-hydration", "RECONNECT-STORE-TRUE-CONTINUES",
           "store=true ids are never hydrated from storage on a cache miss (not after a reconnect, not from "
           "another connection).", "SHOULD"),
        _d("warmup-drops-input", "WARMUP-CONTEXT-KEPT",
           "The input of a generate:false warm-up is not part of the context of the turns chained from it."),
        _d("cache-survives-reconnect", "ZDR-AFTER-RECONNECT",
           "The cache of a closed connection survives under its API key: a later connection of the same key "
           "continues its store=false ids (open connections still do not share)."),
        _d("drops-previous-output", "CONT-CONTEXT-CARRIED",
           "A continuation carries the previous inputs but not the previous outputs."),
        _d("turn-after-limit", "LIFETIME-NO-TURN-AFTER-LIMIT",
           "At the lifetime limit the server sends websocket_connection_limit_reached but neither closes "
           "nor stops: later creates still run."),
        _d("compact-wrong-object", "COMPACT-ENDPOINT-SHAPE",
           "POST /responses/compact answers with object \"response\" instead of \"response.compaction\"."),
        _d("compaction-drops-context", "COMPACT-NEW-CHAIN",
           "The compaction item of POST /responses/compact loses the nonce-like codes of the compacted "
           "window, so a new chain started from it does not see them."),
        _d("function-args-done-without-name", "FC-DONE-NAME",
           "response.function_call_arguments.done leaves out name (as production does).", "SHOULD",
           rewrites=EVENTS),
        _d("item-left-open-at-terminal", "STREAM-ITEM-DONE-BEFORE-TERMINAL",
           "The last output_item.done is never sent; the terminal response.output still holds the item.",
           "SHOULD", rewrites=EVENTS),
        _d("oversize-frame-dropped", "CLIENT-OVERSIZE-FRAME",
           "A client frame larger than --max-frame-bytes is read and silently dropped: no 1009 close, no "
           "error event.", "SHOULD"),
        _d("unknown-event-ignored-after-create", "CLIENT-UNKNOWN-EVENT",
           "Once a response.create has been handled on the connection, a client event of unknown type gets "
           "no answer at all (before it, the answer is an error as usual).", "SHOULD"),
        _d("orphan-call-id-accepted", "CONT-ORPHAN-CALL-OUTPUT-REJECTED",
           "A function_call_output whose call_id no function_call of the context has is accepted: the turn "
           "runs instead of failing with 400.", "SHOULD"),
        _d("validates-types-only", "CONT-ORPHAN-CALL-OUTPUT-REJECTED",
           "A WebSocket create is checked for types only: an orphan call_id and an out-of-range temperature "
           "are accepted (temperature \"hot\" is still refused); the eviction case then judges by a "
           "further provocation (tests/test_case_fallbacks.py).", "SHOULD"),
        _d("keeps-older-responses", "CACHE-MISS-STORE-FALSE",
           "The connection cache keeps every response, not only the latest per lane: an older store=false "
           "id still continues (a deeper cache, judged only where the profile claims [cache] latest_only)."),
        # P-open fields (§5.1): killed under P-open, tolerated under the OpenAI profiles
        _d("response-without-penalty", "SCHEMA-SERVER-EVENT",
           "Response objects leave out presence_penalty (the Open Responses ResponseResource requires it).",
           profile=P_OPEN_PROFILE, rewrites=EVENTS),
        _d("tools-echo-without-strict", "SCHEMA-SERVER-EVENT",
           "Response.tools echoes function tools without strict (the Open Responses FunctionTool requires it).",
           profile=P_OPEN_PROFILE, rewrites=EVENTS),
        _d("compact-items-as-given", "COMPACT-ENDPOINT-SHAPE",
           "POST /responses/compact keeps the user messages as the client sent them (no id, no status, "
           "string content) instead of as Message resources.", profile=P_OPEN_COMPACT_PROFILE),
        # lanes (§4.4 items 20-23a, §4.5 items 25, 31, 33)
        _d("stream-id-not-validated", "CREATE-INVALID-STREAM-ID",
           "Any string is taken as a lane name: an empty, too long or badly formed stream_id opens a lane."),
        _d("lane-jobs-overlap", "LANE-FIFO",
           "Creates on the same named lane run at once instead of one after the other."),
        _d("lanes-serialised", "LANE-CONCURRENT",
           "Every lane waits in one queue: a create on lane B runs only after lane A's response ended."),
        _d("lane-terminal-untagged", "LANE-TAGGED",
           "The terminal event of a named lane's response carries no stream_id."),
        _d("lane-error-untagged", "LANE-TAGGED",
           "Request errors of a named lane carry no stream_id."),
        _d("lane-reuse-continues", "LANE-NEW-CONVERSATION",
           "A create on a named lane without previous_response_id continues the lane's latest response."),
        _d("one-cache-slot", "LANE-CACHE-PER-LANE",
           "The connection cache keeps one latest response for all lanes: a turn on lane B pushes lane A's out."),
        _d("fork-takes-parent", "LANE-FORK",
           "A fork to another lane takes its parent out of the source lane's cache slot."),
        _d("fork-failure-evicts-parent", "LANE-FORK-FAILURE-KEEPS-PARENT",
           "A failed fork to another lane evicts the shared parent (as if it had been a same-lane continuation)."),
        _d("named-lane-no-eviction", "LANE-EVICT-SAME-LANE",
           "A failed continuation evicts its parent on the default lane only, never on a named lane."),
        _d("active-limit-rejects", "LANE-ACTIVE-LIMIT",
           "A create that finds 16 responses active is rejected with an error instead of queued."),
        _d("active-limit-off-by-one", "LANE-ACTIVE-LIMIT",
           "17 responses may be active at once (the limit is 16)."),
        _d("named-limit-off-by-one", "LANE-NAMED-LIMIT",
           "The 33rd distinct lane name is accepted; only the 34th gets websocket_stream_limit_reached."),
        _d("named-lanes-released", "LANE-NAMED-LIMIT",
           "A lane name stops counting once its lane is idle, so a connection can use any number of names."),
        # steering (§4.9)
        _d("steer-refused", "STEER-ACCEPTED",
           "A valid steer of a running response gets response.steer.failed (steering_not_supported)."),
        _d("steered-reason-missing", "STEER-TARGET-ENDS",
           "A response stopped by a steer ends response.incomplete with incomplete_details null."),
        _d("steer-no-successor", "STEER-SUCCESSOR",
           "An accepted steer is dropped when its target ends: no successor response is created."),
        _d("steer-input-lost", "STEER-SUCCESSOR-CONTEXT",
           "The successor runs without the steer's input (its context is only the target's)."),
        _d("steer-pending-input-dropped", "STEER-PENDING",
           "After response.steer.pending the queued input is not put in front of the client's create."),
        _d("steer-accepts-finished", "STEER-ENDED-REFUSED",
           "A steer naming a response that has ended gets response.steer.accepted (and nothing follows)."),
        _d("steer-unknown-wrong-code", "STEER-NOT-FOUND",
           "A steer naming an unknown response fails with response_not_active instead of response_not_found."),
        _d("steer-extra-fields-accepted", "STEER-INVALID",
           "Fields other than type, previous_response_id and input (stream_id among them) are ignored: the "
           "steer is accepted."),
        _d("steer-compaction-accepted", "STEER-NOT-STEERABLE",
           "Responses with automatic compaction (context_management) are steered like any other."),
        _d("steer-failed-no-echo", "STEER-FAILED-ECHO",
           "response.steer.failed does not repeat the steer's input."),
        _d("steer-failed-new-id", "STEER-FAILED-AFTER-ACCEPT",
           "A steer that fails after acceptance gets response.steer.failed without the accepted steer.id."),
        _d("pending-steer-survives-close", "STEER-CONNECTION-LOCAL",
           "Steer input waiting after response.steer.pending outlives its connection: the next create that "
           "continues the target, on any connection, gets it."),
        # a refusal as response.failed (§4.10 item 51a): P-open allows it, the OpenAI profiles do not
        _d("not-found-as-response-failed", "CACHE-MISS-STORE-FALSE",
           "previous_response_not_found comes as a response that fails at once (response.created, "
           "response.in_progress, response.failed with response.error.code) instead of an error event.",
           also=((P_OPEN_PROFILE, "CACHE-MISS-STORE-FALSE", PASS),)),
        # nothing after the terminal event (§4.3 item 15a): SHOULD under the OpenAI profiles, MUST under P-open
        _d("trailing-response-done", "STREAM-NO-TRAILING-FRAME",
           "A private response.done event (carrying the response) follows every terminal event "
           "(response.completed, as a gateway appended it, and the other two).", "SHOULD", rewrites=EVENTS,
           also=((P_OPEN_PROFILE, "STREAM-NOTHING-AFTER-TERMINAL", FAIL),)),
        # tenant isolation (§4.5 item 35a): each ignores who owns a response on one path
        _d("tenant-continues-store-true", "TENANT-CONTINUE-STORE-TRUE",
           "Hydrating a store=true id for a continuation ignores its owner: a key of another tenant continues "
           "it, with its context."),
        _d("tenant-continues-store-false", "TENANT-CONTINUE-STORE-FALSE",
           "store=false responses are kept in a server-wide cache without an owner check, so any key on any "
           "connection (another tenant's too) continues them."),
        _d("tenant-get-across", "TENANT-HTTP-GET",
           "GET /responses/{id} ignores the owner: a key of another tenant reads the stored response."),
        _d("tenant-delete-across", "TENANT-HTTP-DELETE",
           "DELETE /responses/{id} ignores the owner: a key of another tenant deletes the stored response."),
        _d("tenant-refusal-quotes-context", "TENANT-NO-CONTEXT-LEAK",
           "Another tenant's continuation of a store=true response is refused with previous_response_not_found, "
           "but the error message quotes the first item of the response's context."),
        # idle sockets (§4.6 item 38b): after 1 s without a client frame
        _d("idle-close-without-error", "IDLE-TURN-OR-LIMIT",
           "A socket idle for 1 s is closed (1000) without an error event."),
        _d("idle-limit-error-malformed", "IDLE-TURN-OR-LIMIT",
           "A socket idle for 1 s gets an unsolicited websocket_connection_limit_reached with status 500 and "
           "error.type server_error, then is closed."),
        # one create per request (§4.4 item 19a, §4.5 item 35b)
        _d("abandoned-input-carried", "QUEUE-ABANDONED-NO-LEAK",
           "A create that arrives while a response is in flight is run with the in-flight request's input "
           "prepended to its own: the abandoned request leaks into the next response."),
        _d("replay-first-response", "REQUEST-NO-REPLAY",
           "Every create after the first on a connection is answered with the first response again (same id, "
           "same output), like a gateway that copies one idempotency key into every request."),
    ]
)


def _flags_type() -> type:
    """The ``Flags`` record: one boolean per declared defect (attribute = name with '-' -> '_'),
    plus the derived ``rewrites_frames`` / ``rewrites_events``."""
    names = [defect.attribute for defect in DEFECTS.values()]
    assert len(set(names)) == len(names), "two defects map to one attribute"
    columns = [(name, bool, field(default=False)) for name in (*names, "rewrites_frames", "rewrites_events")]
    flags = make_dataclass("Flags", columns, frozen=True)
    flags.__module__ = __name__
    flags.__doc__ = "The defects resolved into booleans (attribute = defect name with '-' -> '_')."
    return flags


Flags = _flags_type()


class UnknownDefect(ValueError):
    pass


def resolve_flags(names) -> Flags:
    """Check the names against DEFECTS and return the resolved flags (raises UnknownDefect)."""
    names = tuple(names or ())
    unknown = [n for n in names if n not in DEFECTS]
    if unknown:
        raise UnknownDefect(
            "unknown defect(s): " + ", ".join(unknown) + "; known: " + ", ".join(sorted(DEFECTS))
        )
    chosen = [DEFECTS[name] for name in names]
    values = {defect.attribute: True for defect in chosen}
    values["rewrites_frames"] = any(defect.rewrites == FRAMES for defect in chosen)
    values["rewrites_events"] = any(defect.rewrites == EVENTS for defect in chosen)
    return Flags(**values)
