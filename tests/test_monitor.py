"""Self-tests of conformance/monitor/ (spec §1.4, §3, §4.3, §4.10).

1. Every constructed example stream of the spec conforms: zero violations, with the grammar
   alone and with the real schemas.
2. For every clause the monitor judges, at least one mutation of an example stream (drop,
   swap, corrupt, renumber, retag, reframe) yields a finding with exactly that clause id.
   Mutations are data: (id, example file, mutation, expected clause, schema mode).
3. Extensions are never violations; garbage never raises; attribution rules hold.
"""
from __future__ import annotations

import ast
import copy
import json
import random
import re
from pathlib import Path
from typing import Callable

import pytest

from conformance import reach
from conformance.monitor import PERMISSIVE, Finding, StreamMonitor
from conformance.monitor import clauses as monitor_clauses

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"  # in-repo; a missing file fails

STREAMS = sorted(p.name for p in EXAMPLES.glob("stream-*.json"))


def real_schemas():
    try:
        from conformance.schemas import get_schemas
    except ImportError:  # pragma: no cover - before conformance/schemas.py landed
        pytest.skip("conformance.schemas not available")
    return get_schemas()


# ----------------------------------------------------------------------------------------
# helpers: a stream is a list of (direction, message) with direction "c" (client), "s"
# (server event, fed as JSON text) or "raw" (server frame fed as is: str or bytes)


def load(name: str) -> list[tuple[str, object]]:
    data = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return [("c" if f["direction"] == "client_to_server" else "s", f["message"]) for f in data["frames"]]


