"""Turning a finished generation into the event sequence of one response (spec §3.2, §3.5,
§3.6, §3.9 and §4.3 items 11-18).

Pure.  ``response_object`` builds the Response of §3.6; ``turn_events`` lays out
``response.created``, ``response.in_progress``, the item and part lifecycle with deltas
split in several chunks, and exactly one terminal event carrying the full response;
``number`` assigns ``sequence_number`` (0, 1, 2 ... per response).  ``Framer`` serialises
events into WebSocket frames (text, one JSON object each).  The event-level and frame-level
defects are applied here, off the hot path unless one is enabled.

Variations the official SDK tolerates (§4.3 item 16a): ``streaming_variations`` drops the
setup events and empties the terminal ``output``; ``control_before``/``CONTROL_AFTER`` are
the unsequenced control events sent around a response (§3.4), and ``with_end_turn`` adds the
``end_turn`` Codex reads (§3.6).  ``blocked_mid_stream`` cuts a
response after its first delta with a safety-block ``error`` (§3.10).  ``schedule`` says when
each event of a response goes out (test-control delays, simulated model latency).
"""

from __future__ import annotations

import copy

from .defects import Flags
from .engine import TOKEN_RE, Generation, TurnStatus, count_tokens
from .errors import ApiError, ws_error_event

try:
    import orjson as _orjson

    def dumps(value) -> bytes:
        return _orjson.dumps(value)
except ImportError:  # pragma: no cover - exercised only without orjson
    import json as _json

    def dumps(value) -> bytes:
        return _json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

TEXT_CHUNKS = 4
ARGUMENT_CHUNKS = 3
_DEFAULT_TEXT = {"format": {"type": "text"}, "verbosity": "medium"}


def _number(value, default: float) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def echoed_tool(tool: dict) -> dict:
    """A tool as Response.tools echoes it: a function tool in full, with ``description``,
    ``parameters`` and ``strict`` (default true) as the Open Responses ``FunctionTool``
    requires and api.openai.com echoes them (spec §5.1)."""
    if tool.get("type") != "function":
        return tool
    echoed = dict(tool)
    echoed.setdefault("description", None)
    echoed.setdefault("parameters", None)
    echoed.setdefault("strict", True)
    return echoed


def response_object(req, response_id: str, created_at: int, previous_response_id: str | None) -> dict:
    """The in_progress Response of §3.6 (output [], usage null, completed_at null), with every
    field the Open Responses ``ResponseResource`` requires (§5.1) under every profile."""
    body = req.body
    reasoning = req.reasoning or {}
    text = body.get("text")
    if isinstance(text, dict) and text and "format" not in text:
        text = {"format": {"type": "text"}, **text}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": body.get("max_tool_calls"),
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls,
        "presence_penalty": _number(body.get("presence_penalty"), 0.0),
        "frequency_penalty": _number(body.get("frequency_penalty"), 0.0),
        "previous_response_id": previous_response_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_options": body.get("prompt_cache_options"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "default",
        "store": req.store,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": text if isinstance(text, dict) and text else _DEFAULT_TEXT,
        "tool_choice": req.tool_choice,
        "tools": [echoed_tool(t) for t in req.tools],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def final_object(started: dict, gen: Generation, completed_at: int) -> dict:
    final = dict(started)
    final["status"] = gen.status.value
    final["output"] = gen.output
    final["usage"] = gen.usage
    final["incomplete_details"] = gen.incomplete_details
    final["error"] = gen.error
    final["completed_at"] = completed_at if gen.status is TurnStatus.COMPLETED else None
    return final


