"""The nonce probe: the model-free oracle for context carry-over (docs/design.md, "Model-free oracles").

A case plants a nonce-like code (``\\b[A-Z]{3,12}-[0-9]{4,8}\\b``, e.g. ``KIWI-4821``) in an early
turn and later forces a function whose name starts with ``record_nonces``; the call's arguments
must list the code if the turn saw that context (spec §4.5 item 24). Real models do this
reliably; the reference server's engine does it by rule. Checks use membership, never equality:
a model may add codes or decorate an entry.

A probe turn that ran but made no readable ``record_nonces`` call says nothing about the context:
that is ``HarnessError`` (verdict ERROR); ignoring a forced tool is TURN-FUNCTION-CALL's business.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from typing import Any

from conformance.client import HarnessError, Turn

NONCE_RE = re.compile(r"\b[A-Z]{3,12}-[0-9]{4,8}\b")


def new_nonce() -> str:
    """A fresh nonce-like token (``\\b[A-Z]{3,12}-[0-9]{4,8}\\b``), e.g. ``QZVKE-48213``."""
    letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(5))
    digits = "".join(secrets.choice(string.digits) for _ in range(5))
    token = f"{letters}-{digits}"
    assert NONCE_RE.fullmatch(token)
    return token


# the forced call must be able to finish (reasoning models spend tokens first)
PROBE_BUDGET = 256
PROBE_TOOL = {
    "type": "function",
    "name": "record_nonces",
    # worded so that the description itself holds nothing nonce-like
    "description": "Record every code made of 3 to 12 capital letters, a hyphen and 4 to 8 digits "
                   "that appears anywhere in this conversation.",
    "parameters": {"type": "object",
                   "properties": {"nonces": {"type": "array", "items": {"type": "string"}}},
                   "required": ["nonces"], "additionalProperties": False},
}
FORCE_PROBE = {"type": "function", "name": "record_nonces"}
PROBE_PROMPT = ("Call record_nonces with every code made of capital letters, a hyphen and digits "
                "that appears anywhere in this conversation.")


def plant(nonce: str) -> str:
    """A user message that puts ``nonce`` into the context and asks for a one-word reply."""
    return f"Remember the code {nonce}. Reply with the single word: ok"


def probe_fields(target: Any, **fields: Any) -> dict:
    """``response.create`` fields for a probe turn; ``fields`` add to or override them."""
    out = {"input": PROBE_PROMPT, "tools": [PROBE_TOOL], "tool_choice": FORCE_PROBE,
           "max_output_tokens": max(target.max_output_tokens or 0, PROBE_BUDGET)}
    out.update(fields)
    return out


def recorded_nonces(turn: Turn) -> list[str]:
    """The codes listed by the turn's ``record_nonces`` call (HarnessError when there is none)."""
    calls = [c for c in turn.function_calls if str(c.get("name", "")).startswith("record_nonces")]
    if not calls:
        if turn.status == "incomplete":
            raise HarnessError(f"budget: the probe turn ended incomplete before its record_nonces call "
                               f"({PROBE_BUDGET} output tokens); raise --max-output-tokens: {turn.summary()}")
        raise HarnessError(f"the probe turn made no record_nonces call although tool_choice forced it: "
                           f"{turn.summary()}")
    try:
        args = json.loads(calls[0].get("arguments") or "")
    except ValueError:
        raise HarnessError(f"record_nonces arguments are not JSON: {calls[0].get('arguments')!r:.200}") from None
    nonces = args.get("nonces") if isinstance(args, dict) else None
    if not isinstance(nonces, list):
        raise HarnessError(f"record_nonces arguments hold no nonces list: {args!r:.200}")
    return [str(n) for n in nonces]


def seen(nonces: list[str], nonce: str) -> bool:
    return any(nonce in n for n in nonces)