def load_event(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def run(frames, schemas=False, finish=True, **leniencies) -> StreamMonitor:
    m = StreamMonitor(schemas, **leniencies)
    for direction, msg in frames:
        if direction == "c":
            m.sent(msg)
        elif direction == "s":
            m.feed(json.dumps(msg))
        else:
            m.feed(msg)
    if finish:
        m.finish()
    assert not m.internal_errors, m.internal_errors
    return m


def violations(m: StreamMonitor) -> list[Finding]:
    return [f for f in m.findings if f.kind == "violation"]


def clauses(m: StreamMonitor) -> set[str]:
    return {f.clause for f in violations(m)}


def where(frames, typ: str, nth: int = 0) -> int:
    """Position of the nth server event of a type."""
    seen = -1
    for i, (d, msg) in enumerate(frames):
        if d == "s" and msg.get("type") == typ:
            seen += 1
            if seen == nth:
                return i
    raise LookupError(f"no {typ} #{nth}")


# ----------------------------------------------------------------------------------------
# mutations: functions frames -> frames (they get a deep copy)


def drop(typ: str, nth: int = 0, keep_numbers: bool = False):
    """Remove an event; the stream is renumbered so that no gap appears (unless keep_numbers)."""
    def f(frames):
        del frames[where(frames, typ, nth)]
        return frames if keep_numbers else renumber(0, 1)(frames)
    return f


def swap(a: str, b: str, nth_a: int = 0, nth_b: int = 0):
    def f(frames):
        i, j = where(frames, a, nth_a), where(frames, b, nth_b)
        frames[i], frames[j] = frames[j], frames[i]
        return frames
    return f


def edit(typ: str, fn: Callable[[dict], None], nth: int = 0):
    def f(frames):
        fn(frames[where(frames, typ, nth)][1])
        return frames
    return f


def edit_all(pred: Callable[[dict], bool], fn: Callable[[dict], None]):
    def f(frames):
        for d, msg in frames:
            if d == "s" and pred(msg):
                fn(msg)
        return frames
    return f


def replace_frame(typ: str, raw_fn: Callable[[dict], object], nth: int = 0):
    """Replace a server event by a raw frame built from it (bytes, SSE text, ...)."""
    def f(frames):
        i = where(frames, typ, nth)
        frames[i] = ("raw", raw_fn(frames[i][1]))
        return frames
    return f


def insert_after(typ: str, item, nth: int = 0):
    def f(frames):
        i = where(frames, typ, nth)
        new = item(frames[i][1]) if callable(item) else item
        frames.insert(i + 1, new)
        return frames
    return f


def chain(*fns):
    def f(frames):
        for fn in fns:
            frames = fn(frames)
        return frames
    return f


def setter(path: str, value):
    """Set a value at a dotted path (integers index lists)."""
    def fn(msg):
        parts = path.split(".")
        obj = msg
        for p in parts[:-1]:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        last = parts[-1]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return fn


def deleter(path: str):
    def fn(msg):
        parts = path.split(".")
        obj = msg
        for p in parts[:-1]:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        del obj[parts[-1]]
    return fn


def renumber(start: int, step: int):
    """Renumber every sequence_number: start, start+step, ... per response."""
    def f(frames):
        n: dict = {}
        for d, msg in frames:
            if d != "s" or "sequence_number" not in msg:
                continue
            lane = msg.get("stream_id")
            if msg["type"] == "response.created" or lane not in n:
                n[lane] = start
            msg["sequence_number"] = n[lane]
            n[lane] += step
        return frames
    return f


def default_lane_only(frames):
    """Strip stream_id everywhere: two lanes become one default lane."""
    for _, msg in frames:
        if isinstance(msg, dict):
            msg.pop("stream_id", None)
    return frames


def append_frames(*items):
    def f(frames):
        frames.extend(items)
        return frames
    return f


TEXT = "stream-text-turn.json"
FC = "stream-function-call-turn.json"
WARM = "stream-generate-false-warmup.json"
EVICT = "stream-failed-continuation-evicts-cache.json"
LANES = "stream-two-lanes-interleaved.json"
STEER = "stream-steer.json"

DELTA = "response.output_text.delta"
FDELTA = "response.function_call_arguments.delta"

FLAT_ERROR = load_event("error-legacy-flat-shape.json")

# (id, example, mutation, expected clause, schemas: False = grammar only, "real" = real schemas)
MUTATIONS = [
    # framing
    ("binary-frame", TEXT, replace_frame(DELTA, lambda m: json.dumps(m).encode()), "WS-TEXT-JSON-FRAMES", False),
    ("binary-garbage", TEXT, append_frames(("raw", b"\xff\xfe\x00binary")), "WS-TEXT-JSON-FRAMES", False),
    ("not-json-text", TEXT, append_frames(("raw", "hello, world")), "WS-TEXT-JSON-FRAMES", False),
    ("json-array", TEXT, append_frames(("raw", "[1, 2, 3]")), "WS-TEXT-JSON-FRAMES", False),
    ("two-objects-one-frame", TEXT, replace_frame(DELTA, lambda m: json.dumps(m) + "\n" + json.dumps(m)),
     "WS-TEXT-JSON-FRAMES", False),
    ("no-type", TEXT, edit(DELTA, deleter("type")), "WS-TEXT-JSON-FRAMES", False),
    ("type-not-string", TEXT, edit(DELTA, setter("type", 7)), "WS-TEXT-JSON-FRAMES", False),
    ("sse-framed-event", TEXT, replace_frame(DELTA, lambda m: f"event: {m['type']}\ndata: {json.dumps(m)}\n\n"),
     "WS-NO-SSE-FRAMING", False),
    ("done-sentinel", TEXT, append_frames(("raw", "[DONE]")), "WS-NO-SSE-FRAMING", False),
    ("sse-done-sentinel", TEXT, append_frames(("raw", "data: [DONE]\n\n")), "WS-NO-SSE-FRAMING", False),
    # schemas
    ("schema-index-as-string", TEXT, edit(DELTA, setter("output_index", "0")), "SCHEMA-SERVER-EVENT", "real"),
    ("schema-delta-missing", TEXT, edit(DELTA, deleter("delta")), "SCHEMA-SERVER-EVENT", "real"),
    ("schema-response-missing-id", TEXT, edit("response.completed", deleter("response.id")),
     "SCHEMA-SERVER-EVENT", "real"),
    ("error-without-message", EVICT, edit("error", deleter("error.message")), "ERR-ENVELOPE", "real"),
    ("error-without-type", EVICT, edit("error", deleter("error.type"), nth=1), "ERR-ENVELOPE", "real"),
    ("error-flat-legacy", EVICT, lambda fr: fr[:-1] + [("s", copy.deepcopy(FLAT_ERROR))], "ERR-CODE-NESTED", False),
    ("error-flat-legacy-real", EVICT, lambda fr: fr[:-1] + [("s", copy.deepcopy(FLAT_ERROR))], "ERR-CODE-NESTED",
     "real"),
    # §4.3 item 11
    ("drop-created", TEXT, drop("response.created"), "STREAM-CREATED-FIRST", False),
    ("swap-created-in-progress", TEXT, swap("response.created", "response.in_progress"), "STREAM-CREATED-FIRST",
     False),
    ("drop-in-progress", TEXT, drop("response.in_progress"), "STREAM-IN-PROGRESS-FOLLOWS", False),
    ("drop-in-progress-fc", FC, drop("response.in_progress", nth=1), "STREAM-IN-PROGRESS-FOLLOWS", False),
    # §4.3 item 12
    ("drop-content-part-done", TEXT, drop("response.content_part.done"), "STREAM-ITEM-LIFECYCLE", False),
    ("delta-before-part-added", TEXT, swap("response.content_part.added", DELTA), "STREAM-ITEM-LIFECYCLE", False),
    ("drop-text-done", TEXT, drop("response.output_text.done"), "STREAM-ITEM-LIFECYCLE", False),
    ("drop-args-done", FC, drop("response.function_call_arguments.done"), "STREAM-ITEM-LIFECYCLE", False),
    ("drop-output-item-added", FC, drop("response.output_item.added"), "STREAM-ITEM-LIFECYCLE", False),
    ("drop-output-item-done-lost", TEXT, lambda fr: edit("response.completed", setter("response.output", []))(
        drop("response.output_item.done")(fr)), "STREAM-ITEM-LIFECYCLE", False),
    # §4.3 item 16b: the terminal output holds the item that never got its output_item.done
    ("drop-output-item-done", TEXT, drop("response.output_item.done"), "STREAM-ITEM-DONE-BEFORE-TERMINAL", False),
    # §3.2: production's function_call_arguments.done without name
    ("fc-done-without-name", FC, edit("response.function_call_arguments.done", deleter("name")), "FC-DONE-NAME",
     False),
    ("duplicate-output-item-done", TEXT, insert_after("response.output_item.done", lambda m: ("s", copy.deepcopy(m))),
     "STREAM-ITEM-LIFECYCLE", False),
    ("output-index-starts-at-1", TEXT, edit_all(lambda m: "output_index" in m, setter("output_index", 1)),
     "STREAM-INDEXES-IN-ORDER", False),
    ("content-index-starts-at-1", TEXT, edit_all(lambda m: "content_index" in m, setter("content_index", 1)),
     "STREAM-INDEXES-IN-ORDER", False),
    # §4.3 item 13
    ("delta-unknown-item", TEXT, edit(DELTA, setter("item_id", "msg_never_announced"), nth=1),
     "STREAM-ANNOUNCED-ITEM", False),
    ("delta-wrong-output-index", FC, edit(FDELTA, setter("output_index", 3)), "STREAM-ANNOUNCED-ITEM", False),
    ("delta-after-item-done", TEXT,
     lambda fr: insert_after("response.output_item.done", ("s", copy.deepcopy(fr[where(fr, DELTA)][1])))(fr),
     "STREAM-ANNOUNCED-ITEM", False),
    # §4.3 item 14
    ("corrupt-text-delta", TEXT, edit(DELTA, setter("delta", "Howdy"), nth=0), "STREAM-DELTAS-ADD-UP", False),
    ("drop-text-delta", TEXT, drop(DELTA, nth=2), "STREAM-DELTAS-ADD-UP", False),
    ("corrupt-args-delta", FC, edit(FDELTA, setter("delta", "{\"CI")), "STREAM-DELTAS-ADD-UP", False),
    ("item-done-text-differs", TEXT, edit("response.output_item.done", setter("item.content.0.text", "Bye!")),
     "STREAM-DONE-MATCHES-OUTPUT", False),
    ("part-done-text-differs", TEXT, edit("response.content_part.done", setter("part.text", "Bye!")),
     "STREAM-DONE-MATCHES-OUTPUT", False),
    ("terminal-output-text-differs", TEXT,
     edit("response.completed", setter("response.output.0.content.0.text", "Bye!")),
     "STREAM-DONE-MATCHES-OUTPUT", False),
    ("terminal-output-empty", TEXT, edit("response.completed", setter("response.output", [])),
     "STREAM-DONE-MATCHES-OUTPUT", False),
    ("item-done-args-differ", FC, edit("response.output_item.done", setter("item.arguments", "{}")),
     "STREAM-DONE-MATCHES-OUTPUT", False),
    # §4.3 item 15
    ("duplicate-terminal", TEXT, insert_after("response.completed", lambda m: ("s", copy.deepcopy(m))),
     "STREAM-ONE-TERMINAL", False),
    ("drop-terminal", TEXT, drop("response.completed"), "STREAM-ONE-TERMINAL", False),
    ("failed-after-completed", TEXT,
     insert_after("response.completed", lambda m: ("s", dict(copy.deepcopy(m), type="response.failed"))),
     "STREAM-ONE-TERMINAL", False),
    ("in-progress-after-terminal", TEXT,
     lambda fr: fr + [("s", copy.deepcopy(fr[where(fr, "response.in_progress")][1]))],
     "STREAM-TERMINAL-LAST", False),
    ("item-done-after-terminal", TEXT, swap("response.output_item.done", "response.completed"),
     "STREAM-TERMINAL-LAST", False),
    ("completed-status-in-progress", TEXT, edit("response.completed", setter("response.status", "in_progress")),
     "STREAM-TERMINAL-RESPONSE", False),
    ("completed-without-usage", TEXT, edit("response.completed", setter("response.usage", None)),
     "STREAM-TERMINAL-RESPONSE", False),
    ("terminal-id-differs", TEXT, edit("response.completed", setter("response.id", "resp_other")),
     "STREAM-TERMINAL-RESPONSE", False),
    ("incomplete-event-completed-status", STEER, edit("response.incomplete", setter("response.status", "completed")),
     "STREAM-TERMINAL-RESPONSE", False),
    # §4.3 item 15a: a private trailer after the terminal event (a SHOULD by default)
    ("trailing-response-done", TEXT,
     insert_after("response.completed", lambda m: ("s", {"type": "response.done", "response": copy.deepcopy(m["response"]),
                                                          "sequence_number": m["sequence_number"] + 1})),
     "STREAM-NO-TRAILING-FRAME", False),
    # §4.3 item 16
    ("incomplete-item-then-completed", TEXT, edit("response.output_item.done", setter("item.status", "incomplete")),
     "STREAM-INCOMPLETE-ITEM-LAST", False),
    # §4.3 item 17
    ("seq-missing", TEXT, edit(DELTA, deleter("sequence_number")), "SEQ-PRESENT", False),
    ("seq-negative", TEXT, edit(DELTA, setter("sequence_number", -1)), "SEQ-PRESENT", False),
    ("seq-string", TEXT, edit(DELTA, setter("sequence_number", "4")), "SEQ-PRESENT", False),
    ("seq-swapped", TEXT, chain(edit(DELTA, setter("sequence_number", 5), nth=0),
                                edit(DELTA, setter("sequence_number", 4), nth=1)), "SEQ-MONOTONIC", False),
    ("seq-repeated", TEXT, edit(DELTA, setter("sequence_number", 4), nth=1), "SEQ-MONOTONIC", False),
    ("seq-from-one", TEXT, renumber(1, 1), "SEQ-FROM-ZERO-BY-ONE", False),
    ("seq-by-two", TEXT, renumber(0, 2), "SEQ-FROM-ZERO-BY-ONE", False),
    ("seq-gap", TEXT, drop(DELTA, nth=1, keep_numbers=True), "SEQ-FROM-ZERO-BY-ONE", False),
    # §4.3 item 18
    ("default-lane-tagged", TEXT, edit(DELTA, setter("stream_id", "main")), "LANE-DEFAULT-UNTAGGED", False),
    ("default-lane-terminal-tagged", TEXT, edit("response.completed", setter("stream_id", "main")),
     "LANE-DEFAULT-UNTAGGED", False),
    ("named-lane-delta-untagged", LANES, edit(DELTA, deleter("stream_id"), nth=2), "LANE-TAGGED", False),
    ("named-lane-created-untagged", LANES, edit("response.created", deleter("stream_id")), "LANE-TAGGED", False),
    ("named-lane-terminal-wrong-tag", LANES, edit("response.completed", setter("stream_id", "research")),
     "LANE-TAGGED", False),
    ("named-lane-error-untagged", TEXT,
     append_frames(("c", {"type": "response.create", "stream_id": "main", "model": "gpt-5.6",
                          "previous_response_id": "resp_example_missing_0002", "input": "hi"}),
                   ("s", {k: v for k, v in load_event("error-previous_response_not_found-named-lane.json").items()
                          if k != "stream_id"})),
     "LANE-TAGGED", False),
    # §4.4
    ("default-lane-interleaved", LANES, default_lane_only, "QUEUE-ONE-IN-FLIGHT", False),
    # §3.6
    ("previous-id-not-echoed", FC, edit("response.created", setter("response.previous_response_id", None), nth=1),
     "PREVIOUS-ID-ECHOED", False),
    ("previous-id-invented", TEXT, edit("response.completed", setter("response.previous_response_id", "resp_x")),
     "PREVIOUS-ID-ECHOED", False),
    ("steer-successor-previous-id", STEER, edit("response.created", setter("response.previous_response_id", None),
                                                 nth=1), "PREVIOUS-ID-ECHOED", False),
]

GRAMMAR_CLAUSES = {
    "WS-TEXT-JSON-FRAMES", "WS-NO-SSE-FRAMING", "SCHEMA-SERVER-EVENT", "ERR-ENVELOPE", "ERR-CODE-NESTED",
    "STREAM-CREATED-FIRST", "STREAM-IN-PROGRESS-FOLLOWS", "STREAM-ITEM-LIFECYCLE", "STREAM-INDEXES-IN-ORDER",
    "STREAM-ANNOUNCED-ITEM", "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT", "STREAM-ONE-TERMINAL",
    "STREAM-TERMINAL-LAST", "STREAM-TERMINAL-RESPONSE", "STREAM-INCOMPLETE-ITEM-LAST", "SEQ-PRESENT",
    "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "LANE-DEFAULT-UNTAGGED", "LANE-TAGGED", "QUEUE-ONE-IN-FLIGHT",
    "PREVIOUS-ID-ECHOED", "STREAM-ITEM-DONE-BEFORE-TERMINAL", "FC-DONE-NAME", "STREAM-NO-TRAILING-FRAME",
}


def _schemas(mode):
    return real_schemas() if mode == "real" else mode


# ----------------------------------------------------------------------------------------
# 1. the examples conform


@pytest.mark.parametrize("mode", [False, "real"], ids=["grammar", "schemas"])
@pytest.mark.parametrize("name", STREAMS)
def test_example_stream_conforms(name, mode):
    m = run(load(name), _schemas(mode))
    assert violations(m) == []
    assert not [f for f in m.findings if f.kind == "extension"], "examples use only known types and fields"
    assert all(rs.state in ("done", "rejected") for rs in m.requests)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("error-*.json") if "legacy" not in p.name))
