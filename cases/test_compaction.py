"""Compaction: spec §4.8 (items 43-44).

Server-side compaction is a ``context_management`` entry on an ordinary ``response.create``
and must not disturb chaining. Standalone compaction is HTTP only: ``POST
{http_base}/responses/compact`` returns ``{id, object: "response.compaction", created_at,
output, usage}``, and its ``output`` (all user messages, then one ``compaction`` item) is sent
unchanged as the input of a new chain on the socket.

Model-free oracles: a nonce the client wrote in a *user* message stays plain text in the
compacted window, so the record_nonces probe on the new chain is as model-free as any other.
A nonce that only an *assistant* message carried ends up inside the encrypted compaction
item; on a real target only the model can read that back, so it is asserted only where the
profile claims the deterministic reference engine (capability ``reference_engine``: its
compaction is lossless by design) and merely reported elsewhere.
"""

from __future__ import annotations

import json

import pytest

from conformance.casekit import PROMPT, TURN_BUDGET, turn_budget
from conformance.client import HarnessError, http_request
from conformance.probes import PROBE_PROMPT, probe_fields, recorded_nonces, seen
from conformance.schemas import P_OPEN, schemas_for

CONTEXT_MANAGEMENT = [{"type": "compaction", "compact_threshold": 1000}]

def _budget_problem(turn, budget: int, what: str) -> None:
    """A turn cut by max_output_tokens before it did its job is a budget problem (ERROR)."""
    reason = ((turn.response or {}).get("incomplete_details") or {}).get("reason")
    if turn.status == "incomplete" and reason == "max_output_tokens":
        raise HarnessError(f"budget: {budget} output tokens were not enough for {what}; "
                           "raise --max-output-tokens")


def _probe(conn, target, **fields):
    return conn.turn(**probe_fields(target, store=False, **fields))


def _compact_url(target) -> str:
    url = target.http_url("/responses/compact")
    if url is None:
        pytest.skip("the target's HTTP API base is unknown (the socket URL does not end in /responses); "
                    "pass --target as the http(s) API base URL to check POST /responses/compact")
    return url


def _compact(target, items: list[dict]):
    """POST /responses/compact; a key or rate-limit problem cannot be judged (ERROR)."""
    res = http_request(target, "POST", _compact_url(target), {"model": target.model, "input": items})
    if res.status in (401, 403, 429):
        raise HarnessError(f"POST /responses/compact answered HTTP {res.status} (key or rate limit): "
                           f"{res.body[:200]}")
    return res


def _conversation(user_nonce: str, assistant_nonce: str) -> list[dict]:
    return [
        {"role": "user", "content": f"Please keep this code: {user_nonce}. {PROMPT}"},
        {"role": "assistant", "content": f"ok. I also noted the reference {assistant_nonce}."},
        {"role": "user", "content": "Thanks. Nothing else for now."},
    ]


@pytest.mark.clause("COMPACT-CONTEXT-MANAGEMENT")
@pytest.mark.max_requests(creates=2)
def test_context_management_turn_chains(target, connect, expect, nonce):
    conn = connect()
    first = conn.turn(input=f"Please keep this code: {nonce}. {PROMPT}", context_management=CONTEXT_MANAGEMENT,
                      store=False, max_output_tokens=turn_budget(target))
    _budget_problem(first, TURN_BUDGET, "a one-word reply")
    expect("COMPACT-CONTEXT-MANAGEMENT", first.status == "completed", first,
           "a response.create with context_management [{type: compaction}] did not complete")
    # clients resend their settings on every turn (§2.1), context_management included
    second = _probe(conn, target, previous_response_id=first.response_id,
                    context_management=CONTEXT_MANAGEMENT)
    expect("COMPACT-CONTEXT-MANAGEMENT", second.status == "completed", second,
           "continuing from a response created with context_management did not complete")
    recorded = recorded_nonces(second)
    expect("COMPACT-CONTEXT-MANAGEMENT", seen(recorded, nonce),
           f"recorded {recorded}", f"the continuation did not see the first turn (nonce {nonce} not recorded)")


