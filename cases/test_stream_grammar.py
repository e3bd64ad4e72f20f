"""Event schemas and the streaming grammar of one response: spec §3.1-3.9 (event shapes,
lane tagging, extensions) and §4.3 items 11-18 (created first, item and part lifecycle,
indexes, deltas that add up, exactly one terminal event that comes last and carries the full
response, truncated items, sequence numbers, default lane untagged).

The monitor checks every frame of every case. These cases drive each kind of stream a
target offers (text, forced function call, reasoning summary, several items, refusal,
truncation, two responses on one socket) and state the grammar clauses explicitly: each
asserts that the monitor found no violation of its clauses on its connection, and re-checks
the clauses directly from the events, so a clause is judged even where the monitor is
blind to it.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, TURN_BUDGET, expect_monitor_clean, turn_budget
from conformance.client import HarnessError
from conformance.schemas import get_schemas

TERMINAL_STATUS = {"response.completed": "completed", "response.failed": "failed",
                   "response.incomplete": "incomplete"}

# delta family (event type without .delta/.done) -> (field of the .done event, index field,
# where the value sits in the output item: "content", "summary" or None = the item itself)
FAMILIES = {
    "response.output_text": ("text", "content_index", "content"),
    "response.refusal": ("refusal", "content_index", "content"),
    "response.reasoning_text": ("text", "content_index", "content"),
    "response.reasoning_summary_text": ("text", "summary_index", "summary"),
    "response.function_call_arguments": ("arguments", None, None),
    "response.custom_tool_call_input": ("input", None, None),
}
PART_EVENTS = {"response.content_part.added": "content_index", "response.content_part.done": "content_index",
               "response.reasoning_summary_part.added": "summary_index",
               "response.reasoning_summary_part.done": "summary_index"}

# the grammar of every generating stream (§4.3 items 11-15, 17, 18; §3.2 shapes)
GRAMMAR = ("SCHEMA-SERVER-EVENT", "STREAM-CREATED-FIRST", "STREAM-IN-PROGRESS-FOLLOWS",
           "STREAM-ITEM-LIFECYCLE", "STREAM-INDEXES-IN-ORDER", "STREAM-ANNOUNCED-ITEM",
           "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT", "STREAM-ONE-TERMINAL",
           "STREAM-TERMINAL-LAST", "STREAM-TERMINAL-RESPONSE", "STREAM-INCOMPLETE-ITEM-LAST",
           "SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "LANE-DEFAULT-UNTAGGED")

CITY_TOOL = {
    "type": "function", "name": "record_city",
    "description": "Record the name of a city the user mentions.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
}
COUNTRY_TOOL = {
    "type": "function", "name": "record_country",
    "description": "Record the name of a country the user mentions.",
    "parameters": {"type": "object", "properties": {"country": {"type": "string"}},
                   "required": ["country"], "additionalProperties": False},
}


# --- helpers -----------------------------------------------------------------------------

def _quiet_period(target) -> float:
    """How long to listen for stray frames after a terminal event."""
    return 0.2 if target.is_embedded else min(2.0, target.turn_timeout / 10)


def _started(turn, what: str):
    """The grammar needs a response that started; anything else cannot be judged here."""
    if not any(e.get("type") in ("response.created", "response.queued", "response.in_progress")
               for e in turn.events):
        raise HarnessError(f"{what}: no response started, so its stream cannot be checked ({turn.summary()})")
    return turn


def _seqs(events: list[dict]) -> list:
    return [e.get("sequence_number") for e in events]


def _is_grammar_event(e: dict) -> bool:
    """A known server event of a response's own stream: not an error, not an extension, and
    not a steer/inject event (those share the numbering and may follow the terminal, §3.5)."""
    t = e.get("type")
    return (isinstance(t, str) and t.startswith("response.") and get_schemas().is_known(t)
            and not t.startswith(("response.steer.", "response.inject.")))


def _is_seq(v) -> bool:
    return type(v) is int and v >= 0


def _output_value(item: dict, family: str, idx):
    fld, _, container = FAMILIES[family]
    if container is None:
        return item.get(fld)
    seq = item.get(container)
    if not isinstance(seq, list) or type(idx) is not int or not 0 <= idx < len(seq):
        return None
    part = seq[idx]
    if not isinstance(part, dict):
        return None
    return part.get("refusal" if family == "response.refusal" else "text")


def _check_events(expect, turn, clauses) -> None:
    """Direct (monitor-free) checks of the clauses in ``clauses`` on one response's events."""
    c = set(clauses)
    # extension events (unknown types, §3.1) are judged only by their sequence numbers
    numbered = [e for e in turn.events if e.get("type") != "error"]
    ev = [e for e in numbered if _is_grammar_event(e)]
    types = [e.get("type") for e in ev]

    if "SEQ-PRESENT" in c:
        missing = [f"#{i} {t}: {s!r}" for i, (t, s) in enumerate(zip(types, _seqs(ev))) if not _is_seq(s)]
        expect("SEQ-PRESENT", not missing, missing[:5], "events without a non-negative integer sequence_number")
    seqs = _seqs(numbered)
    ints = [s for s in seqs if _is_seq(s)]
    if "SEQ-MONOTONIC" in c:
        drops = [f"{a} -> {b}" for a, b in zip(ints, ints[1:]) if b <= a]
        expect("SEQ-MONOTONIC", not drops, drops[:5], "sequence_number does not strictly increase")

    if "STREAM-CREATED-FIRST" in c:
        lead = types[:]
        while lead and lead[0] == "response.queued":
            lead.pop(0)
        expect("STREAM-CREATED-FIRST", lead[:1] == ["response.created"], types[:4],
               f"the first event of the response is {lead[:1] or 'missing'}, not response.created")
        expect("STREAM-CREATED-FIRST", types.count("response.created") == 1, types[:6],
               f"{types.count('response.created')} response.created events in one response")

    if "SEQ-FROM-ZERO-BY-ONE" in c and ints:
        expect("SEQ-FROM-ZERO-BY-ONE", ints[0] == 0, seqs[:6],
               f"the first sequence_number of the response is {ints[0]}, not 0")
        gaps = [f"{a} -> {b}" for a, b in zip(ints, ints[1:]) if b != a + 1]
        expect("SEQ-FROM-ZERO-BY-ONE", not gaps, gaps[:5], "sequence_number does not go up by 1")

    if "LANE-DEFAULT-UNTAGGED" in c:
        tagged = [f"{e.get('type')}: stream_id={e.get('stream_id')!r}" for e in turn.events if "stream_id" in e]
        expect("LANE-DEFAULT-UNTAGGED", not tagged, tagged[:3],
               "events of a create without stream_id carry a stream_id")

    terminals = [i for i, t in enumerate(types) if t in TERMINAL_STATUS]
    if "STREAM-ONE-TERMINAL" in c:
        expect("STREAM-ONE-TERMINAL", len(terminals) == 1, turn,
               f"{len(terminals)} terminal events in one response (status {turn.status})")
    if "STREAM-TERMINAL-LAST" in c and terminals:
        expect("STREAM-TERMINAL-LAST", terminals[0] == len(ev) - 1, types[terminals[0]:],
               "events of the response follow its terminal event")

    created = next((e.get("response") for e in ev if e.get("type") == "response.created"), None)
    term = ev[terminals[0]] if terminals else None
    final = term.get("response") if term else None
    if "STREAM-IN-PROGRESS-FOLLOWS" in c and "response.created" in types:
        nxt = types[types.index("response.created") + 1:][:1]
        empty_end = nxt and nxt[0] in TERMINAL_STATUS and isinstance(final, dict) and not final.get("output")
        expect("STREAM-IN-PROGRESS-FOLLOWS", nxt == ["response.in_progress"] or empty_end, types[:4],
               f"response.created is followed by {nxt or 'nothing'}, not response.in_progress")

    if "STREAM-TERMINAL-RESPONSE" in c and term is not None:
        expect("STREAM-TERMINAL-RESPONSE", isinstance(final, dict), term.get("type"),
               "the terminal event carries no response object")
        want = TERMINAL_STATUS[term["type"]]
        expect("STREAM-TERMINAL-RESPONSE", final.get("status") == want, turn,
               f"{term['type']} carries response.status {final.get('status')!r}, expected {want!r}")
        cid = created.get("id") if isinstance(created, dict) else None
        expect("STREAM-TERMINAL-RESPONSE", cid is not None and final.get("id") == cid, turn,
               f"the terminal response id {final.get('id')!r} differs from response.created's {cid!r}")
        if term["type"] == "response.completed":
            expect("STREAM-TERMINAL-RESPONSE", isinstance(final.get("usage"), dict), turn,
                   "response.completed carries no usage")
        expect("STREAM-TERMINAL-RESPONSE", isinstance(final.get("output"), list), turn,
               "the terminal response has no output array")

    # items, parts and deltas
    added: dict[str, dict] = {}        # item id -> {"oi", "done", "item"}
    order: list[str] = []
    parts: dict[tuple, str] = {}       # (item id, part kind, index) -> "open" | "text-done" | "closed"
    next_part: dict[tuple, int] = {}   # (item id, part kind) -> next index expected
    deltas: dict[tuple, list] = {}     # (item id, family, index) -> deltas
    dones: dict[tuple, object] = {}    # (item id, family, index) -> .done value
    problems = {k: [] for k in ("STREAM-ITEM-LIFECYCLE", "STREAM-INDEXES-IN-ORDER", "STREAM-ANNOUNCED-ITEM",
                                "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT",
                                "STREAM-INCOMPLETE-ITEM-LAST")}
    incomplete_item = None
    for i, e in enumerate(ev):
        t = e.get("type")
        if t == "response.output_item.added":
            item = e.get("item") if isinstance(e.get("item"), dict) else {}
            iid = item.get("id") or f"#{len(order)}"
            if incomplete_item is not None:
                problems["STREAM-INCOMPLETE-ITEM-LAST"].append(f"{iid} added after {incomplete_item} ended incomplete")
            if e.get("output_index") != len(order):
                problems["STREAM-INDEXES-IN-ORDER"].append(
                    f"output_item.added {iid}: output_index {e.get('output_index')!r}, expected {len(order)}")
            if iid in added:
                problems["STREAM-ITEM-LIFECYCLE"].append(f"item {iid} added twice")
            added[iid] = {"oi": e.get("output_index"), "done": False, "item": None}
            order.append(iid)
            continue
        if t == "response.output_item.done":
            item = e.get("item") if isinstance(e.get("item"), dict) else {}
            iid = item.get("id")
            if iid is None:  # no id: the item at that output_index
                iid = next((k for k, v in added.items() if v["oi"] == e.get("output_index")), None)
            st = added.get(iid)
            if st is None or st["done"]:
                problems["STREAM-ITEM-LIFECYCLE"].append(
                    f"output_item.done for {iid!r} " + ("never added" if st is None else "twice"))
                continue
            open_parts = [k for k, v in parts.items() if k[0] == iid and v != "closed"]
            if open_parts:
                problems["STREAM-ITEM-LIFECYCLE"].append(f"output_item.done for {iid} with parts still open: {open_parts}")
            st["done"], st["item"] = True, item
            for (k_iid, fam, idx), value in dones.items():
                if k_iid == iid and _output_value(item, fam, idx) != value:
                    problems["STREAM-DONE-MATCHES-OUTPUT"].append(
                        f"output_item.done {iid}: {fam} [{idx}] is {_output_value(item, fam, idx)!r:.60}, "
                        f".done had {value!r:.60}")
            if item.get("status") == "incomplete":
                incomplete_item = iid
            continue
        iid = e.get("item_id")
        if iid is None:
            continue
        st = added.get(iid)
        if st is None or st["done"]:
            problems["STREAM-ANNOUNCED-ITEM"].append(
                f"#{i} {t} references item {iid!r} " + ("never announced" if st is None else "after its output_item.done"))
            continue
        if e.get("output_index") != st["oi"]:
            problems["STREAM-ANNOUNCED-ITEM"].append(
                f"#{i} {t} for {iid} has output_index {e.get('output_index')!r}, announced at {st['oi']!r}")
        if t in PART_EVENTS:
            kind = PART_EVENTS[t]
            idx = e.get(kind)
            key = (iid, kind, idx)
            if t.endswith(".added"):
                want = next_part.get((iid, kind), 0)
                if idx != want:
                    problems["STREAM-INDEXES-IN-ORDER"].append(f"{t} of {iid}: {kind} {idx!r}, expected {want}")
                if key in parts:
                    problems["STREAM-ITEM-LIFECYCLE"].append(f"{t} of {iid}: part {idx!r} added twice")
                parts[key] = "open"
                next_part[(iid, kind)] = (idx + 1) if type(idx) is int else want + 1
            else:
                if parts.get(key) not in ("open", "text-done"):
                    problems["STREAM-ITEM-LIFECYCLE"].append(
                        f"{t} of {iid}: part {idx!r} " + ("never added" if key not in parts else "closed twice"))
                parts[key] = "closed"
            continue
        family, _, suffix = (t or "").rpartition(".")
        if family in FAMILIES and suffix in ("delta", "done"):
            fld, idx_field, container = FAMILIES[family]
            idx = e.get(idx_field) if idx_field else None
            if container is not None and parts.get((iid, idx_field, idx)) not in ("open",):
                problems["STREAM-ITEM-LIFECYCLE"].append(
                    f"#{i} {t} of {iid} outside an open part {idx_field}={idx!r}")
            key = (iid, family, idx)
            if suffix == "delta":
                if key in dones:
                    problems["STREAM-ITEM-LIFECYCLE"].append(f"#{i} {t} of {iid} after its .done")
                d = e.get("delta")
                deltas.setdefault(key, []).append(d if isinstance(d, str) else "")
            else:
                value = e.get(fld)
                dones[key] = value
                if container is not None:
                    parts[(iid, idx_field, idx)] = "text-done"
                joined = "".join(deltas.get(key, []))
                if isinstance(value, str) and key in deltas and joined != value:
                    problems["STREAM-DELTAS-ADD-UP"].append(
                        f"{t} of {iid}: deltas give {joined!r:.60}, .done has {value!r:.60}")
                if isinstance(value, str) and key not in deltas and value:
                    # a value with no delta at all does not add up either (empty deltas are fine)
                    problems["STREAM-DELTAS-ADD-UP"].append(f"{t} of {iid}: no delta before a non-empty .done")

    if term is not None and term.get("type") == "response.completed":
        still_open = [k for k in order if not added[k]["done"]]
        if still_open:
            problems["STREAM-ITEM-LIFECYCLE"].append(f"response.completed while items are open: {still_open}")
    if term is not None and incomplete_item is not None and term.get("type") != "response.incomplete":
        problems["STREAM-INCOMPLETE-ITEM-LAST"].append(
            f"item {incomplete_item} ended incomplete but the response ends with {term.get('type')}")
    if isinstance(final, dict) and term.get("type") != "response.failed" and isinstance(final.get("output"), list):
        by_id = {o.get("id"): o for o in final["output"] if isinstance(o, dict) and o.get("id")}
        for pos, iid in enumerate(order):
            st = added[iid]
            if not st["done"]:
                continue
            out = by_id.get(iid)
            if out is None and pos < len(final["output"]) and not (st["item"] or {}).get("id"):
                out = final["output"][pos]
            if out is None:
                problems["STREAM-DONE-MATCHES-OUTPUT"].append(f"terminal response.output lacks streamed item {iid}")
                continue
            for (k_iid, fam, idx), value in dones.items():
                if k_iid == iid and _output_value(out, fam, idx) != value:
                    problems["STREAM-DONE-MATCHES-OUTPUT"].append(
                        f"terminal output item {iid}: {fam} [{idx}] is {_output_value(out, fam, idx)!r:.60}, "
                        f".done had {value!r:.60}")
    for clause in ("STREAM-INDEXES-IN-ORDER", "STREAM-ANNOUNCED-ITEM", "STREAM-ITEM-LIFECYCLE",
                   "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT", "STREAM-INCOMPLETE-ITEM-LAST"):
        if clause in c:
            expect(clause, not problems[clause], problems[clause][:4], f"{clause} broken in this response")

    # last: the specific clauses above name a defect better than the schema's catch-all
    if "SCHEMA-SERVER-EVENT" in c:
        schemas = get_schemas()
        bad = [f"#{i} {e.get('type')}: {iss.pointer or '(root)'}: {iss.message}"
               for i, e in enumerate(ev) for iss in schemas.validate(e)]
        expect("SCHEMA-SERVER-EVENT", not bad, bad[:5], "server events do not match their schemas")