def test_example_error_answers_pending_create(name):
    event = load_event(name)
    create = {"type": "response.create", "model": "gpt-5.6", "input": "hi"}
    if "stream_id" in event:
        create["stream_id"] = event["stream_id"]
    m = run([("c", create), ("s", event)], real_schemas())
    assert violations(m) == []
    assert m.requests[0].state == "rejected" and m.requests[0].error == event


def test_examples_expected_states():
    m = run(load(EVICT))
    assert [r.state for r in m.requests] == ["done", "rejected", "rejected"]
    m = run(load(STEER))
    assert [(r.origin, r.terminal_type) for r in m.requests] == [
        ("create", "response.incomplete"), ("steer", "response.completed")]
    assert m.requests[1].create["type"] == "response.steer"
    m = run(load(LANES))
    assert [r.lane for r in m.requests] == ["planner", "research"]
    assert all(len(r.events) == 10 for r in m.requests)


# ----------------------------------------------------------------------------------------
# 2. one mutation per clause (at least)


@pytest.mark.parametrize("mid,example,mutate,clause,mode", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught(mid, example, mutate, clause, mode):
    frames = mutate(copy.deepcopy(load(example)))
    m = run(frames, _schemas(mode))
    found = clauses(m)
    assert clause in found, f"{mid}: expected {clause}, got {[(f.clause, f.message) for f in violations(m)]}"
    assert found <= GRAMMAR_CLAUSES


def test_every_monitor_clause_has_a_mutation():
    assert GRAMMAR_CLAUSES == {m[3] for m in MUTATIONS}


def test_every_monitor_clause_is_registered():
    import tomllib

    registry = Path(__file__).resolve().parents[1] / "cases" / "clauses.toml"
    ids = {c["id"] for c in tomllib.loads(registry.read_text(encoding="utf-8"))["clause"]}
    assert GRAMMAR_CLAUSES | {"EXT-UNKNOWN-TOLERATED"} <= ids
    assert monitor_clauses.EMITTED <= ids, sorted(monitor_clauses.EMITTED - ids)


_CLAUSE_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+")


def test_every_monitor_clause_is_declared_once():
    """The monitor names clauses by the constants of monitor/clauses.py only: a clause-id
    string anywhere else in conformance/monitor/ would be an undeclared clause it can emit."""
    package = Path(__file__).resolve().parents[1] / "conformance" / "monitor"
    stray = []
    for path in sorted(package.glob("*.py")):
        if path.name == "clauses.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CLAUSE_ID.fullmatch(node.value):
                stray.append(f"{path.name}:{node.lineno} {node.value}")
    assert not stray, stray
    assert GRAMMAR_CLAUSES | {"EXT-UNKNOWN-TOLERATED"} <= monitor_clauses.EMITTED
    assert set(reach.MONITOR_SCOPE) <= monitor_clauses.EMITTED
    # reached by the case that waits (a timeout) or listens after the terminal event (the two
    # trailing-frame clauses: the profile picks which one the monitor reports)
    assert set(monitor_clauses.EMITTED) - set(reach.MONITOR_SCOPE) == {
        "CREATE-ANSWERED", "STREAM-NOTHING-AFTER-TERMINAL", "STREAM-NO-TRAILING-FRAME"}


def test_rules_table_names_its_handlers_and_every_clause():
    from conformance.monitor.attribution import ATTACHED, RULES, Attribution

    book = Attribution()
    for row in RULES:
        assert callable(getattr(book, row.handler)), row.handler
        assert row.rule.endswith(".") and row.rule.count(". ") == 0, row.rule  # one sentence
        assert set(row.clauses) <= monitor_clauses.EMITTED
    framing = {"WS-TEXT-JSON-FRAMES", "WS-NO-SSE-FRAMING", "SCHEMA-SERVER-EVENT", "ERR-ENVELOPE"}
    named = {clause for row in RULES for clause in row.clauses} | set(ATTACHED) | framing | {"CREATE-ANSWERED"}
    assert named == monitor_clauses.EMITTED
    table = book.handlers()
    assert {"error", "response.created", "response.output_text.delta"} <= set(table)


def test_trailer_is_the_ended_response_s_never_the_next_turn_s():
    """§4.3 item 15a: a response.done of the first response that arrives while the second is
    streaming stays with the first; under P-open ("forbidden") it breaks the MUST clause."""
    frames = load(TEXT)
    completed = next(m for d, m in frames if d == "s" and m.get("type") == "response.completed")
    trailer = {"type": "response.done", "response": copy.deepcopy(completed["response"]), "sequence_number": 99}
    text = json.dumps([m for d, m in frames if d == "s"])   # the same stream again, with new ids
    for old_id in {completed["response"]["id"], *(item["id"] for item in completed["response"]["output"])}:
        text = text.replace(old_id, old_id + "_second")
    second = [("c", dict(frames[0][1]))] + [("s", m) for m in json.loads(text)]
    created = next(i for i, (d, m) in enumerate(second) if d == "s" and m["type"] == "response.created")
    mixed = frames + second[:created + 2] + [("s", trailer)] + second[created + 2:]
    for after, clause in (("discouraged", "STREAM-NO-TRAILING-FRAME"), ("forbidden", "STREAM-NOTHING-AFTER-TERMINAL")):
        m = run(copy.deepcopy(mixed), after_terminal=after)
        assert clauses(m) == {clause}, [(f.clause, f.message) for f in violations(m)]
        assert [f.clause for f in m.requests[0].findings if f.kind == "violation"] == [clause]
        assert trailer["type"] not in [e["type"] for e in m.requests[1].events]
    with pytest.raises(ValueError):
        StreamMonitor(False, after_terminal="sometimes")


def test_timed_out_findings_come_from_the_monitor():
    m = StreamMonitor(PERMISSIVE)
    m.sent({"type": "response.create"})
    m.sent({"type": "response.create"})
    m.sent({"type": "response.create"})
    m.feed(json.dumps({"type": "response.created", "sequence_number": 0,
                       "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}}))
    m.feed(json.dumps({"type": "error", "error": {"type": "invalid_request_error", "code": "x", "message": "no"}}))
    started = m.timed_out(0, "30s")
    assert started is not None and started.clause == "STREAM-ONE-TERMINAL" and started.response_id == "resp_1"
    assert m.requests[1].state == "rejected" and m.timed_out(1, "30s") is None
    silent = m.timed_out(2, "30s")
    assert silent is not None and silent.clause == "CREATE-ANSWERED" and "30s" in silent.message
    assert started in m.requests[0].findings and silent in m.requests[2].findings and silent in m.findings


@pytest.mark.parametrize("mid", ["seq-by-two", "seq-from-one", "seq-gap"])
def test_sequence_gaps_are_not_monotonic_violations(mid):
    _, example, mutate, _, _ = next(m for m in MUTATIONS if m[0] == mid)
    found = clauses(run(mutate(copy.deepcopy(load(example)))))
    assert "SEQ-MONOTONIC" not in found and "SEQ-FROM-ZERO-BY-ONE" in found


def test_precise_single_clause_for_simple_mutations():
    """Mutations that break one rule report that rule only."""
    for mid in ("corrupt-text-delta", "drop-in-progress", "terminal-output-empty", "seq-missing",
                "default-lane-tagged", "completed-without-usage", "previous-id-not-echoed", "seq-by-two"):
        _, example, mutate, clause, mode = next(m for m in MUTATIONS if m[0] == mid)
        m = run(mutate(copy.deepcopy(load(example))), _schemas(mode))
        assert clauses(m) == {clause}, (mid, [(f.clause, f.message) for f in violations(m)])


def test_findings_are_reported_once_per_response():
    frames = renumber(0, 2)(copy.deepcopy(load(TEXT)))
    m = run(frames)
    assert len(violations(m)) == 1


def test_schema_finding_names_pointer_and_rule():
    frames = edit(DELTA, setter("output_index", "0"))(copy.deepcopy(load(TEXT)))
    m = run(frames, real_schemas())
    f = next(f for f in m.findings if f.clause == "SCHEMA-SERVER-EVENT")
    assert f.pointer == "/output_index" and "[type]" in f.message
    assert f.response_id == "resp_example_text_0001"
    assert f in m.requests[0].findings


# ----------------------------------------------------------------------------------------
# 3. extensions, garbage, attribution


def test_unknown_event_type_is_an_extension_only():
    frames = load(TEXT)
    i = where(frames, DELTA, 1)
    frames.insert(i, ("s", {"type": "response.vendor.heartbeat", "note": "x"}))
    frames.insert(i, ("s", {"type": "response.vendor.heartbeat", "note": "y"}))
    for mode in (False, "real"):
        m = run(frames, _schemas(mode))
        assert violations(m) == []
        ext = [f for f in m.findings if f.kind == "extension"]
        assert [(f.clause, f.pointer) for f in ext] == [("EXT-UNKNOWN-TOLERATED", "/type")]


def test_response_done_is_an_extension_not_a_terminal():
    """An extension, never a terminal event; after the terminal event it is a private trailer
    (§4.3 item 15a, a SHOULD finding by default) and nothing else."""
    frames = load(TEXT)
    done = copy.deepcopy(frames[where(frames, "response.completed")][1])
    done["type"] = "response.done"
    done["sequence_number"] += 1
    for mode in (False, PERMISSIVE, "real"):
        m = run(frames + [("s", done)], _schemas(mode))
        assert clauses(m) == {"STREAM-NO-TRAILING-FRAME"}
        assert m.requests[0].terminal_type == "response.completed"
        assert any(f.kind == "extension" and "response.done" in f.message for f in m.findings)
    # and instead of the terminal event, it does not end the response
    frames2 = copy.deepcopy(frames)
    frames2[where(frames2, "response.completed")] = ("s", dict(done, sequence_number=11))
    m = run(frames2)
    assert clauses(m) == {"STREAM-ONE-TERMINAL"}


def test_unknown_field_is_an_extension_reported_once():
    frames = edit_all(lambda msg: msg.get("type") == DELTA, setter("vendor_hint", 1))(load(TEXT))
    m = run(frames, real_schemas())
    assert violations(m) == []
    ext = [f for f in m.findings if f.kind == "extension"]
    assert len(ext) == 1 and ext[0].pointer == "/vendor_hint"


def test_obfuscation_field_is_known():
    frames = edit_all(lambda msg: msg.get("type") == DELTA, setter("obfuscation", "aB3"))(load(TEXT))
    m = run(frames, real_schemas())
    assert m.findings == []


def test_unknown_event_does_not_break_attribution():
    frames = load(LANES)
    frames.insert(5, ("s", {"type": "codex.rate_limits", "primary": {"used_percent": 3}}))
    frames.insert(9, ("s", {"type": "x.custom", "stream_id": "planner", "sequence_number": 99}))
    m = run(frames)
    assert [r.state for r in m.requests] == ["done", "done"]
    # an extension that shares the numbering is checked like the others
    assert clauses(m) <= {"SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE"}


GARBAGE = [
    b"", "", " ", "\x00", "null", "true", "1e999", '"string"', "{", "}", "{\"type\":", "[" * 50000,
    "{\"a\":" * 50000, '{"type": null}', '{"type": ["response.created"]}', '{"type": "response.created"}',
    '{"type": "response.created", "response": []}', '{"type": "response.output_text.delta", "item_id": {}}',
    '{"type": "response.output_text.delta", "item_id": [], "content_index": {}, "stream_id": [1]}',
    '{"type": "response.output_item.added", "item": {"id": []}, "output_index": []}',
    '{"type": "response.content_part.added", "item_id": "x", "content_index": [0]}',
    '{"type": "response.completed", "response": {"id": {}, "output": {}}}',
    '{"type": "error", "error": "boom", "stream_id": {}}', '{"type": "response.steer.accepted", "steer": 5}',
    '{"type": "response.inject.failed", "response_id": []}', "NaN", "data:", "event:\n",
    "\ud800", bytearray(b"{\"type\":\"x\"}"), memoryview(b"\x80\x81"), None, 42, 3.5, object(),
]


@pytest.mark.parametrize("data", GARBAGE, ids=[f"g{i}" for i in range(len(GARBAGE))])
def test_garbage_never_raises(data):
    m = StreamMonitor(PERMISSIVE)
    m.sent({"type": "response.create", "model": "m"})
    m.sent("not json at all")
    m.sent(b"\x00")
    m.sent(None)
    obs = m.feed(data)
    assert obs.index == 0
    m.finish()
    assert m.internal_errors == []


def test_garbage_with_real_schemas_never_raises():
    m = StreamMonitor(real_schemas())
    m.sent({"type": "response.create", "model": "m"})
    for data in GARBAGE:
        m.feed(data)
    m.finish()
    assert m.internal_errors == []


def test_random_mutations_never_raise():
    rng = random.Random(1234)
    base = [json.dumps(msg) for d, msg in load(FC) if d == "s"]
    for _ in range(300):
        m = StreamMonitor(PERMISSIVE)
        m.sent({"type": "response.create", "model": "m"})
        for text in base:
            if rng.random() < 0.3:
                pos = rng.randrange(len(text) + 1)
                text = text[:pos] + rng.choice(['"', "}", "0", "-1", "null", "[]", ""]) + text[pos + 1:]
            m.feed(text)
        m.finish()
        assert m.internal_errors == []


def test_unhashable_values_inside_a_response_never_raise():
    """Lists where ids, indexes and codes belong, once a response and an item exist."""
    # the terminal output item's id: the response still ends (no wait for a terminal event)
    m = run(edit("response.completed", setter("response.output.0.id", ["x"]))(load(TEXT)))
    assert m.requests[0].state == "done" and "STREAM-ONE-TERMINAL" not in clauses(m)
    # a content_index that is a list
    m = run(edit("response.content_part.added", setter("content_index", [0]))(load(TEXT)))
    assert m.requests[0].state == "done"
    # a content_part.done whose part type is an object
    m = run(edit("response.content_part.done", setter("part.type", {"t": 1}))(load(TEXT)))
    assert m.requests[0].state == "done"
    # an untagged error whose code is a list, answering a named-lane create
    m = run([("c", {"type": "response.create", "stream_id": "main", "model": "m"}),
             ("s", {"type": "error", "error": {"code": ["x"], "message": "no"}})])
    assert m.requests[0].state == "rejected" and clauses(m) == {"LANE-TAGGED"}


def test_huge_frame_is_fine():
    frames = load(TEXT)
    big = "x" * 5_000_000
    frames = edit(DELTA, setter("delta", big))(frames)
    m = run(frames)
    assert clauses(m) == {"STREAM-DELTAS-ADD-UP"}
    assert len(violations(m)[0].message) < 400  # messages stay short


def test_request_numbers_and_observed():
    m = StreamMonitor(False)
    assert m.sent({"type": "response.create", "model": "m"}) == 0
    assert m.sent({"type": "response.steer", "previous_response_id": "r", "input": "x"}) is None
    assert m.sent({"type": "response.create", "model": "m"}) == 1
    frames = [msg for d, msg in load(TEXT) if d == "s"]
    obs = [m.feed(json.dumps(msg), now=float(i)) for i, msg in enumerate(frames)]
    assert [o.index for o in obs] == list(range(len(frames)))
    assert {o.request for o in obs} == {0}
    assert obs[3].t == 3.0 and obs[3].message["type"] == "response.content_part.added"
    assert m.requests[0].response["status"] == "completed"
    assert m.requests[1].state == "pending"
    assert m.finish() == [] and m.finish() == []


def test_connection_level_error_answers_no_create():
    limit = load_event("error-websocket_connection_limit_reached.json")
    m = run(load(TEXT) + [("s", limit)])
    assert m.connection_errors == [limit] and violations(m) == []
    # with a create pending it is that create's answer (field reports: the turn never starts)
    m = run(load(TEXT) + [("c", {"type": "response.create", "model": "m"}), ("s", limit)])
    assert m.connection_errors == [] and m.requests[1].state == "rejected"


def test_untagged_connection_limit_error_for_named_lane_is_not_a_lane_violation():
    limit = load_event("error-websocket_connection_limit_reached.json")
    m = run([("c", {"type": "response.create", "stream_id": "main", "model": "m"}), ("s", limit)])
    assert violations(m) == [] and m.requests[0].state == "rejected"
    bad = load_event("error-invalid_stream_id.json")
    m = run([("c", {"type": "response.create", "stream_id": "", "model": "m"}), ("s", bad)])
    assert violations(m) == [] and m.requests[0].error == bad


def test_error_reply_to_malformed_client_frame_is_connection_level():
    bad = {"type": "error", "status": 400, "error": {"type": "invalid_request_error", "code": "invalid_json",
                                                      "message": "bad", "param": None}}
    frames = load(TEXT)
    i = where(frames, DELTA, 1)
    frames[i:i] = [("c", "{not json"), ("s", bad)]
    m = run(frames)
    assert violations(m) == [] and m.connection_errors == [bad]
    assert m.requests[0].terminal_type == "response.completed"


def test_busy_reject_error_goes_to_the_queued_create():
    """P-legacy reject policy: the second create is rejected while the first streams."""
    busy = {"type": "error", "status": 409, "error": {"type": "invalid_request_error",
                                                        "code": "concurrent_request", "message": "busy"}}
    frames = load(TEXT)
    i = where(frames, DELTA, 1)
    frames[i:i] = [("c", {"type": "response.create", "model": "m", "input": "again"}), ("s", busy)]
    m = run(frames)
    assert violations(m) == []
    assert [r.state for r in m.requests] == ["done", "rejected"]
    assert m.requests[1].error == busy


def test_mid_stream_error_then_failed_is_one_ending():
    err = {"type": "error", "status": 500, "sequence_number": 6,
           "error": {"type": "server_error", "code": "server_error", "message": "boom"}}
    frames = load(TEXT)
    i = where(frames, DELTA, 2)
    failed = copy.deepcopy(frames[where(frames, "response.completed")][1])
    failed.update(type="response.failed", sequence_number=7)
    failed["response"].update(status="failed", output=[], usage=None,
                              error={"code": "server_error", "message": "boom"})
    delta = frames[i][1]
    frames = frames[:i] + [("s", err), ("s", failed)]
    m = run(frames, real_schemas())
    assert violations(m) == []
    rs = m.requests[0]
    assert rs.error == err and rs.terminal_type == "response.failed" and rs.state == "done"
    # without the response.failed the error alone ends the request
    m = run(frames[:-1])
    assert violations(m) == [] and m.requests[0].terminal_type is None and m.requests[0].state == "done"
    # but a delta after the error is a frame of a finished response
    m = run(frames[:-1] + [("s", delta)])
    assert clauses(m) == {"STREAM-TERMINAL-LAST"}


def test_queued_default_lane_creates_run_in_order():
    first = load(TEXT)
    second = [(d, msg) for d, msg in load(FC)]
    creates = [x for x in first + second if x[0] == "c"]
    events = [x for x in first + second if x[0] == "s"]
    m = run(creates + events)
    assert violations(m) == []
    assert [r.response_id for r in m.requests] == ["resp_example_text_0001", "resp_example_fc_0001",
                                                   "resp_example_fc_0002"]


def test_response_queued_then_created():
    frames = load(TEXT)
    created = frames[where(frames, "response.created")][1]
    queued = copy.deepcopy(created)
    queued["type"] = "response.queued"
    queued["response"]["status"] = "queued"
    frames = renumber(1, 1)(frames)
    frames.insert(where(frames, "response.created"), ("s", dict(queued, sequence_number=0)))
    m = run(frames, real_schemas())
    assert violations(m) == []
    assert m.requests[0].events[0]["type"] == "response.queued"


def test_steer_pending_after_completed_is_not_terminal_last():
    frames = load(TEXT)
    pending = {"type": "response.steer.pending", "sequence_number": 12,
               "steer": {"id": "steer_1", "previous_response_id": "resp_example_text_0001"},
               "reason": "waiting_for_required_input", "required_input": []}
    frames.insert(where(frames, DELTA, 1), ("c", {"type": "response.steer",
                                                  "previous_response_id": "resp_example_text_0001",
                                                  "input": "shorter"}))
    m = run(frames + [("s", pending)], real_schemas())
    assert violations(m) == []
    assert m.requests[0].events[-1] is not None and len(m.requests) == 1


def test_two_lanes_attribution_uses_item_ids_when_tags_are_missing():
    frames = load(LANES)
    # strip the tag from one research delta: the item id still names the response
    frames = edit(DELTA, deleter("stream_id"), nth=1)(frames)
    m = run(frames)
    assert clauses(m) == {"LANE-TAGGED"}
    f = violations(m)[0]
    assert f.response_id == "resp_example_lane_risk"


def test_missing_terminal_reported_by_finish_only():
    frames = drop("response.completed")(load(TEXT))
    m = run(frames, finish=False)
    assert violations(m) == []
    out = m.finish()
    assert [f.clause for f in out] == ["STREAM-ONE-TERMINAL"] and out[0].response_id == "resp_example_text_0001"


def test_schema_issue_reported_once_per_request():
    frames = edit_all(lambda msg: msg.get("type") == DELTA, setter("logprobs", "none"))(load(TEXT))
    frames += [(d, copy.deepcopy(msg)) for d, msg in load(FC)]
    frames = edit_all(lambda msg: msg.get("type") == DELTA, setter("logprobs", "none"))(frames)
    m = run(frames, real_schemas())
    per_request = [[f.pointer for f in rs.findings if f.clause == "SCHEMA-SERVER-EVENT"] for rs in m.requests]
    assert per_request == [["/logprobs"], [], ["/logprobs"]]
    assert len([f for f in m.findings if f.clause == "SCHEMA-SERVER-EVENT"]) == 2
    # frames of no request: once per connection
    m = StreamMonitor(real_schemas())
    for _ in range(3):
        m.feed(json.dumps({"type": "response.output_text.delta", "delta": 5}))
    assert len({(f.pointer, f.message) for f in m.findings}) == len(m.findings)
