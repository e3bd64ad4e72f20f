"""Event facts of the WebSocket mode: lifecycle and terminal types, delta/done families, the
event types the grammar knows, extensions seen in the wild, and the lane-name rule.

§2.1 (``stream_id``), §3 (server events, §3.4 their full list) and §4.3 (grammar) of
docs/spec.md; the lane-name rule is §4.2 item 6.
The one source the suite (monitor, client, model, cases) uses; the reference server keeps its
own copy on purpose (an independent implementation).
"""
from __future__ import annotations

from typing import Any

LIFECYCLE_START = ("response.queued", "response.created")
# terminal event type -> the response.status it carries
TERMINAL_STATUS = {
    "response.completed": "completed",
    "response.failed": "failed",
    "response.incomplete": "incomplete",
}
TERMINAL_TYPES = frozenset(TERMINAL_STATUS)

# delta family base -> (field of the .done event, index field or None, container)
#   container "part": content part (content_part.added/done), value at item.content[i][field]
#   container "summary": reasoning summary part, value at item.summary[i].text
#   container None: item-level value at item[field]
FAMILIES: dict[str, tuple[str, str | None, str | None]] = {
    "response.output_text": ("text", "content_index", "part"),
    "response.refusal": ("refusal", "content_index", "part"),
    "response.reasoning_text": ("text", "content_index", "part"),
    "response.reasoning_summary_text": ("text", "summary_index", "summary"),
    "response.function_call_arguments": ("arguments", None, None),
    "response.custom_tool_call_input": ("input", None, None),
    "response.code_interpreter_call_code": ("code", None, None),
    "response.mcp_call_arguments": ("arguments", None, None),
}
# delta/done event type -> (family base, field, index field, container)
DELTA_INFO = {base + ".delta": (base, *spec) for base, spec in FAMILIES.items()}
DONE_INFO = {base + ".done": (base, *spec) for base, spec in FAMILIES.items()}
# content part type -> (family base, field)
PART_FAMILY = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
    "reasoning_text": ("response.reasoning_text", "text"),
}
PART_EVENTS = ("response.content_part.added", "response.content_part.done")
SUMMARY_PART_EVENTS = ("response.reasoning_summary_part.added", "response.reasoning_summary_part.done")

# events of an item, by item_id
ITEM_EVENTS = (
    "response.output_text.annotation.added",
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.file_search_call.completed",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.generating",
    "response.image_generation_call.partial_image",
    "response.image_generation_call.completed",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "response.mcp_list_tools.in_progress",
    "response.mcp_list_tools.completed",
    "response.mcp_list_tools.failed",
    "response.shell_call_output_content.delta",
    "response.shell_call_output_content.done",
    "response.compaction.compacting",
)
# events of an item, by output_index only
INDEX_EVENTS = (
    "response.shell_call_command.added",
    "response.shell_call_command.delta",
    "response.shell_call_command.done",
)
# events of the response without an item reference
PLAIN_EVENTS = (
    "response.audio.delta",
    "response.audio.done",
    "response.audio.transcript.delta",
    "response.audio.transcript.done",
)
# steer/inject events share the target response's numbering and may follow its terminal (§3.5)
STEER_EVENTS = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")
INJECT_EVENTS = ("response.inject.created", "response.inject.failed")

# seen in the wild (§3.4): always extensions; response.done is not a terminal event
WILD_EXTENSIONS = frozenset({"response.done", "codex.rate_limits", "response.interrupt.accepted"})

KNOWN_EVENT_TYPES = frozenset(
    (
        "error",
        *LIFECYCLE_START,
        "response.in_progress",
        *TERMINAL_STATUS,
        "response.output_item.added",
        "response.output_item.done",
        *PART_EVENTS,
        *SUMMARY_PART_EVENTS,
        *DELTA_INFO,
        *DONE_INFO,
        *ITEM_EVENTS,
        *INDEX_EVENTS,
        *PLAIN_EVENTS,
        *STEER_EVENTS,
        *INJECT_EVENTS,
    )
)

# error codes that concern the connection, not the lane of the rejected create (§6 question 17)
CONNECTION_LEVEL_CODES = frozenset({"websocket_connection_limit_reached"})


def valid_lane_name(sid: Any) -> bool:
    """A lane name (``stream_id``): 1-256 characters of ``[A-Za-z0-9_.-]``."""
    if type(sid) is not str or not 1 <= len(sid) <= 256:
        return False
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in sid)