@pytest.mark.clause("COMPACT-ENDPOINT-SHAPE")
@pytest.mark.max_requests(creates=0, http=1)
def test_compact_endpoint_shape(target, expect, nonce_factory):
    res = _compact(target, _conversation(nonce_factory(), nonce_factory()))
    expect("COMPACT-ENDPOINT-SHAPE", res.status == 200, f"HTTP {res.status} {res.body[:300]}",
           f"POST /responses/compact with model and input answered HTTP {res.status}")
    body = res.json()
    expect("COMPACT-ENDPOINT-SHAPE", isinstance(body, dict), res.body[:300], "the body is not a JSON object")
    expect("COMPACT-ENDPOINT-SHAPE", isinstance(body.get("id"), str) and body["id"] != "", body.get("id"),
           "id is missing or not a non-empty string")
    expect("COMPACT-ENDPOINT-SHAPE", body.get("object") == "response.compaction", body.get("object"),
           f"object is {body.get('object')!r}, expected 'response.compaction'")
    created = body.get("created_at")
    expect("COMPACT-ENDPOINT-SHAPE", isinstance(created, (int, float)) and not isinstance(created, bool),
           created, "created_at is missing or not a number (unix seconds)")
    output = body.get("output")
    expect("COMPACT-ENDPOINT-SHAPE", isinstance(output, list), str(output)[:300], "output is not an array")
    compactions = [i for i in output if isinstance(i, dict) and i.get("type") == "compaction"]
    expect("COMPACT-ENDPOINT-SHAPE", len(compactions) >= 1, [i.get("type") if isinstance(i, dict) else i
                                                             for i in output],
           "output holds no compaction item")
    schemas = schemas_for(target.profile)
    if schemas.variant == P_OPEN:
        # the Open Responses CompactResource: kept messages are Message resources (§5.1)
        issues = schemas.validate_def("compact-resource", body)
        expect("COMPACT-ENDPOINT-SHAPE", not issues, [str(i) for i in issues[:3]],
               "the body does not match the Open Responses CompactResource (P-open, §5.1)")
    for item in compactions:
        issues = schemas.validate_def("output-item", item)
        expect("COMPACT-ENDPOINT-SHAPE", not issues, issues[:3],
               "the compaction item does not match its schema (type, id, encrypted_content)")
    usage = body.get("usage")
    issues = schemas.validate_def("usage", usage) if isinstance(usage, dict) else ["missing"]
    expect("COMPACT-ENDPOINT-SHAPE", not issues, issues[:3], "usage is missing or not a usage object")


@pytest.mark.clause("COMPACT-NEW-CHAIN")
@pytest.mark.max_requests(creates=1, http=1)
def test_compacted_window_starts_new_chain(target, connect, expect, nonce_factory):
    said, folded = nonce_factory(), nonce_factory()
    res = _compact(target, _conversation(said, folded))
    window = (res.json() or {}).get("output") if res.status == 200 and isinstance(res.json(), dict) else None
    if not isinstance(window, list) or not window:
        raise HarnessError(f"cannot judge: POST /responses/compact gave no window to start from "
                           f"(HTTP {res.status} {res.body[:200]})")

    conn = connect()
    turn = _probe(conn, target, input=window + [{"role": "user", "content": PROBE_PROMPT}])
    expect("COMPACT-NEW-CHAIN", turn.status == "completed", turn,
           "a new chain whose input is the compacted window (unchanged) plus a new message did not complete")
    recorded = recorded_nonces(turn)

    # the user-message nonce is plain text in the window when the server kept the user
    # messages (as OpenAI's does): then recording it needs no model judgement
    plain = json.dumps([i for i in window if not (isinstance(i, dict) and i.get("type") == "compaction")])
    if said in plain:
        expect("COMPACT-NEW-CHAIN", seen(recorded, said), f"recorded {recorded}",
               f"the new chain did not see a user message of the compacted window (nonce {said})")
    else:
        expect.info(f"the compacted window keeps no user message in plain text; nonce {said} "
                     f"{'was' if seen(recorded, said) else 'was not'} recalled from the compaction item",
                     "COMPACT-NEW-CHAIN")
    if target.has("reference_engine"):   # its compaction is lossless by design
        expect("COMPACT-NEW-CHAIN", seen(recorded, folded), f"recorded {recorded}",
               f"the new chain did not see the content folded into the compaction item (nonce {folded})")
    else:
        expect.info(f"nonce {folded} (only inside the compaction item) "
                     f"{'was' if seen(recorded, folded) else 'was not'} recalled", "COMPACT-NEW-CHAIN")
