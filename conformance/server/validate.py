"""Client event parsing and ``response.create`` validation (spec §2.1, §2.4, §4.2).

Pure: text in, a :class:`CreateRequest` or an :class:`ApiError` out.  The codes used for
inputs OpenAI does not document (§6 question 7) are this server's choice and are listed in
the README: ``invalid_json``, ``invalid_type``, ``missing_required_parameter``,
``invalid_value``, ``unknown_event_type``, ``unsupported_parameter``, ``invalid_stream_id``,
``integer_below_min_value``, ``mutually_exclusive_parameters``, ``steering_not_supported``,
``unsupported_event_type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ApiError, bad_request

try:  # orjson is optional: faster parsing when installed
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - exercised only without orjson
    from json import loads as _loads

STREAM_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
TOOL_CHOICE_STRINGS = ("none", "auto", "required")
MIN_MAX_OUTPUT_TOKENS = 16

_TYPE_NAMES = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a decimal", list: "an array",
    dict: "an object", type(None): "null",
}


def _type_name(value) -> str:
    return _TYPE_NAMES.get(type(value), "an unsupported value")


def invalid_type(param: str, expected: str, value) -> ApiError:
    return bad_request(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param,
    )


def missing(param: str) -> ApiError:
    return bad_request("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def unsupported(param: str, detail: str = "") -> ApiError:
    return bad_request(
        "unsupported_parameter", f"Unsupported parameter: '{param}'." + (" " + detail if detail else ""), param
    )


@dataclass
class CreateRequest:
    """A validated response.create (WebSocket) or POST /responses body (HTTP)."""

    body: dict
    model: str
    input_items: list
    instructions: str | None
    previous_response_id: str | None
    store: bool
    tools: list
    tool_choice: object
    parallel_tool_calls: bool
    max_output_tokens: int | None
    reasoning: dict | None
    generate: bool
    stream_id: str | None
    stream: bool
    background: bool


MAX_DEPTH = 64


def too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in node.values() if isinstance(x, (dict, list)))
        elif isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in node if isinstance(x, (dict, list)))
    return False


def _decode(raw: str | bytes, what: str):
    try:
        return _loads(raw)
    except Exception:  # any decoder failure (also RecursionError without orjson) is invalid JSON
        raise bad_request("invalid_json", f"The {what} is not valid JSON.") from None


def _check_depth(value, what: str) -> None:
    if too_deep(value):
        raise bad_request("invalid_value", f"The {what} nests deeper than {MAX_DEPTH} levels.")


def parse_body(raw: bytes) -> dict:
    """JSON-decode an HTTP request body; the result must be an object."""
    body = _decode(raw, "request body")
    if not isinstance(body, dict):
        raise bad_request("invalid_type", "The request body must be a JSON object.")
    _check_depth(body, "request body")
    return body


def parse_frame(text: str):
    """JSON-decode a client text frame; the result must be an object with a string type."""
    event = _decode(text, "client event")
    if not isinstance(event, dict):
        raise bad_request(
            "invalid_type",
            f"Invalid client event: expected a JSON object, but got {_type_name(event)} instead.",
        )
    _check_depth(event, "client event")
    etype = event.get("type")
    if etype is None:
        raise missing("type")
    if not isinstance(etype, str):
        raise invalid_type("type", "a string", etype)
    return event


def _opt(body: dict, name: str, kinds: tuple, expected: str):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise invalid_type(name, expected, value)
    if not isinstance(value, kinds):
        raise invalid_type(name, expected, value)
    return value


def check_input(value) -> list:
    """The ``input`` field (a string or an array of items), as a list of items."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array of input items", value)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_type(f"input[{index}]", "an object", item)
        itype = item.get("type", "message" if "role" in item else None)
        if itype is None:
            raise missing(f"input[{index}].type")
        if not isinstance(itype, str):
            raise invalid_type(f"input[{index}].type", "a string", itype)
        if itype == "message":
            role = item.get("role")
            if role is None:
                raise missing(f"input[{index}].role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad_request(
                    "invalid_value",
                    f"Invalid value for 'input[{index}].role': expected one of 'user', 'assistant', "
                    "'system' or 'developer'.",
                    f"input[{index}].role",
                )
            content = item.get("content")
            if content is None:
                raise missing(f"input[{index}].content")
            if not isinstance(content, (str, list)):
                raise invalid_type(f"input[{index}].content", "a string or an array", content)
            if isinstance(content, list):
                for j, part in enumerate(content):
                    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                        raise invalid_type(f"input[{index}].content[{j}]", "a content part object", part)
        elif itype in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if call_id is None:
                raise missing(f"input[{index}].call_id")
            if not isinstance(call_id, str):
                raise invalid_type(f"input[{index}].call_id", "a string", call_id)
            if "output" not in item:
                raise missing(f"input[{index}].output")
        elif itype == "function_call":
            for key in ("call_id", "name", "arguments"):
                field = item.get(key)
                if field is None:
                    raise missing(f"input[{index}].{key}")
                if not isinstance(field, str):
                    raise invalid_type(f"input[{index}].{key}", "a string", field)
    return value


