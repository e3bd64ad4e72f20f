"""Named defects of the reference server: the one place each is documented.

A defect makes the server break exactly one behaviour, named after the clause of
``cases/clauses.toml`` it violates.  The kill matrix starts the server with one defect
at a time and proves that the suite notices.  ``resolve_flags`` turns the chosen names
into a frozen :class:`Flags` record once, at start-up, so that the hot path only reads
booleans.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Defect:
    name: str
    clause: str
    summary: str
    level: str = "MUST"


def _d(name: str, clause: str, summary: str, level: str = "MUST") -> tuple[str, Defect]:
    return name, Defect(name, clause, summary, level)


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
           "sequence_number counts per connection: the second response does not start at 0.", "SHOULD"),
        _d("sequence-gaps", "SEQ-FROM-ZERO-BY-ONE",
           "sequence_number goes up by 2, leaving gaps.", "SHOULD"),
        _d("sequence-not-monotonic", "SEQ-MONOTONIC",
           "Two sequence numbers inside each generating response are swapped."),
        _d("missing-terminal-event", "STREAM-ONE-TERMINAL",
           "The terminal event (response.completed/incomplete/failed) is never sent."),
        _d("deltas-dont-add-up", "STREAM-DELTAS-ADD-UP",
           "One text delta is dropped, so the deltas do not add up to the .done text."),
        _d("sse-framing", "WS-NO-SSE-FRAMING",
           "Frames are wrapped in SSE framing (event:/data: lines) instead of bare JSON."),
        _d("binary-frames", "WS-TEXT-JSON-FRAMES",
           "Server events are sent as binary frames instead of text frames."),
        _d("silent-after-handshake", "TURN-TEXT",
           "The upgrade succeeds but no frame is ever answered."),
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
           "An output_item.done of the response is sent again after its terminal event."),
        _d("output-mismatch", "STREAM-DONE-MATCHES-OUTPUT",
           "The terminal response.output holds a different text than the streamed .done events."),
        _d("created-not-first", "STREAM-CREATED-FIRST",
           "response.in_progress is sent before response.created."),
        _d("default-lane-tagged", "LANE-DEFAULT-UNTAGGED",
           "Default-lane events carry stream_id \"default\"."),
        _d("usage-ignores-history", "CONT-USAGE-COUNTS-CONTEXT",
           "usage.input_tokens counts only the new input and instructions, not the carried history.", "SHOULD"),
        _d("stream-true-rejected", "CREATE-STREAM-TOLERATED",
           "stream:true in a WebSocket response.create is rejected with an error.", "SHOULD"),
        _d("missing-created-response-fields", "SCHEMA-SERVER-EVENT",
           "The response object in lifecycle events lacks the schema-required field tools."),
        _d("text-frames-not-json-object", "WS-TEXT-JSON-FRAMES",
           "Every response.in_progress event is sent as a JSON array wrapping the event."),
    ]
)


@dataclass(frozen=True)
class Flags:
    """The defects resolved into booleans (attribute = defect name with '-' -> '_')."""

    ignore_previous_response_id: bool = False
    reject_when_busy: bool = False
    interleave_responses: bool = False
    no_eviction: bool = False
    store_false_shared_across_connections: bool = False
    renamed_not_found_code: bool = False
    not_found_status_404: bool = False
    flat_error_shape: bool = False
    sequence_per_connection: bool = False
    sequence_gaps: bool = False
    sequence_not_monotonic: bool = False
    missing_terminal_event: bool = False
    deltas_dont_add_up: bool = False
    sse_framing: bool = False
    binary_frames: bool = False
    silent_after_handshake: bool = False
    generate_false_ignored: bool = False
    warmup_not_chainable: bool = False
    previous_id_not_echoed: bool = False
    never_expires: bool = False
    closes_after_error: bool = False
    background_accepted: bool = False
    requires_model_query: bool = False
    no_auth: bool = False
    terminal_not_last: bool = False
    output_mismatch: bool = False
    created_not_first: bool = False
    default_lane_tagged: bool = False
    usage_ignores_history: bool = False
    stream_true_rejected: bool = False
    missing_created_response_fields: bool = False
    text_frames_not_json_object: bool = False
    # derived: any defect that rewrites frames on their way out
    rewrites_frames: bool = field(default=False)
    # derived: any defect that rewrites the event list of a turn
    rewrites_events: bool = field(default=False)


_FRAME_DEFECTS = ("sse_framing", "binary_frames", "text_frames_not_json_object", "default_lane_tagged")
_EVENT_DEFECTS = (
    "sequence_per_connection", "sequence_gaps", "sequence_not_monotonic", "missing_terminal_event",
    "deltas_dont_add_up", "terminal_not_last", "output_mismatch", "created_not_first",
    "missing_created_response_fields",
)


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
    values = {n.replace("-", "_"): True for n in names}
    known = {f.name for f in fields(Flags)}
    assert set(values) <= known, "DEFECTS and Flags are out of step"
    values["rewrites_frames"] = any(values.get(k) for k in _FRAME_DEFECTS)
    values["rewrites_events"] = any(values.get(k) for k in _EVENT_DEFECTS)
    return Flags(**values)


NO_DEFECTS = Flags()