def split_text(text: str, chunks: int = TEXT_CHUNKS) -> list[str]:
    """Split at token starts into at most ``chunks`` pieces whose concatenation is ``text``."""
    if not text:
        return []
    starts = [m.start() for m in TOKEN_RE.finditer(text)]
    parts = min(chunks, len(starts))
    if parts <= 1:
        return [text]
    tokens = len(starts)
    cuts = [starts[(i * tokens) // parts] for i in range(1, parts)]
    pieces, prev = [], 0
    for c in cuts:
        if c > prev:
            pieces.append(text[prev:c])
            prev = c
    pieces.append(text[prev:])
    return pieces


def split_chars(text: str, chunks: int = ARGUMENT_CHUNKS) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // chunks))
    return [text[i:i + size] for i in range(0, len(text), size)]


def _part_events(out: list, where: dict, part_type: str, text_type: str, key: str, part: dict,
                 empty: dict, logprobs: bool) -> None:
    """The lifecycle of one streamed part: ``<part_type>.added``, the ``<text_type>.delta``
    events, ``<text_type>.done`` carrying the value under ``key``, ``<part_type>.done``.
    ``where`` locates the part (item_id, output_index, content or summary index)."""
    value = part[key]
    out.append({"type": part_type + ".added", **where, "part": empty})
    for delta in split_text(value):
        event = {"type": text_type + ".delta", **where, "delta": delta}
        if logprobs:
            event["logprobs"] = []
        out.append(event)
    event = {"type": text_type + ".done", **where, key: value}
    if logprobs:
        event["logprobs"] = []
    out.append(event)
    out.append({"type": part_type + ".done", **where, "part": part})


def _item_events(index: int, item: dict, out: list) -> None:
    itype = item["type"]
    item_id = item["id"]
    if itype == "message":
        out.append({"type": "response.output_item.added", "output_index": index,
                    "item": {"id": item_id, "type": "message", "status": "in_progress",
                             "content": [], "role": "assistant"}})
        for content_index, part in enumerate(item["content"]):
            where = {"item_id": item_id, "output_index": index, "content_index": content_index}
            if part["type"] == "refusal":
                _part_events(out, where, "response.content_part", "response.refusal", "refusal", part,
                             {"type": "refusal", "refusal": ""}, False)
            else:
                _part_events(out, where, "response.content_part", "response.output_text", "text", part,
                             {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}, True)
    elif itype == "function_call":
        args = item["arguments"]
        out.append({"type": "response.output_item.added", "output_index": index,
                    "item": {"id": item_id, "type": "function_call", "status": "in_progress",
                             "arguments": "", "call_id": item["call_id"], "name": item["name"]}})
        for d in split_chars(args):
            out.append({"type": "response.function_call_arguments.delta", "item_id": item_id,
                        "output_index": index, "delta": d})
        out.append({"type": "response.function_call_arguments.done", "item_id": item_id,
                    "output_index": index, "name": item["name"], "arguments": args})
    elif itype == "reasoning":
        out.append({"type": "response.output_item.added", "output_index": index,
                    "item": {"id": item_id, "type": "reasoning", "summary": []}})
        for s, part in enumerate(item["summary"]):
            _part_events(out, {"item_id": item_id, "output_index": index, "summary_index": s},
                         "response.reasoning_summary_part", "response.reasoning_summary_text", "text", part,
                         {"type": "summary_text", "text": ""}, False)
    else:  # any other item type appears whole
        out.append({"type": "response.output_item.added", "output_index": index, "item": item})
    out.append({"type": "response.output_item.done", "output_index": index, "item": item})


_TERMINAL = {
    TurnStatus.COMPLETED: "response.completed",
    TurnStatus.INCOMPLETE: "response.incomplete",
    TurnStatus.FAILED: "response.failed",
}


def turn_events(started: dict, final: dict, gen: Generation, generate: bool = True) -> list[dict]:
    """The events of one response, without sequence numbers."""
    events = [{"type": "response.created", "response": started}]
    if generate:
        events.append({"type": "response.in_progress", "response": started})
        for index, item in enumerate(gen.output):
            _item_events(index, item, events)
    events.append({"type": _TERMINAL[gen.status], "response": final})
    return events


SETUP_EVENTS = frozenset({"response.output_item.added", "response.content_part.added",
                          "response.reasoning_summary_part.added"})
TERMINAL_TYPES = frozenset(_TERMINAL.values())


def streaming_variations(events: list[dict], omit_setup_events: bool, terminal_output: str) -> list[dict]:
    """The stream as the official SDK's WebSocket helper accepts it (§4.3 item 16a): without the
    item/part setup events, and/or with the terminal ``output`` "empty", "null" or "missing"
    ("full" leaves it).  The cached and stored response keep the full output."""
    if omit_setup_events:
        events = [e for e in events if e["type"] not in SETUP_EVENTS]
    if terminal_output != "full":
        term = events[-1]
        if term["type"] in TERMINAL_TYPES:
            resp = dict(term["response"])
            if terminal_output == "empty":
                resp["output"] = []
            elif terminal_output == "null":
                resp["output"] = None
            else:
                resp.pop("output", None)
            events[-1] = dict(term, response=resp)
    return events


def blocked_mid_stream(events: list[dict], err: ApiError, flags: Flags) -> list[dict]:
    """The response cut after its first delta (or after ``response.in_progress`` when it has
    none) and ended by the safety block's ``error`` event: no terminal event follows (§3.10)."""
    cut = next((i for i, e in enumerate(events) if e["type"].endswith(".delta")), 1)
    return events[:cut + 1] + [ws_error_event(err, flags)]


def _item_tokens(item: dict) -> tuple[int, int]:
    """(output tokens, reasoning tokens) of one output item under the engine's rules."""
    if item.get("type") == "reasoning":
        tokens = sum(count_tokens(p.get("text", "")) for p in item.get("summary") or ())
        return tokens, tokens
    if item.get("type") == "function_call":
        return count_tokens(item.get("arguments", "")), 0
    tokens = sum(count_tokens(p.get("text", p.get("refusal", ""))) for p in item.get("content") or ())
    return tokens, 0


def steered_cut(events: list[dict], start: int) -> int | None:
    """Where a steered response stops (§4.9 item 47): the first safe boundary at or after
    ``start`` — right after an ``output_item.done`` that more output follows — or None when the
    response has no such boundary left (it then finishes normally)."""
    for k in range(max(start, 1), len(events)):
        if events[k - 1]["type"] == "response.output_item.done" and events[k]["type"] not in TERMINAL_TYPES:
            return k
    return None


def steered_terminal(events: list[dict], cut: int) -> dict:
    """The ``response.incomplete`` (reason ``steered``) that replaces ``events[cut:]``: the
    output is the items completed before the cut, usage counts only them."""
    term = events[-1]
    final = dict(term["response"])
    kept = [e["item"] for e in events[:cut] if e["type"] == "response.output_item.done"]
    out_tokens = sum(_item_tokens(i)[0] for i in kept)
    reasoning = sum(_item_tokens(i)[1] for i in kept)
    usage = final.get("usage")
    if isinstance(usage, dict):
        usage = dict(usage, output_tokens=out_tokens,
                     output_tokens_details={"reasoning_tokens": reasoning},
                     total_tokens=usage.get("input_tokens", 0) + out_tokens)
    final.update(status="incomplete", output=kept, usage=usage, completed_at=None,
                 incomplete_details={"reason": "steered"})
    event = {k: v for k, v in term.items() if k != "response"}
    event["type"] = "response.incomplete"
    event["response"] = final
    if "sequence_number" in events[cut]:
        event["sequence_number"] = events[cut]["sequence_number"]
    return event


# Control events seen before a response's response.created and between responses (§3.4,
# update 2026-11-30): no response id, no sequence_number, never a stream_id.
CONTROL_BEFORE = (
    {"type": "ping"},
    {"type": "codex.rate_limits", "plan_type": "reference",
     "rate_limits": {"primary": {"used_percent": 0.0, "window_minutes": 300, "resets_in_seconds": 18000},
                     "secondary": None}},
    {"type": "response.metadata",
     "metadata": {"type": "safety_buffering", "use_cases": [], "retry_model": None}},
)
CONTROL_AFTER = ({"type": "codex.keepalive"},)
# What else Codex reads from response.metadata (update 2026-12, schemas/defs/response-metadata.json)
TURN_STATE = "ts_reference"
VERIFICATION = ["trusted_access_for_cyber"]


def control_before(model: str) -> list[dict]:
    """The control events before a response; ``response.metadata`` also carries the response
    headers (``openai-model``, ``x-codex-turn-state``) and the metadata fields Codex reads."""
    out = [copy.deepcopy(e) for e in CONTROL_BEFORE]
    meta = out[-1]
    meta["headers"] = {"openai-model": model, "x-codex-turn-state": TURN_STATE}
    meta["metadata"].update(openai_verification_recommendation=list(VERIFICATION),
                            openai_chatgpt_moderation_metadata={})
    return out


_TOOL_CALLS = frozenset({"function_call", "custom_tool_call"})


def with_end_turn(events: list[dict]) -> list[dict]:
    """``end_turn`` on the response of ``response.completed``, as Codex reads it (§3.6, update
    2026-12): false when the output asks for a tool call (the turn goes on), else true."""
    term = events[-1] if events else None
    if term is None or term["type"] != "response.completed":
        return events
    output = term["response"].get("output") or ()
    end_turn = not any(isinstance(i, dict) and i.get("type") in _TOOL_CALLS for i in output)
    return events[:-1] + [dict(term, response=dict(term["response"], end_turn=end_turn))]


def schedule(events: list[dict], *, turn_delay_s: float = 0.0, ttft_s: float = 0.0,
             tokens_per_second: float = 0.0, pause_s: float = 0.0) -> list[float] | None:
    """Offsets (seconds from the start of the response) at which each event goes out, or None
    when nothing waits.  ``turn_delay_s`` spreads the events evenly over that time;
    ``ttft_s`` delays the first event after ``response.in_progress`` (generating responses
    only); at ``tokens_per_second`` each delta waits its tokens' worth; ``pause_s`` is one
    silence in the middle of the response."""
    count = len(events)
    if count <= 1 or not (turn_delay_s > 0 or ttft_s > 0 or tokens_per_second > 0 or pause_s > 0):
        return None
    step = turn_delay_s / (count - 1) if turn_delay_s > 0 else 0.0
    middle = max(1, count // 2)
    first_output = 2 if count > 2 and events[1]["type"] == "response.in_progress" else None
    offsets = [0.0]
    offset = 0.0
    for index in range(1, count):
        offset += step
        event = events[index]
        if index == first_output:
            offset += ttft_s
        if tokens_per_second > 0 and event["type"].endswith(".delta"):
            offset += count_tokens(str(event.get("delta", ""))) / tokens_per_second
        if index == middle:
            offset += pause_s
        offsets.append(offset)
    return offsets


def processing_s(events: list[dict], per_token_s: float) -> float:
    """The modelled cost of reading a response's uncached input (``per_token_s`` per token of
    ``usage.input_tokens`` minus ``cached_tokens``; 0 when off or without usage)."""
    if per_token_s <= 0 or not events:
        return 0.0
    usage = (events[-1].get("response") or {}).get("usage") or {}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    return max(0, (usage.get("input_tokens") or 0) - cached) * per_token_s


def refusal_as_failed(started: dict, code: str, message: str) -> list[dict]:
    """A refusal delivered as a response that fails at once (the not-found-as-response-failed
    defect; the form the Open Responses runner also accepts, §4.10 item 51a): created, then
    response.failed with ``response.error`` {code, message}."""
    failed = dict(started, status="failed", error={"code": code, "message": message})
    return [{"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            {"type": "response.failed", "response": failed}]


def apply_event_defects(events: list[dict], flags: Flags) -> list[dict]:
    """Rewrite a response's events for the event-level defects (called only when one is on)."""
    # P-open fields of the Response (§5.1): killed under P-open, tolerated under OpenAI
    if flags.response_without_penalty or flags.tools_echo_without_strict:
        for event in events:
            resp = event.get("response")
            if isinstance(resp, dict):
                resp = dict(resp)
                if flags.response_without_penalty:
                    resp.pop("presence_penalty", None)
                if flags.tools_echo_without_strict:
                    resp["tools"] = [{k: v for k, v in t.items() if k != "strict"} for t in resp.get("tools", ())]
                event["response"] = resp
    if flags.missing_created_response_fields:
        for event in events:
            if "response" in event:
                event["response"] = {k: v for k, v in event["response"].items() if k != "tools"}
    if flags.output_mismatch:
        term = events[-1]
        resp = copy.deepcopy(term["response"])
        for item in resp["output"]:
            for part in item.get("content", ()):
                if part.get("type") == "output_text":
                    part["text"] += " (edited)"
        term["response"] = resp
    if flags.deltas_dont_add_up:
        for i, event in enumerate(events):
            if event["type"] == "response.output_text.delta":
                del events[i]
                break
    if flags.terminal_not_last:
        done = [e for e in events if e["type"] == "response.output_item.done"]
        if done:
            events.append(dict(done[-1]))
    if flags.no_in_progress:
        events = [e for e in events if e["type"] != "response.in_progress"]
    if flags.part_never_closed:
        events = [e for e in events if e["type"] != "response.content_part.done"]
    if flags.output_index_skips:
        for event in events:
            if "output_index" in event:
                event["output_index"] += 1
    if flags.delta_for_unannounced_item:
        for event in events:
            if event["type"] in ("response.output_text.delta", "response.output_text.done"):
                event["item_id"] = "msg_never_announced_" + event["item_id"]
    if flags.completed_without_usage:
        for event in events:
            if event["type"] == "response.completed":
                event["response"] = dict(event["response"], usage=None)
    if flags.function_args_done_without_name:
        for event in events:
            if event["type"] == "response.function_call_arguments.done":
                event.pop("name", None)
    if flags.item_left_open_at_terminal:
        for i in range(len(events) - 1, -1, -1):
            if events[i]["type"] == "response.output_item.done":
                del events[i]
                break
    if flags.created_not_first and len(events) >= 2:
        events[0], events[1] = events[1], events[0]
    if flags.trailing_response_done and events and events[-1]["type"] in TERMINAL_TYPES:
        events.append({"type": "response.done", "response": copy.deepcopy(events[-1]["response"])})
    if flags.missing_terminal_event:
        for i in range(len(events) - 1, -1, -1):
            if events[i]["type"] in ("response.completed", "response.incomplete", "response.failed"):
                del events[i]
                break
    return events


def number(events: list[dict], start: int = 0, flags: Flags | None = None,
           stream_id: str | None = None) -> list[dict]:
    step = 2 if flags is not None and flags.sequence_gaps else 1
    seq = start
    for event in events:
        if stream_id is not None:
            event["stream_id"] = stream_id
        event["sequence_number"] = seq
        seq += step
    if flags is not None and flags.sequence_missing:
        for event in events:
            if event["type"].endswith(".delta"):
                del event["sequence_number"]
    if flags is not None and flags.sequence_not_monotonic and len(events) >= 4:
        third, fourth = events[2], events[3]
        third["sequence_number"], fourth["sequence_number"] = fourth["sequence_number"], third["sequence_number"]
    return events


# the message-size limit of common WebSocket clients and relays (§1.4, update 2026-12)
LARGE_FRAME_BYTES = 2**20


class Framer:
    """Serialises server events into frames: ``(payload, binary)``.  Text frames carry one
    JSON object each; the frame-level defects rewrite them."""

    __slots__ = ("flags", "rewrite")

    def __init__(self, flags: Flags) -> None:
        self.flags = flags
        self.rewrite = flags.rewrites_frames

    def frame(self, event: dict) -> tuple[bytes, bool]:
        if not self.rewrite:
            return dumps(event), False
        flags = self.flags
        if flags.default_lane_tagged and "stream_id" not in event:
            event = dict(event, stream_id="default")
        if flags.text_frames_not_json_object and event.get("type") == "response.in_progress":
            data = dumps([event])
        else:
            data = dumps(event)
        if flags.sse_framing:
            data = b"event: " + str(event.get("type")).encode() + b"\ndata: " + data + b"\n\n"
        if flags.large_frames_truncated and len(data) > LARGE_FRAME_BYTES:
            data = data[:LARGE_FRAME_BYTES]
        return data, flags.binary_frames