def _check_tools(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type("tools", "an array", value)
    for index, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{index}]", "an object", tool)
        ttype = tool.get("type")
        if ttype is None:
            raise missing(f"tools[{index}].type")
        if not isinstance(ttype, str):
            raise invalid_type(f"tools[{index}].type", "a string", ttype)
        if ttype in ("function", "custom"):
            name = tool.get("name")
            if name is None:
                raise missing(f"tools[{index}].name")
            if not isinstance(name, str) or not name:
                raise invalid_type(f"tools[{index}].name", "a non-empty string", name)
            params = tool.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise invalid_type(f"tools[{index}].parameters", "an object", params)
    return value


def _check_tool_choice(value, tools: list):
    if value is None:
        return "auto"
    if isinstance(value, str):
        if value not in TOOL_CHOICE_STRINGS:
            raise bad_request(
                "invalid_value",
                "Invalid value for 'tool_choice': expected one of 'none', 'auto', 'required' or an object.",
                "tool_choice",
            )
        return value
    if not isinstance(value, dict):
        raise invalid_type("tool_choice", "a string or an object", value)
    ttype = value.get("type")
    if not isinstance(ttype, str):
        raise missing("tool_choice.type") if ttype is None else invalid_type("tool_choice.type", "a string", ttype)
    if ttype == "function":
        name = value.get("name")
        if not isinstance(name, str):
            raise missing("tool_choice.name") if name is None else invalid_type("tool_choice.name", "a string", name)
        if not any(t.get("type") == "function" and t.get("name") == name for t in tools):
            raise bad_request(
                "invalid_value",
                f"Tool choice 'function' with name '{name}' not found in 'tools' parameter.",
                "tool_choice",
            )
    elif ttype == "allowed_tools":
        allowed = value.get("tools")
        if allowed is not None and not isinstance(allowed, list):
            raise invalid_type("tool_choice.tools", "an array", allowed)
    return value


CYBER_PROGRAMS = ("standard", "daybreak_blue", "daybreak_red")


