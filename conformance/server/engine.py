"""The deterministic engine that stands in for a model (docs/design.md "Model-free oracles").

Pure: a validated create plus the carried context in, output items and usage out.  The
rules (documented in the README's "Reference server" section):

* Tokens are words and punctuation marks: ``\\w+|[^\\w\\s]``.
* ``usage.input_tokens`` counts the whole context the turn sees: this turn's instructions,
  every carried item (inputs *and* outputs of the chain) and the new input.
* A function call is made when a function tool is offered and ``tool_choice`` allows it:
  forced ``{type:"function", name}`` and ``required`` always call; ``auto`` calls unless the
  new input ends with a tool output; ``none`` never calls.
* Context probe: a forced function whose name starts with ``record_nonces`` gets
  ``{"nonces": [...]}`` — every nonce-like token (``\\b[A-Z]{3,12}-[0-9]{4,8}\\b``) of the full
  context, in order of first appearance, without duplicates.
* Triggers in the last user message of the new input: ``[[refuse]]`` (refusal),
  ``[[fail]]`` (``response.failed``, ``server_error``), ``[[multi]]`` (two messages),
  ``[[parallel]]`` (one call per offered function tool), ``[[misaligned]]`` (a 403
  ``misalignment_policy_violation`` before streaming) and ``[[misaligned-mid]]`` (the same
  block as an ``error`` after the first delta; §3.10).
* ``reasoning.summary`` set -> a reasoning item with one summary part comes first.
* ``max_output_tokens`` caps reasoning + visible tokens; the message that crosses it is
  cut there and ends ``incomplete``, and so does the response.
"""

from __future__ import annotations

import base64
import enum
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .errors import ApiError, misalignment_blocked

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
NONCE_RE = re.compile(r"\b[A-Z]{3,12}-[0-9]{4,8}\b")
COMPACTION_PREFIX = "rsc1."

# keys whose values are identifiers or binary payloads, not text the "model" reads
_SKIP_KEYS = frozenset(
    {"type", "id", "call_id", "role", "status", "phase", "image_url", "file_data", "file_id",
     "file_url", "detail", "encrypted_content", "annotations", "logprobs", "item_id"}
)


class TurnStatus(enum.StrEnum):
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"


@dataclass
class Generation:
    output: list
    status: TurnStatus
    usage: dict | None
    incomplete_details: dict | None = None
    error: dict | None = None
    blocked_mid_stream: ApiError | None = None  # the [[misaligned-mid]] trigger's error


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def encode_compaction(texts: Sequence[str]) -> str:
    raw = json.dumps({"v": 1, "texts": list(texts)}, separators=(",", ":")).encode()
    return COMPACTION_PREFIX + base64.urlsafe_b64encode(raw).decode()


def decode_compaction(blob) -> list[str]:
    if not isinstance(blob, str) or not blob.startswith(COMPACTION_PREFIX):
        return []
    try:
        data = json.loads(base64.urlsafe_b64decode(blob[len(COMPACTION_PREFIX):].encode()))
        texts = data.get("texts", [])
        return [t for t in texts if isinstance(t, str)]
    except Exception:
        return []


def _walk(value, out: list) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _SKIP_KEYS:
                _walk(v, out)
    elif isinstance(value, list):
        for v in value:
            _walk(v, out)


def item_texts(item) -> list[str]:
    """The text an item contributes to the context (ids and binary payloads excluded)."""
    out: list[str] = []
    if not isinstance(item, dict):
        return out
    if item.get("type") == "compaction":
        return decode_compaction(item.get("encrypted_content"))
    _walk(item, out)
    return out


def context_texts(instructions: str | None, items: Iterable) -> list[str]:
    texts = [instructions] if instructions else []
    for item in items:
        texts.extend(item_texts(item))
    return texts


def tokens_of(texts: Iterable[str]) -> int:
    return sum(count_tokens(t) for t in texts)