def _check_quiet_after(expect, conn, target, turn) -> None:
    """Listen briefly after the terminal event: nothing of that response may follow it."""
    if turn.status not in TERMINAL_STATUS.values():
        return
    late = [o.message for o in conn.recv_frames(_quiet_period(target)) if o.message is not None]
    # nothing else is pending on the connection, so any response event now is a stray one
    stray = [m.get("type") for m in late if _is_grammar_event(m)]
    expect("STREAM-ONE-TERMINAL", not any(t in TERMINAL_STATUS for t in stray), stray,
           "a second terminal event arrived after the first")
    expect("STREAM-TERMINAL-LAST", not stray, stray,
           f"{len(stray)} event(s) of the response arrived after its terminal event")


def _check_all(expect, conn, target, turn, clauses=GRAMMAR) -> None:
    _check_events(expect, turn, clauses)
    _check_quiet_after(expect, conn, target, turn)
    expect_monitor_clean(expect, conn, clauses)


def _item_types(turn) -> list:
    return [i.get("type") for i in (turn.response or {}).get("output") or [] if isinstance(i, dict)]


# --- cases -------------------------------------------------------------------------------

@pytest.mark.clause(*GRAMMAR, "EXT-UNKNOWN-TOLERATED")
@pytest.mark.max_requests(creates=1)
def test_text_stream(target, connect, expect, verdict):
    conn = connect()
    turn = _started(conn.turn(input=PROMPT, store=False, max_output_tokens=turn_budget(target)),
                    "text turn")
    _check_all(expect, conn, target, turn)
    # extensions are allowed (§3.1); they must not have broken the attribution of the stream
    ext = sorted({f.message for f in conn.findings if f.kind == "extension"})
    if ext:
        verdict.info("extensions seen: " + "; ".join(ext[:10]), "EXT-UNKNOWN-TOLERATED")
    expect("EXT-UNKNOWN-TOLERATED", turn.status in TERMINAL_STATUS.values(), turn,
           "the stream with extension events did not end in a terminal event of its response")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_function_call_stream(target, connect, expect):
    conn = connect()
    turn = _started(conn.turn(input="Record the city Paris with the tool.", tools=[CITY_TOOL],
                              tool_choice={"type": "function", "name": "record_city"}, store=False,
                              max_output_tokens=turn_budget(target)),
                    "forced function call turn")
    _check_all(expect, conn, target, turn)
    if turn.status == "completed" and "function_call" not in _item_types(turn):
        raise HarnessError("the forced function call turn produced no function_call item: "
                           "the arguments grammar was not exercised")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_reasoning_summary_stream(target, connect, expect, verdict):
    conn = connect()
    turn = conn.turn(input=PROMPT, reasoning={"summary": "auto"}, store=False,
                     max_output_tokens=turn_budget(target))
    if turn.status == "error":
        err = (turn.error or {}).get("error") or {}
        about = f"{err.get('param') or ''} {turn.error_message or ''}".lower()
        if "reasoning" in about:
            verdict.unsupported(f"the target rejected reasoning.summary for model {target.model}: "
                                f"{turn.error_code} {turn.error_message!r:.120}")
    _started(turn, "reasoning summary turn")
    _check_all(expect, conn, target, turn)
    summary_events = [e for e in turn.events if str(e.get("type", "")).startswith("response.reasoning_summary")]
    if not summary_events:
        if target.has("reference_engine"):
            raise HarnessError("the reference server streamed no reasoning summary for reasoning.summary=auto")
        verdict.info("the model streamed no reasoning summary; only the other events were checked",
                     "STREAM-ITEM-LIFECYCLE")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_two_message_stream(target, connect, expect):
    if not target.has("reference_engine"):
        pytest.skip("UNSUPPORTED: two messages in one response need the reference engine's [[multi]] trigger")
    conn = connect()
    turn = _started(conn.turn(input=f"{PROMPT} [[multi]]", store=False, max_output_tokens=TURN_BUDGET),
                    "[[multi]] turn")
    _check_all(expect, conn, target, turn)
    if _item_types(turn) != ["message", "message"]:
        raise HarnessError(f"[[multi]] did not give two messages: {_item_types(turn)}")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_parallel_function_calls_stream(target, connect, expect, verdict):
    # tool_choice "required" forces at least one call whatever the model; two are welcome
    conn = connect()
    turn = _started(conn.turn(input="Record the city Paris and the country France with the tools. [[parallel]]",
                              tools=[CITY_TOOL, COUNTRY_TOOL], tool_choice="required", parallel_tool_calls=True,
                              store=False, max_output_tokens=turn_budget(target)),
                    "parallel function calls turn")
    _check_all(expect, conn, target, turn)
    calls = _item_types(turn).count("function_call")
    if target.has("reference_engine") and turn.status == "completed" and calls != 2:
        raise HarnessError(f"[[parallel]] with two tools gave {calls} calls, expected 2")
    if calls < 2:
        verdict.info(f"{calls} function call item(s) in the response: a multi-item stream was not exercised",
                     "STREAM-INDEXES-IN-ORDER")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_refusal_stream(target, connect, expect):
    if not target.has("reference_engine"):
        pytest.skip("UNSUPPORTED: a refusal is not model-free; only the reference engine's [[refuse]] trigger is")
    conn = connect()
    turn = _started(conn.turn(input=f"[[refuse]] {PROMPT}", store=False, max_output_tokens=TURN_BUDGET),
                    "[[refuse]] turn")
    _check_all(expect, conn, target, turn)
    if not any(e.get("type") == "response.refusal.done" for e in turn.events):
        raise HarnessError("[[refuse]] streamed no refusal")


