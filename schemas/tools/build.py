#!/usr/bin/env python3
"""Generate the per-event schemas, index.json and the test vectors under schemas/.

The hand-written definitions in schemas/defs/ are the source for shared shapes. This script
writes, from the tables below:

* schemas/server/<type>.json and schemas/client/<type>.json (one file per event type),
* schemas/index.json,
* schemas/vectors/{server,client}/<type>.json and schemas/vectors/extensions.json.

The outputs are committed as plain data; other tools never need to run this script.
Run it after editing a table: ``python schemas/tools/build.py``; ``--check`` exits 1 when
the committed files differ from what the tables produce (a self-test runs it).

Event facts come from docs/spec.md §2 (client events), §3.2 (shared streaming
events), §3.3 and §3.10 (WebSocket-only events).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # schemas/
BASE = "https://responses-ws-conformance.dev/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
COMMON = "../defs/common.json#/$defs/"

# ---------------------------------------------------------------------------------------
# Field library: name -> (schema, sample value, wrong-typed value)

IDX = {"$ref": COMMON + "index"}
STR = {"type": "string"}

FIELDS: dict[str, tuple[dict, object, object]] = {
    "item_id": (STR, "msg_vec_0001", 17),
    "output_index": (IDX, 0, "0"),
    "content_index": (IDX, 0, "0"),
    "summary_index": (IDX, 0, 0.5),
    "annotation_index": (IDX, 0, "first"),
    "command_index": (IDX, 0, "0"),
    "partial_image_index": (IDX, 0, "0"),
    "delta": (STR, "Hel", ["Hel"]),
    "text": (STR, "Hello.", None),
    "logprobs": ({"$ref": COMMON + "logprobs"}, [], {}),
    "refusal": (STR, "I can't help with that.", False),
    "name": (STR, "get_weather", 3),
    "arguments": (STR, "{\"city\":\"Paris\"}", {"city": "Paris"}),
    "input": (STR, "print('hi')", ["print('hi')"]),
    "code": (STR, "print(1)", 1),
    "command": (STR, "ls -la", ["ls", "-la"]),
    "partial_image_b64": (STR, "iVBORw0KGgo=", None),
    "size": ({"type": ["string", "null"]}, "1024x1024", 1024),
    "quality": ({"type": ["string", "null"]}, "high", 3),
    "background": ({"type": ["string", "null"]}, "opaque", True),
    "output_format": ({"type": ["string", "null"]}, "png", 1),
    "response_id": (STR, "resp_vec_0200", 200),
    "reason": ({"type": "string", "description": "Extensible enum; known value waiting_for_required_input. Unknown values are accepted."},
               "waiting_for_required_input", 1),
    "status": ({"type": "string", "description": "Known value incomplete."}, "incomplete", 0),
}

# ---------------------------------------------------------------------------------------
# Samples

def response(status: str, **over) -> dict:
    r = {
        "id": "resp_vec_0001",
        "object": "response",
        "created_at": 1790000000,
        "status": status,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "gpt-5.6",
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    r.update(over)
    return r


USAGE = {
    "input_tokens": 20,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 23,
}
TEXT_PART = {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello."}
MESSAGE_DONE = {"id": "msg_vec_0001", "type": "message", "status": "completed",
                "content": [TEXT_PART], "role": "assistant"}
MESSAGE_ADDED = {"id": "msg_vec_0001", "type": "message", "status": "in_progress",
                 "content": [], "role": "assistant"}
USER_MESSAGE = {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Keep it short."}]}

RESPONSES = {
    "response.queued": response("queued"),
    "response.created": response("in_progress"),
    "response.in_progress": response("in_progress"),
    "response.completed": response("completed", completed_at=1790000002, output=[MESSAGE_DONE], usage=USAGE),
    "response.failed": response("failed", error={"code": "server_error", "message": "The server had an error."}),
    "response.incomplete": response("incomplete", incomplete_details={"reason": "max_output_tokens"},
                                    output=[dict(MESSAGE_DONE, status="incomplete")], usage=USAGE),
}

# ---------------------------------------------------------------------------------------
# Server events: type -> (spec section, required fields, optional fields, schema overrides,
#                         sample overrides)

ITEM_EVENT = ["item_id", "output_index"]
SHARED: dict[str, dict] = {}


def shared(t, req, opt=(), schema=None, sample=None, sec="§3.2"):
    SHARED[t] = {"sec": sec, "req": list(req), "opt": list(opt), "schema": schema or {}, "sample": sample or {}}


for t in ["response.queued", "response.created", "response.in_progress", "response.completed",
          "response.failed", "response.incomplete"]:
    shared(t, ["response"], schema={"response": {"$ref": "../defs/response.json"}},
           sample={"response": RESPONSES[t]}, sec="§3.2, §3.6")
shared("response.output_item.added", ["output_index", "item"],
       schema={"item": {"$ref": "../defs/output-item.json"}}, sample={"item": MESSAGE_ADDED}, sec="§3.2, §3.8")
shared("response.output_item.done", ["output_index", "item"],
       schema={"item": {"$ref": "../defs/output-item.json"}}, sample={"item": MESSAGE_DONE}, sec="§3.2, §3.8")
for t, part in [("response.content_part.added", dict(TEXT_PART, text="")), ("response.content_part.done", TEXT_PART)]:
    shared(t, ["item_id", "output_index", "content_index", "part"],
           schema={"part": {"$ref": "../defs/content-part.json",
                            "description": "output_text, refusal or reasoning_text; unknown part types are extensions."}},
           sample={"part": part})
shared("response.output_text.delta", ["item_id", "output_index", "content_index", "delta", "logprobs"])
shared("response.output_text.done", ["item_id", "output_index", "content_index", "text", "logprobs"])
shared("response.output_text.annotation.added",
       ["item_id", "output_index", "content_index", "annotation_index", "annotation"],
       schema={"annotation": {"type": ["object", "null"], "if": {"type": "object"},
                              "then": {"$ref": "../defs/annotation.json"}}},
       sample={"annotation": {"type": "url_citation", "url": "https://example.com/", "title": "Example",
                              "start_index": 0, "end_index": 5}})
shared("response.refusal.delta", ["item_id", "output_index", "content_index", "delta"])
shared("response.refusal.done", ["item_id", "output_index", "content_index", "refusal"])
shared("response.function_call_arguments.delta", ITEM_EVENT + ["delta"], sample={"item_id": "fc_vec_0001", "delta": "{\"ci"})
shared("response.function_call_arguments.done", ITEM_EVENT + ["name", "arguments"], sample={"item_id": "fc_vec_0001"})
shared("response.custom_tool_call_input.delta", ITEM_EVENT + ["delta"], sample={"item_id": "ctc_vec_0001"})
shared("response.custom_tool_call_input.done", ITEM_EVENT + ["input"], sample={"item_id": "ctc_vec_0001"})
SUMMARY_PART = {"$ref": "../defs/content-part.json#/$defs/summary_text"}
shared("response.reasoning_summary_part.added", ITEM_EVENT + ["summary_index", "part"],
       schema={"part": SUMMARY_PART}, sample={"item_id": "rs_vec_0001", "part": {"type": "summary_text", "text": ""}})
shared("response.reasoning_summary_part.done", ITEM_EVENT + ["summary_index", "part"], opt=["status"],
       schema={"part": SUMMARY_PART},
       sample={"item_id": "rs_vec_0001", "part": {"type": "summary_text", "text": "Thinking about it."}})
shared("response.reasoning_summary_text.delta", ITEM_EVENT + ["summary_index", "delta"], sample={"item_id": "rs_vec_0001"})
shared("response.reasoning_summary_text.done", ITEM_EVENT + ["summary_index", "text"], sample={"item_id": "rs_vec_0001"})
shared("response.reasoning_text.delta", ITEM_EVENT + ["content_index", "delta"], sample={"item_id": "rs_vec_0001"})
shared("response.reasoning_text.done", ITEM_EVENT + ["content_index", "text"], sample={"item_id": "rs_vec_0001"})
for tool, prefix, phases in [
    ("web_search_call", "ws", ["in_progress", "searching", "completed"]),
    ("file_search_call", "fs", ["in_progress", "searching", "completed"]),
    ("code_interpreter_call", "ci", ["in_progress", "interpreting", "completed"]),
]:
    for ph in phases:
        shared(f"response.{tool}.{ph}", ITEM_EVENT, sample={"item_id": f"{prefix}_vec_0001"})
shared("response.code_interpreter_call_code.delta", ITEM_EVENT + ["delta"], sample={"item_id": "ci_vec_0001"})
shared("response.code_interpreter_call_code.done", ITEM_EVENT + ["code"], sample={"item_id": "ci_vec_0001"})
for ph in ["in_progress", "generating"]:
    shared(f"response.image_generation_call.{ph}", ITEM_EVENT, sample={"item_id": "ig_vec_0001"})
shared("response.image_generation_call.partial_image", ITEM_EVENT + ["partial_image_index", "partial_image_b64"],
       opt=["size", "quality", "background", "output_format"], sample={"item_id": "ig_vec_0001"})
shared("response.image_generation_call.completed", ITEM_EVENT, sample={"item_id": "ig_vec_0001"})
shared("response.mcp_call_arguments.delta", ITEM_EVENT + ["delta"], sample={"item_id": "mcp_vec_0001"})
shared("response.mcp_call_arguments.done", ITEM_EVENT + ["arguments"], sample={"item_id": "mcp_vec_0001"})
for ph in ["in_progress", "completed", "failed"]:
    shared(f"response.mcp_call.{ph}", ITEM_EVENT, sample={"item_id": "mcp_vec_0001"})
for ph in ["in_progress", "completed", "failed"]:
    shared(f"response.mcp_list_tools.{ph}", ITEM_EVENT, sample={"item_id": "mcpl_vec_0001"})
shared("response.shell_call_command.added", ["output_index", "command_index", "command"])
shared("response.shell_call_command.delta", ["output_index", "command_index", "delta"], sample={"delta": "ls"})
shared("response.shell_call_command.done", ["output_index", "command_index", "command"])
shared("response.shell_call_output_content.delta", ITEM_EVENT + ["command_index", "delta"],
       schema={"delta": {"type": "object", "properties": {"stdout": STR, "stderr": STR}}},
       sample={"item_id": "sh_vec_0001", "delta": {"stdout": "total 0\n"}})
SHELL_OUTPUT = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["stdout", "stderr", "outcome"],
        "properties": {
            "stdout": STR,
            "stderr": STR,
            "outcome": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": STR},
                "if": {"required": ["type"], "properties": {"type": {"const": "exit"}}},
                "then": {"required": ["exit_code"], "properties": {"exit_code": {"type": "integer"}}},
            },
            "created_by": STR,
        },
    },
}
shared("response.shell_call_output_content.done", ITEM_EVENT + ["command_index", "output"],
       schema={"output": SHELL_OUTPUT},
       sample={"item_id": "sh_vec_0001",
               "output": [{"stdout": "total 0\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]})
shared("response.audio.delta", ["delta"], sample={"delta": "UklGRg=="})
shared("response.audio.done", [])
shared("response.audio.transcript.delta", ["delta"])
shared("response.audio.transcript.done", [])
shared("response.compaction.compacting", ITEM_EVENT, sample={"item_id": "cmp_vec_0001"}, sec="§3.2 (Sep 2026)")

WS_ONLY: dict[str, dict] = {
    "response.steer.accepted": {
        "sec": "§3.3", "req": ["steer"], "opt": [],
        "schema": {"steer": {"$ref": "../defs/steer.json#/$defs/ref"}},
        "sample": {"steer": {"id": "steer_vec_0001", "previous_response_id": "resp_vec_0001"}},
    },
    "response.steer.pending": {
        "sec": "§3.3", "req": ["steer", "reason", "required_input"], "opt": [],
        "schema": {"steer": {"$ref": "../defs/steer.json#/$defs/ref"},
                   "required_input": {"type": "array", "items": {"$ref": "../defs/steer.json#/$defs/required_input"}}},
        "sample": {"steer": {"id": "steer_vec_0001", "previous_response_id": "resp_vec_0001"},
                   "required_input": [{"type": "function_call_output", "call_id": "call_vec_0001", "name": "get_weather"}]},
    },
    "response.steer.failed": {
        "sec": "§3.3", "req": ["steer", "error"], "opt": [],
        "schema": {"steer": {"$ref": "../defs/steer.json#/$defs/failed_ref"},
                   "error": {"$ref": "../defs/steer.json#/$defs/error"}},
        "sample": {"steer": {"id": "steer_vec_0001", "previous_response_id": "resp_vec_0001",
                             "input": [USER_MESSAGE]},
                   "error": {"type": "invalid_request_error", "code": "response_not_active",
                             "message": "The response is no longer accepting steering input."}},
    },
}
BETA: dict[str, dict] = {
    "response.inject.created": {"sec": "§3.3 (beta)", "req": ["response_id"], "opt": [], "schema": {}, "sample": {}},
    "response.inject.failed": {
        "sec": "§3.3 (beta)", "req": ["response_id", "input", "error"], "opt": [],
        "schema": {"input": {"type": "array", "items": {"$ref": "../defs/input-item.json"}},
                   "error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string", "description": "Known: response_already_completed, response_not_found; other codes are extensions."},
                                            "message": STR}}},
        "sample": {"input": [{"type": "function_call_output", "call_id": "call_vec_0200", "output": "{\"ok\":true}"}],
                   "error": {"code": "response_not_found", "message": "Response 'resp_vec_0200' not found."}},
    },
}

SERVER_SURFACE = {**{t: "shared" for t in SHARED}, "error": "websocket",
                  **{t: "websocket" for t in WS_ONLY}, **{t: "beta" for t in BETA}}
CLIENT_SURFACE = {"response.create": "websocket", "response.steer": "websocket", "response.inject": "beta"}


def field_schema(name: str, spec: dict) -> dict:
    return copy.deepcopy(spec["schema"].get(name, FIELDS[name][0] if name in FIELDS else STR))


def server_schema(t: str, spec: dict) -> dict:
    props = {"type": {"const": t},
             "sequence_number": {"$ref": COMMON + "sequence_number"},
             "stream_id": {"$ref": COMMON + "stream_id"},
             "agent": {"$ref": COMMON + "agent"}}
    for f in spec["req"] + spec["opt"]:
        props[f] = field_schema(f, spec)
    if t.endswith(".delta"):
        props["obfuscation"] = {"$ref": COMMON + "obfuscation"}
    return {
        "$schema": DRAFT,
        "$id": f"{BASE}server/{t}.json",
        "title": t,
        "description": f"Server event `{t}` (spec {spec['sec']}). Unknown fields are allowed; `stream_id` appears only on named lanes.",
        "type": "object",
        "required": ["type", "sequence_number"] + spec["req"],
        "properties": props,
    }


def error_schema() -> dict:
    return {
        "$schema": DRAFT,
        "$id": f"{BASE}server/error.json",
        "title": "error",
        "description": "WebSocket `error` event (spec §3.10); the shape lives in defs/ws-error.json.",
        "$ref": "../defs/ws-error.json",
    }


def client_schemas() -> dict[str, dict]:
    head = lambda t, desc: {"$schema": DRAFT, "$id": f"{BASE}client/{t}.json", "title": t, "description": desc}
    create = head("response.create",
                  "Client event `response.create` (spec §2.1): the create-response body flat next to `type`, plus the WebSocket-only `stream_id` and `generate`, and the beta `multi_agent`.")
    create.update({
        "$ref": "../defs/create-body.json",
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"const": "response.create"},
            "stream_id": {"$ref": COMMON + "client_stream_id"},
            "generate": {"type": "boolean", "description": "false = warm-up without generation (spec §4.7)."},
            "multi_agent": {"$ref": "../defs/create-body.json#/$defs/multi_agent"},
            "client_metadata": {"$ref": COMMON + "string_map"},
        },
    })
    steer = head("response.steer",
                 "Client event `response.steer` (spec §2.2). `stream_id` must not be sent (the target response decides the lane), so it is rejected here; other unknown fields are tolerated like everywhere else.")
    steer.update({
        "type": "object",
        "required": ["type", "previous_response_id", "input"],
        "properties": {
            "type": {"const": "response.steer"},
            "previous_response_id": {"type": "string", "minLength": 1},
            "input": {"$ref": "../defs/steer.json#/$defs/input"},
            "stream_id": {"not": {}, "description": "must not be sent on response.steer"},
        },
    })
    inject = head("response.inject", "Beta client event `response.inject` (spec §2.3, OpenAI-Beta: responses_multi_agent=v1).")
    inject.update({
        "type": "object",
        "required": ["type", "response_id", "input"],
        "properties": {
            "type": {"const": "response.inject"},
            "response_id": {"type": "string", "minLength": 1},
            "input": {"type": "array", "maxItems": 16384, "items": {"$ref": "../defs/input-item.json"}},
        },
    })
    return {"response.create": create, "response.steer": steer, "response.inject": inject}


DEFS = ["common", "event", "response", "usage", "output-item", "content-part", "annotation",
        "input-item", "tool", "create-body", "steer", "ws-error"]

# ---------------------------------------------------------------------------------------
# Vectors


def V(desc, t, inst, valid, pointer=None, rule=None, extension=False) -> dict:
    v = {"description": desc, "event_type": t, "instance": inst, "valid": valid}
    if pointer is not None:
        v["expect"] = {"pointer": pointer, "rule": rule}
    if extension:
        v["extension"] = True
    return v


def sample_value(name: str, spec: dict):
    if name in spec["sample"]:
        return copy.deepcopy(spec["sample"][name])
    return copy.deepcopy(FIELDS[name][1])


def wrong_value(name: str):
    if name in FIELDS and FIELDS[name][2] is not None:
        return FIELDS[name][2]
    return 12345 if name not in ("response", "item", "part", "steer", "error", "annotation", "required_input",
                                 "input", "output", "delta") else "not-the-right-type"


def server_vectors(t: str, spec: dict, seq: int = 3) -> list[dict]:
    inst = {"type": t}
    for f in spec["req"]:
        inst[f] = sample_value(f, spec)
    inst["sequence_number"] = seq
    out = [V("typical event", t, inst, True)]
    lane = dict(copy.deepcopy(inst), stream_id="lane_a")
    out.append(V("on a named lane (stream_id echoed)", t, lane, True))
    extra = dict(copy.deepcopy(inst), x_vendor_extension={"anything": [1, "two", None]})
    if t.endswith(".delta"):
        extra["obfuscation"] = "a1B2c3"
    out.append(V("unknown fields are tolerated", t, extra, True))
    for f in spec["opt"]:
        full = dict(copy.deepcopy(inst), **{f: sample_value(f, spec)})
        out.append(V(f"with optional {f}", t, full, True))
    # missing required field
    victim = next((f for f in spec["req"]), "sequence_number")
    broken = copy.deepcopy(inst)
    del broken[victim]
    out.append(V(f"missing required {victim}", t, broken, False, "/" + victim, "required"))
    # wrong type
    target = spec["req"][-1] if spec["req"] else "sequence_number"
    if target == victim and len(spec["req"]) > 1:
        target = spec["req"][0]
    if target == "sequence_number":
        wrong = dict(copy.deepcopy(inst), sequence_number="1")
    else:
        wrong = dict(copy.deepcopy(inst), **{target: wrong_value(target)})
    out.append(V(f"{target} has the wrong type", t, wrong, False, "/" + target, "type"))
    out.append(V("stream_id must be a string", t, dict(copy.deepcopy(inst), stream_id=7), False, "/stream_id", "type"))
    if spec["req"]:
        out.append(V("sequence_number is required", t, {k: v for k, v in inst.items() if k != "sequence_number"},
                     False, "/sequence_number", "required"))
    return out


def deep_set(obj, path, value):
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    if value is DELETE:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return obj


DELETE = object()


def special_server_vectors() -> dict[str, list[dict]]:
    s: dict[str, list[dict]] = {}

    def add(t, desc, inst, valid, pointer=None, rule=None):
        s.setdefault(t, []).append(V(desc, t, inst, valid, pointer, rule))

    comp = {"type": "response.completed", "response": RESPONSES["response.completed"], "sequence_number": 8}
    add("response.completed", "Response.status is a closed enum", deep_set(comp, ["response", "status"], "done"),
        False, "/response/status", "enum")
    add("response.completed", "Response.object must be \"response\"", deep_set(comp, ["response", "object"], "resp"),
        False, "/response/object", "const")
    add("response.completed", "usage.input_tokens is required", deep_set(comp, ["response", "usage", "input_tokens"], DELETE),
        False, "/response/usage/input_tokens", "required")
    add("response.completed", "usage.output_tokens_details.reasoning_tokens must be an integer",
        deep_set(comp, ["response", "usage", "output_tokens_details", "reasoning_tokens"], "0"),
        False, "/response/usage/output_tokens_details/reasoning_tokens", "type")
    add("response.completed", "usage without cache_write_tokens (older servers) is valid",
        deep_set(comp, ["response", "usage", "input_tokens_details", "cache_write_tokens"], DELETE), True)
    add("response.completed", "output message role must be assistant",
        deep_set(comp, ["response", "output", 0, "role"], "user"), False, "/response/output/0/role", "const")
    add("response.completed", "output_text part needs annotations",
        deep_set(comp, ["response", "output", 0, "content", 0, "annotations"], DELETE),
        False, "/response/output/0/content/0/annotations", "required")
    add("response.completed", "metadata values must be strings (pointer escapes '/')",
        deep_set(comp, ["response", "metadata"], {"a/b": 1}), False, "/response/metadata/a~1b", "type")
    add("response.completed", "metadata has at most 16 pairs",
        deep_set(comp, ["response", "metadata"], {f"k{i}": "v" for i in range(17)}), False, "/response/metadata", "maxProperties")
    add("response.completed", "unknown output item type is an extension",
        deep_set(comp, ["response", "output"], [MESSAGE_DONE, {"type": "x_vendor_item", "id": "xv_1", "payload": {}}]), True)
    add("response.completed", "Response.tools entries need a type",
        deep_set(comp, ["response", "tools"], [{"name": "f"}]), False, "/response/tools/0/type", "required")
    add("response.completed", "parallel_tool_calls must be a boolean",
        deep_set(comp, ["response", "parallel_tool_calls"], "yes"), False, "/response/parallel_tool_calls", "type")
    add("response.completed", "Response.id is required", deep_set(comp, ["response", "id"], DELETE),
        False, "/response/id", "required")
    inc = {"type": "response.incomplete", "response": RESPONSES["response.incomplete"], "sequence_number": 9}
    add("response.incomplete", "incomplete_details.reason steered (steering)",
        deep_set(inc, ["response", "incomplete_details"], {"reason": "steered"}), True)
    add("response.incomplete", "incomplete_details.reason is extensible",
        deep_set(inc, ["response", "incomplete_details"], {"reason": "interrupted"}), True)
    fail = {"type": "response.failed", "response": RESPONSES["response.failed"], "sequence_number": 4}
    add("response.failed", "Response.error needs a message", deep_set(fail, ["response", "error", "message"], DELETE),
        False, "/response/error/message", "required")
    add("response.failed", "Response.error.code is an open set", deep_set(fail, ["response", "error", "code"], "x_new_code"), True)
    cr = {"type": "response.created", "response": RESPONSES["response.created"], "sequence_number": 0}
    add("response.created", "temperature must be a number or null", deep_set(cr, ["response", "temperature"], "1"),
        False, "/response/temperature", "type")
    add("response.created", "created_at must be a number", deep_set(cr, ["response", "created_at"], "2026-01-01"),
        False, "/response/created_at", "type")
    add("response.created", "tool_choice string must be none/auto/required", deep_set(cr, ["response", "tool_choice"], "sometimes"),
        False, "/response/tool_choice", "enum")
    add("response.created", "tool_choice object naming a function", deep_set(cr, ["response", "tool_choice"], {"type": "function", "name": "record_nonces"}), True)

    add_ = {"type": "response.output_item.added", "output_index": 0, "sequence_number": 2}
    fc = {"id": "fc_vec_0001", "type": "function_call", "status": "in_progress", "arguments": "",
          "call_id": "call_vec_0001", "name": "get_weather"}
    add("response.output_item.added", "function_call item", dict(add_, item=fc), True)
    add("response.output_item.added", "function_call item needs call_id", dict(add_, item={k: v for k, v in fc.items() if k != "call_id"}),
        False, "/item/call_id", "required")
    add("response.output_item.added", "function_call arguments must be a JSON text, not an object", dict(add_, item=dict(fc, arguments={})),
        False, "/item/arguments", "type")
    add("response.output_item.added", "reasoning item", dict(add_, item={"id": "rs_vec_0001", "type": "reasoning", "summary": []}), True)
    add("response.output_item.added", "reasoning item needs summary", dict(add_, item={"id": "rs_vec_0001", "type": "reasoning"}),
        False, "/item/summary", "required")
    add("response.output_item.added", "custom_tool_call item",
        dict(add_, item={"id": "ctc_vec_0001", "type": "custom_tool_call", "call_id": "call_vec_0002", "name": "run", "input": ""}), True)
    add("response.output_item.added", "custom_tool_call item needs input",
        dict(add_, item={"id": "ctc_vec_0001", "type": "custom_tool_call", "call_id": "call_vec_0002", "name": "run"}),
        False, "/item/input", "required")
    add("response.output_item.added", "compaction item",
        dict(add_, item={"id": "cmp_vec_0001", "type": "compaction", "encrypted_content": "gAAAAB..."}), True)
    add("response.output_item.added", "compaction item needs encrypted_content",
        dict(add_, item={"id": "cmp_vec_0001", "type": "compaction"}), False, "/item/encrypted_content", "required")
    add("response.output_item.added", "web_search_call item (identifying fields)",
        dict(add_, item={"id": "ws_vec_0001", "type": "web_search_call", "status": "in_progress", "action": {"type": "search"}}), True)
    add("response.output_item.added", "web_search_call item needs status",
        dict(add_, item={"id": "ws_vec_0001", "type": "web_search_call"}), False, "/item/status", "required")
    add("response.output_item.added", "mcp_list_tools item without status",
        dict(add_, item={"id": "mcpl_vec_0001", "type": "mcp_list_tools", "server_label": "docs", "tools": []}), True)
    add("response.output_item.added", "message status is a closed enum",
        dict(add_, item=dict(MESSAGE_ADDED, status="started")), False, "/item/status", "enum")
    add("response.output_item.added", "message phase commentary", dict(add_, item=dict(MESSAGE_ADDED, phase="commentary")), True)
    add("response.output_item.added", "item needs a type", dict(add_, item={"id": "x"}), False, "/item/type", "required")

    cpa = {"type": "response.content_part.added", "item_id": "msg_vec_0001", "output_index": 0, "content_index": 0, "sequence_number": 3}
    add("response.content_part.added", "refusal part", dict(cpa, part={"type": "refusal", "refusal": ""}), True)
    add("response.content_part.added", "reasoning_text part", dict(cpa, part={"type": "reasoning_text", "text": ""}), True)
    add("response.content_part.added", "refusal part needs refusal", dict(cpa, part={"type": "refusal"}),
        False, "/part/refusal", "required")
    add("response.content_part.added", "output_index must not be negative", dict(cpa, output_index=-1, part=TEXT_PART),
        False, "/output_index", "minimum")
    ann = {"type": "response.output_text.annotation.added", "item_id": "msg_vec_0001", "output_index": 0,
           "content_index": 0, "annotation_index": 0, "sequence_number": 6}
    add("response.output_text.annotation.added", "annotation may be null", dict(ann, annotation=None), True)
    add("response.output_text.annotation.added", "file_citation needs file_id",
        dict(ann, annotation={"type": "file_citation", "filename": "a.txt", "index": 3}), False, "/annotation/file_id", "required")
    add("response.output_text.annotation.added", "unknown annotation type is an extension",
        dict(ann, annotation={"type": "x_vendor_citation", "ref": 1}), True)
    add("response.function_call_arguments.done", "name is required (2026 schema; older servers omit it)",
        {"type": "response.function_call_arguments.done", "item_id": "fc_vec_0001", "output_index": 0,
         "arguments": "{}", "sequence_number": 6}, False, "/name", "required")
    add("response.output_text.delta", "logprobs entries need token and logprob",
        {"type": "response.output_text.delta", "item_id": "msg_vec_0001", "output_index": 0, "content_index": 0,
         "delta": "Hi", "logprobs": [{"token": "Hi"}], "sequence_number": 4}, False, "/logprobs/0/logprob", "required")
    add("response.output_text.delta", "obfuscation must be a string",
        {"type": "response.output_text.delta", "item_id": "msg_vec_0001", "output_index": 0, "content_index": 0,
         "delta": "Hi", "logprobs": [], "obfuscation": 5, "sequence_number": 4}, False, "/obfuscation", "type")

    pend = {"type": "response.steer.pending", "sequence_number": 12,
            "steer": {"id": "steer_vec_0001", "previous_response_id": "resp_vec_0001"}, "reason": "waiting_for_required_input"}
    add("response.steer.pending", "reason is an extensible enum", dict(pend, reason="x_new_reason", required_input=[]), True)
    add("response.steer.pending", "all known required_input stubs", dict(pend, required_input=[
        {"type": "function_call_output", "call_id": "c1", "name": "f"},
        {"type": "custom_tool_call_output", "call_id": "c2"},
        {"type": "computer_call_output", "call_id": "c3"},
        {"type": "shell_call_output", "call_id": "c4"},
        {"type": "apply_patch_call_output", "call_id": "c5"},
        {"type": "tool_search_output", "call_id": "c6", "execution": "client"},
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1"}]), True)
    add("response.steer.pending", "function_call_output stub needs name",
        dict(pend, required_input=[{"type": "function_call_output", "call_id": "c1"}]), False, "/required_input/0/name", "required")
    add("response.steer.pending", "steer needs an id", dict(pend, steer={"previous_response_id": "resp_vec_0001"}, required_input=[]),
        False, "/steer/id", "required")
    sf = WS_ONLY["response.steer.failed"]["sample"]
    failed = {"type": "response.steer.failed", "sequence_number": 5, **copy.deepcopy(sf)}
    add("response.steer.failed", "failure before acceptance omits steer.id", deep_set(failed, ["steer", "id"], DELETE), True)
    add("response.steer.failed", "steering error code is extensible", deep_set(failed, ["error", "code"], "x_new_code"), True)
    add("response.steer.failed", "steering error type is invalid_request_error",
        deep_set(failed, ["error", "type"], "server_error"), False, "/error/type", "const")
    add("response.steer.failed", "the original input comes back", deep_set(failed, ["steer", "input"], DELETE),
        False, "/steer/input", "required")
    add("response.steer.accepted", "steer must be an object",
        {"type": "response.steer.accepted", "sequence_number": 4, "steer": "steer_vec_0001"}, False, "/steer", "type")
    injf = {"type": "response.inject.failed", "response_id": "resp_vec_0200", "sequence_number": 9, **copy.deepcopy(BETA["response.inject.failed"]["sample"])}
    add("response.inject.failed", "error needs a message", deep_set(injf, ["error", "message"], DELETE), False, "/error/message", "required")
    add("response.inject.failed", "agent (beta) is allowed", dict(injf, agent={"agent_name": "planner"}), True)
    add("response.inject.failed", "agent needs agent_name", dict(injf, agent={}), False, "/agent/agent_name", "required")

    done = {"type": "response.audio.done"}
    add("response.audio.done", "sequence_number 3.0 is an integer in JSON Schema", dict(done, sequence_number=3.0), True)
    add("response.audio.done", "a boolean is not an integer", dict(done, sequence_number=True), False, "/sequence_number", "type")
    add("response.audio.done", "sequence_number 1.5 is not an integer", dict(done, sequence_number=1.5), False, "/sequence_number", "type")

    # error
    err = {"type": "error", "status": 400, "error": {"type": "invalid_request_error", "code": "previous_response_not_found",
           "message": "Previous response with id 'resp_vec_9' not found.", "param": "previous_response_id"}}
    add("error", "previous_response_not_found", err, True)
    add("error", "on a named lane", dict(err, stream_id="main"), True)
    add("error", "param may be absent", deep_set(err, ["error", "param"], DELETE), True)
    add("error", "code may be null", deep_set(err, ["error", "code"], None), True)
    add("error", "unknown error code is an extension", deep_set(err, ["error", "code"], "connection_expiring"), True)
    add("error", "error.headers and sequence_number", dict(deep_set(err, ["error", "headers"], {"retry-after": "1"}), sequence_number=3), True)
    add("error", "legacy flat shape lacks the error object",
        {"type": "error", "code": "previous_response_not_found", "message": "Previous response not found.",
         "param": "previous_response_id"}, False, "/error", "required")
    add("error", "error.type is required", deep_set(err, ["error", "type"], DELETE), False, "/error/type", "required")
    add("error", "error.code is required (nullable)", deep_set(err, ["error", "code"], DELETE), False, "/error/code", "required")
    add("error", "error.message is required", deep_set(err, ["error", "message"], DELETE), False, "/error/message", "required")
    add("error", "status must be an integer", dict(err, status="400"), False, "/status", "type")
    add("error", "error.headers values are strings", deep_set(err, ["error", "headers"], {"retry-after": 1}),
        False, "/error/headers/retry-after", "type")
    add("error", "unknown fields are tolerated", dict(err, x_vendor_extension=True, headers={"x": "y"}), True)
    add("error", "stream_id must be a string", dict(err, stream_id=["main"]), False, "/stream_id", "type")
    return s


def client_vectors() -> dict[str, list[dict]]:
    s: dict[str, list[dict]] = {}

    def add(t, desc, inst, valid, pointer=None, rule=None):
        s.setdefault(t, []).append(V(desc, t, inst, valid, pointer, rule))

    c = "response.create"
    base = {"type": c, "model": "gpt-5.6", "store": False, "input": "Say OK."}
    add(c, "minimal turn", base, True)
    add(c, "only type (all body fields are optional at schema level)", {"type": c}, True)
    full = dict(base,
                stream_id="lane_a.1-B", generate=False, background=False,
                context_management=[{"type": "compaction", "compact_threshold": 20000}],
                include=["reasoning.encrypted_content", "message.output_text.logprobs"],
                input=[
                    {"role": "user", "content": "Hi"},
                    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
                        {"type": "input_file", "file_id": "file_vec_1"}]},
                    {"type": "function_call", "call_id": "call_vec_0001", "name": "get_weather", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_vec_0001", "output": "{\"t\":18}"},
                    {"type": "item_reference", "id": "msg_vec_0001"},
                    {"type": "reasoning", "id": "rs_vec_0001", "summary": [], "encrypted_content": "gAAA"},
                    {"type": "compaction", "encrypted_content": "gAAA"},
                ],
                instructions="You are terse.", max_output_tokens=1024, max_tool_calls=4,
                metadata={"case": "vec"}, moderation=None, parallel_tool_calls=True,
                previous_response_id="resp_vec_0001", prompt={"id": "pmpt_1", "version": "2", "variables": {"x": "y"}},
                prompt_cache_key="k", prompt_cache_options={"mode": "explicit", "ttl": "30m"}, prompt_cache_retention="24h",
                reasoning={"effort": "low", "summary": "auto"}, safety_identifier="user-123", service_tier="auto",
                stream=True, stream_options={"include_obfuscation": False}, temperature=0.2,
                text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}, "verbosity": "low"},
                tool_choice={"type": "function", "name": "get_weather"},
                tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True},
                       {"type": "web_search"}, {"type": "custom", "name": "run"}],
                top_logprobs=5, top_p=0.9, truncation="disabled", user="u1", client_metadata={"session": "s1"},
                multi_agent={"enabled": True, "max_concurrent_subagents": 2})
    add(c, "every body field, stream_id and generate", full, True)
    add(c, "unknown fields are tolerated", dict(base, x_vendor_extension={"a": 1}), True)
    add(c, "unknown tool type is an extension", dict(base, tools=[{"type": "x_vendor_tool", "config": {}}]), True)
    add(c, "conversation as {id}", dict(base, conversation={"id": "conv_1"}), True)
    add(c, "previous_response_id null starts a new chain", dict(base, previous_response_id=None), True)
    add(c, "type is required", {k: v for k, v in base.items() if k != "type"}, False, "/type", "required")
    add(c, "model must be a string", dict(base, model=5), False, "/model", "type")
    add(c, "store must be a boolean", dict(base, store="false"), False, "/store", "type")
    add(c, "generate must be a boolean", dict(base, generate="false"), False, "/generate", "type")
    add(c, "empty stream_id is invalid", dict(base, stream_id=""), False, "/stream_id", "minLength")
    add(c, "stream_id longer than 256 characters", dict(base, stream_id="a" * 257), False, "/stream_id", "maxLength")
    add(c, "stream_id with a space", dict(base, stream_id="bad lane"), False, "/stream_id", "pattern")
    add(c, "stream_id of 256 characters", dict(base, stream_id="a" * 256), True)
    add(c, "stream_id must be a string", dict(base, stream_id=1), False, "/stream_id", "type")
    add(c, "input must be a string or an array", dict(base, input={"role": "user"}), False, "/input", "type")
    add(c, "input message needs content", dict(base, input=[{"role": "user"}]), False, "/input/0/content", "required")
    add(c, "input message role is a closed enum", dict(base, input=[{"role": "robot", "content": "x"}]),
        False, "/input/0/role", "enum")
    add(c, "function_call_output needs call_id", dict(base, input=[{"type": "function_call_output", "output": "x"}]),
        False, "/input/0/call_id", "required")
    add(c, "temperature at most 2", dict(base, temperature=2.5), False, "/temperature", "maximum")
    add(c, "top_logprobs at most 20", dict(base, top_logprobs=21), False, "/top_logprobs", "maximum")
    add(c, "metadata at most 16 pairs", dict(base, metadata={f"k{i}": "v" for i in range(17)}), False, "/metadata", "maxProperties")
    add(c, "metadata value at most 512 characters", dict(base, metadata={"k": "v" * 513}), False, "/metadata/k", "maxLength")
    add(c, "context_management needs at least one entry", dict(base, context_management=[]), False, "/context_management", "minItems")
    add(c, "compact_threshold at least 1000", dict(base, context_management=[{"type": "compaction", "compact_threshold": 999}]),
        False, "/context_management/0/compact_threshold", "minimum")
    add(c, "service_tier is a closed enum", dict(base, service_tier="turbo"), False, "/service_tier", "enum")
    add(c, "reasoning.effort is a closed enum", dict(base, reasoning={"effort": "extreme"}), False, "/reasoning/effort", "enum")
    add(c, "tools must be an array", dict(base, tools={"type": "function"}), False, "/tools", "type")
    add(c, "function tool needs a name", dict(base, tools=[{"type": "function"}]), False, "/tools/0/name", "required")
    add(c, "tool_choice function needs a name", dict(base, tool_choice={"type": "function"}), False, "/tool_choice/name", "required")
    add(c, "include is a closed enum", dict(base, include=["everything"]), False, "/include/0", "enum")
    add(c, "json_schema text format needs a schema", dict(base, text={"format": {"type": "json_schema", "name": "x"}}),
        False, "/text/format/schema", "required")
    add(c, "background must be a boolean or null", dict(base, background="no"), False, "/background", "type")
    add(c, "multi_agent needs enabled", dict(base, multi_agent={}), False, "/multi_agent/enabled", "required")

    t = "response.steer"
    st = {"type": t, "previous_response_id": "resp_vec_0001", "input": "Keep the scope small."}
    add(t, "string input", st, True)
    add(t, "array of user messages", dict(st, input=[USER_MESSAGE, {"role": "user", "content": "and fast"}]), True)
    add(t, "unknown fields are tolerated", dict(st, x_vendor_extension=1), True)
    add(t, "previous_response_id is required", {"type": t, "input": "x"}, False, "/previous_response_id", "required")
    add(t, "input is required", {"type": t, "previous_response_id": "resp_vec_0001"}, False, "/input", "required")
    add(t, "previous_response_id must be a string", dict(st, previous_response_id=1), False, "/previous_response_id", "type")
    add(t, "empty input array", dict(st, input=[]), False, "/input", "minItems")
    add(t, "only user messages", dict(st, input=[{"role": "assistant", "content": "x"}]), False, "/input/0/role", "const")
    add(t, "no tool outputs", dict(st, input=[{"type": "function_call_output", "call_id": "c", "output": "x", "role": "user", "content": "x"}]),
        False, "/input/0/type", "const")
    add(t, "only input_text/input_image/input_file parts",
        dict(st, input=[{"role": "user", "content": [{"type": "output_text", "text": "x", "annotations": []}]}]),
        False, "/input/0/content/0/type", "enum")
    add(t, "stream_id must not be sent", dict(st, stream_id="main"), False, "/stream_id", "not")

    t = "response.inject"
    inj = {"type": t, "response_id": "resp_vec_0200",
           "input": [{"type": "function_call_output", "call_id": "call_vec_0200", "output": "{\"ok\":true}"}]}
    add(t, "tool outputs", inj, True)
    add(t, "unknown fields are tolerated", dict(inj, x_vendor_extension=[]), True)
    add(t, "response_id is required", {"type": t, "input": []}, False, "/response_id", "required")
    add(t, "input must be an array", dict(inj, input="text"), False, "/input", "type")
    add(t, "input items are checked", dict(inj, input=[{"type": "function_call_output", "output": "x"}]),
        False, "/input/0/call_id", "required")
    return s


def extension_vectors() -> list[dict]:
    out = []
    for t, inst in [
        ("response.done", {"type": "response.done", "response": {"id": "resp_vec_1"}}),
        ("codex.rate_limits", {"type": "codex.rate_limits", "primary": {"used_percent": 3.0}}),
        ("response.interrupt.accepted", {"type": "response.interrupt.accepted", "response_id": "resp_vec_1"}),
        ("response.reasoning.delta", {"type": "response.reasoning.delta", "delta": "x", "sequence_number": 3}),
        ("x.vendor.event", {"type": "x.vendor.event"}),
        ("response.append", {"type": "response.append", "input": []}),
    ]:
        out.append(V(f"unknown type {t} is an extension, not a failure", t, inst, True, extension=True))
    out.append(V("an event needs a type", None, {"response": {}}, False, "/type", "required"))
    out.append(V("type must be a string", None, {"type": 5}, False, "/type", "type"))
    out.append(V("an event is a JSON object", None, ["response.created"], False, "", "type"))
    out.append(V("a JSON string is not an event", None, "response.created", False, "", "type"))
    return out


# ---------------------------------------------------------------------------------------


def dump(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    files: dict[Path, str] = {}
    index = {"version": 1, "base": BASE, "events": {}, "defs": {}, "vectors": []}
    server = {**SHARED, **WS_ONLY, **BETA}
    specials = special_server_vectors()
    for t, spec in server.items():
        files[ROOT / "server" / f"{t}.json"] = dump(server_schema(t, spec))
    files[ROOT / "server" / "error.json"] = dump(error_schema())
    for t in ["error", *server]:
        index["events"][t] = {"direction": "server", "schema": f"server/{t}.json", "surface": SERVER_SURFACE[t]}
    for t, sch in client_schemas().items():
        files[ROOT / "client" / f"{t}.json"] = dump(sch)
        index["events"][t] = {"direction": "client", "schema": f"client/{t}.json", "surface": CLIENT_SURFACE[t]}
    for d in DEFS:
        index["defs"][d] = f"defs/{d}.json"
    vec: dict[str, list] = {}
    for t, spec in server.items():
        vec[f"server/{t}"] = server_vectors(t, spec, seq=0 if t == "response.created" else 3) + specials.get(t, [])
    vec["server/error"] = specials["error"]
    for t, vs in client_vectors().items():
        vec[f"client/{t}"] = vs
    vec["extensions"] = extension_vectors()
    for name, vs in vec.items():
        files[ROOT / "vectors" / f"{name}.json"] = dump(vs)
        index["vectors"].append(f"vectors/{name}.json")
    files[ROOT / "index.json"] = dump(index)
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if check and stale:
        print("out of date (run python schemas/tools/build.py):", *map(str, stale), sep="\n  ")
        return 1
    if not check:
        print(f"wrote {len(stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