def find_nonces(texts: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for t in texts:
        for m in NONCE_RE.findall(t):
            seen.setdefault(m, None)
    return list(seen)


def _is_user_message(item) -> bool:
    return isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message"


def last_user_text(items: Sequence) -> str:
    for item in reversed(items):
        if _is_user_message(item):
            return " ".join(item_texts(item))
    return ""


def check_tool_outputs(carried: Sequence, new_items: Sequence) -> None:
    """Every function_call_output must answer a function_call of the context (400 otherwise)."""
    known: set | None = None
    for index, item in enumerate(new_items):
        if not isinstance(item, dict):
            continue
        item_type = item.get("type")
        if item_type == "function_call" or item_type == "custom_tool_call":
            if known is None:
                known = _call_ids(carried)
            known.add(item.get("call_id"))
        elif item_type == "function_call_output" or item_type == "custom_tool_call_output":
            if known is None:
                known = _call_ids(carried)
            call_id = item.get("call_id")
            if call_id not in known:
                raise ApiError(
                    400, None,
                    f"No tool call found for function call output with call_id {call_id}.",
                    "input",
                )


def _call_ids(items: Sequence) -> set:
    return {
        it.get("call_id") for it in items
        if isinstance(it, dict) and it.get("type") in ("function_call", "custom_tool_call")
    }


def _value_for(schema, user_text: str):
    if not isinstance(schema, dict):
        return user_text[:64]
    enum_values = schema.get("enum")
    if isinstance(enum_values, list) and enum_values:
        return enum_values[0]
    if "const" in schema:
        return schema["const"]
    schema_type = schema.get("type")
    if isinstance(schema_type, list):
        schema_type = next((x for x in schema_type if x != "null"), "null")
    if schema_type == "integer" or schema_type == "number":
        return 0
    if schema_type == "boolean":
        return False
    if schema_type == "array":
        return []
    if schema_type == "object":
        return _args_for_schema(schema, user_text)
    if schema_type == "null":
        return None
    return user_text[:64] if user_text else "value"


def _args_for_schema(params, user_text: str) -> dict:
    if not isinstance(params, dict):
        return {}
    props = params.get("properties")
    if not isinstance(props, dict):
        return {}
    required = params.get("required")
    names = [n for n in props if not isinstance(required, list) or n in required]
    return {n: _value_for(props[n], user_text) for n in names}


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _truncate(text: str, budget: int) -> tuple[str, int, bool]:
    """(text cut after ``budget`` tokens, tokens kept, whether it was cut)."""
    spans = [m.end() for m in TOKEN_RE.finditer(text)]
    if len(spans) <= budget:
        return text, len(spans), False
    if budget <= 0:
        return "", 0, True
    return text[: spans[budget - 1]], budget, True


def _function_tools(tools: Sequence) -> list:
    return [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]


def _calls_to_make(req, new_items: Sequence, user_text: str, honour_forced: bool = True) -> list[dict]:
    """The function tools to call this turn (empty: answer with text)."""
    functions = _function_tools(req.tools)
    choice = req.tool_choice
    if not functions or choice == "none":
        return []
    if isinstance(choice, dict):
        ctype = choice.get("type")
        if ctype == "function":
            if not honour_forced:  # the forced-tool-ignored defect: answer with text
                return []
            name = choice.get("name")
            return [t for t in functions if t.get("name") == name][:1]
        if ctype == "allowed_tools":
            allowed = {  # validated: an array; names that are not strings match no function tool
                t.get("name") for t in choice.get("tools") or ()
                if isinstance(t, dict) and isinstance(t.get("name"), str)
            }
            functions = [t for t in functions if t.get("name") in allowed]
            if not functions:
                return []
            mode = "required" if choice.get("mode") == "required" else "auto"
        else:
            return []  # hosted or custom tool choices: this engine answers with text
    else:
        mode = choice
    if mode == "auto":
        last = new_items[-1] if new_items else None
        if isinstance(last, dict) and last.get("type") in ("function_call_output", "custom_tool_call_output"):
            return []
    if "[[parallel]]" in user_text and req.parallel_tool_calls:
        return functions
    return functions[:1]


def _tool_name_for(call_id, items: Sequence) -> str:
    for it in reversed(items):
        if isinstance(it, dict) and it.get("type") == "function_call" and it.get("call_id") == call_id:
            return str(it.get("name"))
    return "tool"


REPLY_TAIL = "This answer follows fixed rules, not a model."


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _reply_text(new_items: Sequence, full_items: Sequence, user_turns: int) -> str:
    last = new_items[-1] if new_items else None
    if isinstance(last, dict) and last.get("type") in ("function_call_output", "custom_tool_call_output"):
        output = " ".join(item_texts({"output": last.get("output")}))
        snippet, _, cut = _truncate(output, 8)
        name = _tool_name_for(last.get("call_id"), full_items)
        return (f"Reference reply to turn {user_turns}: the tool {name} returned "
                f"{snippet}{'…' if cut else ''}. {REPLY_TAIL}")
    count = len(full_items)
    return (f"Reference reply to turn {user_turns}: {count} context item{'' if count == 1 else 's'} seen. "
            f"{REPLY_TAIL}")


def generate(req, carried: Sequence, *, new_id: Callable[[str], str], carried_cached: bool = False,
             count_history: bool = True, honour_forced: bool = True,
             honour_max_output: bool = True) -> Generation:
    """Run one turn. ``carried`` is the chain's context (earlier inputs and outputs).

    ``count_history``, ``honour_forced`` and ``honour_max_output`` are False only under the
    defects that break those rules."""
    new_items = req.input_items
    carried_texts = context_texts(None, carried)
    new_texts = context_texts(req.instructions, new_items)
    carried_tokens = tokens_of(carried_texts)
    input_tokens = tokens_of(new_texts) + (carried_tokens if count_history else 0)
    cached = carried_tokens if (carried_cached and count_history) else 0

    def usage(out_tokens: int, reasoning_tokens: int) -> dict:
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + out_tokens,
        }

    if not req.generate:
        return Generation([], TurnStatus.COMPLETED, usage(0, 0))

    user_text = last_user_text(new_items)
    if "[[misaligned]]" in user_text:
        raise misalignment_blocked("[[misaligned]]")
    if "[[fail]]" in user_text:
        return Generation(
            [], TurnStatus.FAILED, None,
            error={"code": "server_error",
                   "message": "The reference server failed this response on request (the [[fail]] trigger)."},
        )

    full_items = list(carried) + list(new_items)
    user_turns = sum(1 for it in full_items if _is_user_message(it))
    budget = req.max_output_tokens if (req.max_output_tokens is not None and honour_max_output) else 1 << 30
    output: list = []
    out_tokens = 0
    reasoning_tokens = 0
    status = TurnStatus.COMPLETED

    calls = _calls_to_make(req, new_items, user_text, honour_forced)
    refuse = "[[refuse]]" in user_text

    summary_mode = (req.reasoning or {}).get("summary")
    if summary_mode:
        kind = "function call" if calls else ("refusal" if refuse else "text reply")
        summary = (f"Planning a {kind}: the new input holds {_items(len(new_items))} and the "
                   f"context {_items(len(full_items))}.")
        reasoning_tokens = count_tokens(summary)
        out_tokens += reasoning_tokens
        output.append({"id": new_id("rs"), "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": summary}]})

    if calls:
        texts = None
        for tool in calls:
            name = tool["name"]
            if name.startswith("record_nonces") and isinstance(req.tool_choice, dict):
                if texts is None:
                    texts = context_texts(req.instructions, full_items)
                args = {"nonces": find_nonces(texts)}
            else:
                args = _args_for_schema(tool.get("parameters"), user_text)
            arguments = _dumps(args)
            out_tokens += count_tokens(arguments)
            output.append({"id": new_id("fc"), "type": "function_call", "status": "completed",
                           "arguments": arguments, "call_id": new_id("call"), "name": name})
    else:
        if refuse:
            texts = [("refusal", "I can't help with that request; the [[refuse]] trigger asked me to refuse.")]
        else:
            texts = [("output_text", _reply_text(new_items, full_items, user_turns))]
            if "[[multi]]" in user_text:
                texts.append(("output_text", f"Second message of turn {user_turns}: several output items "
                                             f"were requested with the [[multi]] trigger."))
        for kind, text in texts:
            remaining = budget - out_tokens
            text, used, cut = _truncate(text, remaining)
            out_tokens += used
            if kind == "refusal":
                part = {"type": "refusal", "refusal": text}
            else:
                part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            output.append({"id": new_id("msg"), "type": "message",
                           "status": "incomplete" if cut else "completed",
                           "content": [part], "role": "assistant"})
            if cut:
                status = TurnStatus.INCOMPLETE
                break

    gen = Generation(output, status, usage(out_tokens, reasoning_tokens))
    if "[[misaligned-mid]]" in user_text:
        gen.blocked_mid_stream = misalignment_blocked("[[misaligned-mid]]")
    if status is TurnStatus.INCOMPLETE:
        gen.incomplete_details = {"reason": "max_output_tokens"}
    return gen