@pytest.mark.clause(*GRAMMAR)
@pytest.mark.max_requests(creates=1)
def test_truncated_stream(target, connect, expect, verdict):
    conn = connect()
    turn = _started(conn.turn(input="Count from 1 to 200, separated by commas.", store=False, max_output_tokens=16),
                    "truncated turn")
    _check_all(expect, conn, target, turn)
    cut = [i for i in (turn.response or {}).get("output") or [] if isinstance(i, dict) and i.get("status") == "incomplete"]
    if turn.status != "incomplete" or not cut:
        if target.has("reference_engine"):
            raise HarnessError(f"the 16-token turn did not end with an incomplete item ({turn.summary()})")
        verdict.info(f"no item ended incomplete (status {turn.status}); STREAM-INCOMPLETE-ITEM-LAST held vacuously",
                     "STREAM-INCOMPLETE-ITEM-LAST")


@pytest.mark.clause("SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "STREAM-CREATED-FIRST",
                    "STREAM-TERMINAL-RESPONSE", "LANE-DEFAULT-UNTAGGED")
@pytest.mark.max_requests(creates=2)
def test_sequence_restarts_per_response(target, connect, expect):
    clauses = ("SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "STREAM-CREATED-FIRST",
               "STREAM-TERMINAL-RESPONSE", "LANE-DEFAULT-UNTAGGED")
    conn = connect()
    first = _started(conn.turn(input=PROMPT, store=False), "first turn")
    second = _started(conn.turn(input=PROMPT, store=False), "second turn")
    for turn in (first, second):
        _check_events(expect, turn, clauses)
    expect("STREAM-TERMINAL-RESPONSE", first.response_id != second.response_id, [first, second],
           "two responses on one connection share an id")
    expect_monitor_clean(expect, conn, clauses)