def _check_access_programs(value) -> None:
    """§2.1 (update 2026-12): ``{cyber?: standard|daybreak_blue|daybreak_red}``; other programs
    are tolerated. Every key of this server holds every program, so none is refused with 403."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid_type("access_programs", "an object", value)
    cyber = value.get("cyber")
    if cyber is not None and cyber not in CYBER_PROGRAMS:
        raise bad_request("invalid_value",
                          "Invalid value for 'access_programs.cyber': expected one of 'standard', "
                          "'daybreak_blue' or 'daybreak_red'.", "access_programs.cyber")


def validate_create(body: dict, *, websocket: bool, rejected_fields: tuple[str, ...] = (),
                    stream_rejected: bool = False, background_accepted: bool = False,
                    generate_supported: bool = True, conversation_ignored: bool = False,
                    stream_id_checked: bool = True, lanes: bool = True,
                    ranges_checked: bool = True) -> CreateRequest:
    """Validate a flat response.create (``websocket``) or an HTTP create body.  Without
    ``lanes`` (P-legacy servers) a ``stream_id`` is an unsupported parameter; without
    ``ranges_checked`` (a defect) numbers are checked for their type only."""
    for name in rejected_fields:
        if body.get(name) is not None:
            raise unsupported(name, "It must not be sent over the WebSocket transport.")
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str) or not model:
        raise invalid_type("model", "a non-empty string", model)

    stream_id = None
    if websocket:
        if body.get("stream_id") is not None:  # null is the default lane, like an absent field
            if not lanes:
                raise unsupported("stream_id", "This server has no stream_id lanes.")
            stream_id = body["stream_id"]
            if not isinstance(stream_id, str) or (stream_id_checked and not STREAM_ID_RE.fullmatch(stream_id)):
                raise ApiError(
                    400, "invalid_stream_id",
                    "The 'stream_id' field must be a non-empty string with at most 256 characters and "
                    "may only contain letters, numbers, underscores, hyphens, and periods.", "stream_id",
                )
    else:
        for name in ("stream_id", "generate"):
            if name in body:
                raise bad_request("unknown_parameter", f"Unknown parameter: '{name}'.", name)

    raw_input = body.get("input")
    input_items = [] if raw_input is None else check_input(raw_input)
    instructions = _opt(body, "instructions", (str,), "a string")
    prev = _opt(body, "previous_response_id", (str,), "a string")
    if prev is not None and not prev:
        raise bad_request("invalid_value", "Invalid 'previous_response_id': empty string.", "previous_response_id")
    conversation = body.get("conversation")
    if conversation is not None and not (prev is not None and conversation_ignored):
        if prev is not None:
            raise bad_request(
                "mutually_exclusive_parameters",
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                "conversation",
            )
        raise unsupported("conversation", "This reference server does not implement conversations.")

    store = _opt(body, "store", (bool,), "a boolean")
    parallel = _opt(body, "parallel_tool_calls", (bool,), "a boolean")
    background = _opt(body, "background", (bool,), "a boolean")
    stream = _opt(body, "stream", (bool,), "a boolean")
    generate = True
    if "generate" in body and websocket:
        requested = body["generate"]
        if not isinstance(requested, bool):
            raise invalid_type("generate", "a boolean", requested)
        if not generate_supported:
            raise unsupported("generate")
        generate = requested
    if background and not background_accepted:
        raise unsupported("background", "Background mode is not supported over the WebSocket transport."
                          if websocket else "Background mode is not supported by this server.")
    if stream and stream_rejected:
        raise unsupported("stream", "'stream' is implicit over WebSocket and must not be sent.")
    for name in ("stream_options", "prompt_cache_options"):   # §2.1: objects (the SDK of 2026-09 adds the latter)
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise invalid_type(name, "an object", value)

    _check_access_programs(body.get("access_programs"))

    tools = _check_tools(body.get("tools"))
    tool_choice = _check_tool_choice(body.get("tool_choice"), tools)

    mot = body.get("max_output_tokens")
    if mot is not None:
        if isinstance(mot, bool) or not isinstance(mot, int):
            raise invalid_type("max_output_tokens", "an integer", mot)
        if mot < MIN_MAX_OUTPUT_TOKENS:
            raise bad_request(
                "integer_below_min_value",
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                f"{MIN_MAX_OUTPUT_TOKENS}, but got {mot} instead.",
                "max_output_tokens",
            )
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        setting = body.get(name)
        if setting is not None:
            if isinstance(setting, bool) or not isinstance(setting, (int, float)):
                raise invalid_type(name, "a number", setting)
            if ranges_checked and not (low <= setting <= high):
                raise bad_request("invalid_value", f"Invalid '{name}': expected a value in [{low}, {high}].", name)
    mtc = body.get("max_tool_calls")
    if mtc is not None and (isinstance(mtc, bool) or not isinstance(mtc, int)):
        raise invalid_type("max_tool_calls", "an integer", mtc)

    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid_type("metadata", "an object", metadata)
        if len(metadata) > 16:
            raise bad_request("invalid_value", "Invalid 'metadata': at most 16 pairs.", "metadata")
        for k, setting in metadata.items():
            if not isinstance(setting, str):
                raise invalid_type(f"metadata.{k}", "a string", setting)

    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise invalid_type("reasoning", "an object", reasoning)
        summary = reasoning.get("summary")
        if summary is not None and summary not in REASONING_SUMMARIES:
            raise bad_request(
                "invalid_value",
                "Invalid value for 'reasoning.summary': expected one of 'auto', 'concise' or 'detailed'.",
                "reasoning.summary",
            )
        effort = reasoning.get("effort")
        if effort is not None and not isinstance(effort, str):
            raise invalid_type("reasoning.effort", "a string", effort)
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    management = body.get("context_management")
    if management is not None:
        if not isinstance(management, list) or not management:
            raise invalid_type("context_management", "a non-empty array", management)
        for index, entry in enumerate(management):
            if not isinstance(entry, dict) or entry.get("type") != "compaction":
                raise bad_request(
                    "invalid_value", "Invalid 'context_management': expected {type: 'compaction'} entries.",
                    f"context_management[{index}]",
                )
            thr = entry.get("compact_threshold")
            if thr is not None and (isinstance(thr, bool) or not isinstance(thr, int) or thr < 1000):
                raise bad_request(
                    "invalid_value", "Invalid 'compact_threshold': expected an integer >= 1000.",
                    f"context_management[{index}].compact_threshold",
                )
    include = body.get("include")
    if include is not None and not isinstance(include, list):
        raise invalid_type("include", "an array", include)

    return CreateRequest(
        body=body,
        model=model,
        input_items=input_items,
        instructions=instructions,
        previous_response_id=prev,
        store=True if store is None else store,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=True if parallel is None else parallel,
        max_output_tokens=mot,
        reasoning=reasoning,
        generate=generate,
        stream_id=stream_id,
        stream=bool(stream),
        background=bool(background),
    )


STEER_FIELDS = frozenset({"type", "previous_response_id", "input"})
_STEER_PARTS = frozenset({"input_text", "input_image", "input_file"})


def _invalid_input(message: str, param: str | None) -> ApiError:
    return ApiError(400, "invalid_input", message, param, evicts=False)


def validate_steer(event: dict) -> tuple[str, list]:
    """A ``response.steer`` (§2.2, §4.9 item 46): only ``type``, ``previous_response_id`` and
    ``input``; the input is a string or a non-empty array of user messages whose content is a
    string or input_text/input_image/input_file parts.  Returns (target id, input items);
    raises ``invalid_input`` naming the offending field."""
    extra = sorted(k for k in event if k not in STEER_FIELDS)  # JSON keys: always strings
    if extra:
        raise _invalid_input(f"response.steer accepts only type, previous_response_id and input; "
                             f"got '{extra[0][:64]}'.", extra[0][:64])
    prev = event.get("previous_response_id")
    if not isinstance(prev, str) or not prev:
        raise _invalid_input("response.steer needs previous_response_id: the id of an active response "
                             "on this connection.", "previous_response_id")
    value = event.get("input")
    if isinstance(value, str) and value:
        return prev, [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _invalid_input("Steering input must be a non-empty string or a non-empty array of user "
                             "messages.", "input")
    items = []
    for index, item in enumerate(value):
        allowed = (isinstance(item, dict) and set(item) <= {"type", "role", "content"}
                   and item.get("type", "message") == "message" and item.get("role") == "user")
        content = item.get("content") if isinstance(item, dict) else None
        if allowed and isinstance(content, list):
            allowed = bool(content) and all(isinstance(p, dict) and p.get("type") in _STEER_PARTS for p in content)
        elif allowed:
            allowed = isinstance(content, str) and bool(content)
        if not allowed:
            raise _invalid_input("Steering input items must be user messages whose content is text, "
                                 "images or files (tool outputs are not accepted).", f"input[{index}]")
        items.append({"type": "message", "role": "user", "content": content})
    return prev, items