def message_resource(item: dict, new_id: Callable[[str], str]) -> dict:
    """A kept input message as a Message resource (``id``, ``status``, content parts), the shape
    of the Open Responses ``CompactResource`` output and of OpenAI's own example (spec §5.1)."""
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    out = {"id": item.get("id") or new_id("msg"), "type": "message", "status": item.get("status") or "completed"}
    out.update((k, v) for k, v in item.items() if k not in ("id", "type", "status", "content"))
    out["content"] = content
    return out


def compact(instructions: str | None, items: Sequence, new_id: Callable[[str], str],
            drop_nonces: bool = False, items_as_given: bool = False) -> tuple[list, int, int]:
    """The compacted window for POST /responses/compact: user messages kept (as Message
    resources), every other item folded into one ``compaction`` item whose
    ``encrypted_content`` this engine can read back (so nonces survive compaction).  Returns
    (output, input_tokens, output_tokens).  ``drop_nonces`` (the compaction-drops-context
    defect) strips nonce-like codes from what is folded; ``items_as_given`` (the
    compact-items-as-given defect) echoes the kept messages as the client sent them."""
    kept = [it for it in items if _is_user_message(it)]
    folded: list[str] = []
    for it in items:
        if not _is_user_message(it):
            folded.extend(item_texts(it))
    if drop_nonces:
        folded = [NONCE_RE.sub("", t) for t in folded]
    blob = encode_compaction(folded)
    if items_as_given:
        output = [dict(it) for it in kept]
        for it in output:
            it.setdefault("type", "message")
    else:
        output = [message_resource(it, new_id) for it in kept]
    output.append({"id": new_id("cmp"), "type": "compaction", "encrypted_content": blob})
    in_tokens = tokens_of(context_texts(instructions, items))
    out_tokens = tokens_of(folded)
    return output, in_tokens, out_tokens
