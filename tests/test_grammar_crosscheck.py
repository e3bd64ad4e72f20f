"""Cross-check of the monitor's §4.3 grammar (docs/spec.md) against an independent reading.

``reference_problems`` reads the events of one response on the default lane in one pass,
written from the spec's items 11-18 without the monitor's code; it shares only the event
facts of conformance/monitor/events.py (it was the direct check of cases/test_stream_grammar.py). Both readings must agree that every example stream conforms,
and the reference must catch the seeded defect of every single-response grammar mutation of
tests/test_monitor.py that it covers.
"""
from __future__ import annotations

import copy
import json

import pytest
from monitor_mutations import load_example as load
from monitor_mutations import stream_names
from test_monitor import MUTATIONS

from conformance.monitor import StreamMonitor
from conformance.monitor.events import FAMILIES, PART_FAMILY, TERMINAL_STATUS
from conformance.schemas import get_schemas

PART_EVENTS = {"response.content_part.added": "content_index", "response.content_part.done": "content_index",
               "response.reasoning_summary_part.added": "summary_index",
               "response.reasoning_summary_part.done": "summary_index"}
CLAUSES = ("SCHEMA-SERVER-EVENT", "STREAM-CREATED-FIRST", "STREAM-IN-PROGRESS-FOLLOWS", "STREAM-ITEM-LIFECYCLE",
           "STREAM-INDEXES-IN-ORDER", "STREAM-ANNOUNCED-ITEM", "STREAM-DELTAS-ADD-UP", "STREAM-DONE-MATCHES-OUTPUT",
           "STREAM-ONE-TERMINAL", "STREAM-TERMINAL-LAST", "STREAM-TERMINAL-RESPONSE", "STREAM-INCOMPLETE-ITEM-LAST",
           "SEQ-PRESENT", "SEQ-MONOTONIC", "SEQ-FROM-ZERO-BY-ONE", "LANE-DEFAULT-UNTAGGED")


def _is_grammar_event(e: dict) -> bool:
    t = e.get("type")
    return (isinstance(t, str) and t.startswith("response.") and get_schemas().is_known(t)
            and not t.startswith(("response.steer.", "response.inject.")))


def _is_seq(v) -> bool:
    return type(v) is int and v >= 0


def _output_value(item: dict, family: str, idx):
    fld, _, container = FAMILIES[family]
    if container is None:
        return item.get(fld)
    seq = item.get("content" if container == "part" else "summary")
    if not isinstance(seq, list) or type(idx) is not int or not 0 <= idx < len(seq):
        return None
    part = seq[idx]
    return part.get(fld) if isinstance(part, dict) else None


def reference_problems(events: list[dict]) -> dict[str, list[str]]:
    """The grammar problems of one default-lane response's events, by clause."""
    p: dict[str, list[str]] = {c: [] for c in CLAUSES}
    numbered = [e for e in events if e.get("type") != "error"]
    ev = [e for e in numbered if _is_grammar_event(e)]
    types = [e.get("type") for e in ev]

    p["SEQ-PRESENT"] += [f"#{i} {e.get('type')}" for i, e in enumerate(ev) if not _is_seq(e.get("sequence_number"))]
    ints = [e.get("sequence_number") for e in numbered if _is_seq(e.get("sequence_number"))]
    p["SEQ-MONOTONIC"] += [f"{a} -> {b}" for a, b in zip(ints, ints[1:]) if b <= a]
    if ints and ints[0] != 0:
        p["SEQ-FROM-ZERO-BY-ONE"].append(f"starts at {ints[0]}")
    p["SEQ-FROM-ZERO-BY-ONE"] += [f"{a} -> {b}" for a, b in zip(ints, ints[1:]) if b != a + 1]

    lead = [t for t in types]
    while lead and lead[0] == "response.queued":
        lead.pop(0)
    if lead[:1] != ["response.created"] or types.count("response.created") != 1:
        p["STREAM-CREATED-FIRST"].append(f"starts {types[:3]}")
    p["LANE-DEFAULT-UNTAGGED"] += [e.get("type") for e in events if "stream_id" in e]

    terminals = [i for i, t in enumerate(types) if t in TERMINAL_STATUS]
    if len(terminals) != 1:
        p["STREAM-ONE-TERMINAL"].append(f"{len(terminals)} terminal events")
    if terminals and terminals[0] != len(ev) - 1:
        p["STREAM-TERMINAL-LAST"].append(f"after the terminal: {types[terminals[0] + 1:]}")

    created = next((e.get("response") for e in ev if e.get("type") == "response.created"), None)
    term = ev[terminals[0]] if terminals else None
    final = term.get("response") if term else None
    if "response.created" in types:
        nxt = types[types.index("response.created") + 1:][:1]
        empty_end = nxt and nxt[0] in TERMINAL_STATUS and isinstance(final, dict) and not final.get("output")
        if nxt != ["response.in_progress"] and not empty_end:
            p["STREAM-IN-PROGRESS-FOLLOWS"].append(f"created is followed by {nxt}")
    if term is not None:
        if not isinstance(final, dict):
            p["STREAM-TERMINAL-RESPONSE"].append("no response object")
        else:
            if final.get("status") != TERMINAL_STATUS[term["type"]]:
                p["STREAM-TERMINAL-RESPONSE"].append(f"status {final.get('status')!r}")
            cid = created.get("id") if isinstance(created, dict) else None
            if cid is not None and final.get("id") != cid:
                p["STREAM-TERMINAL-RESPONSE"].append(f"id {final.get('id')!r}, created {cid!r}")
            if term["type"] == "response.completed" and not isinstance(final.get("usage"), dict):
                p["STREAM-TERMINAL-RESPONSE"].append("completed without usage")

    added: dict = {}        # item id -> {"oi", "done", "item"}
    order: list = []
    parts: dict = {}        # (item id, part kind, index) -> "open" | "text-done" | "closed"
    next_part: dict = {}    # (item id, part kind) -> next index expected
    deltas: dict = {}       # (item id, family, index) -> deltas
    dones: dict = {}        # (item id, family, index) -> .done value
    incomplete_item = None
    for i, e in enumerate(ev):
        t = e.get("type")
        if t == "response.output_item.added":
            item = e.get("item") if isinstance(e.get("item"), dict) else {}
            iid = item.get("id") or f"#{len(order)}"
            if incomplete_item is not None:
                p["STREAM-INCOMPLETE-ITEM-LAST"].append(f"{iid} added after {incomplete_item} ended incomplete")
            if e.get("output_index") != len(order):
                p["STREAM-INDEXES-IN-ORDER"].append(f"{iid}: output_index {e.get('output_index')!r}")
            if iid in added:
                p["STREAM-ITEM-LIFECYCLE"].append(f"item {iid} added twice")
            added[iid] = {"oi": e.get("output_index"), "done": False, "item": None}
            order.append(iid)
            continue
        if t == "response.output_item.done":
            item = e.get("item") if isinstance(e.get("item"), dict) else {}
            iid = item.get("id")
            if iid is None:
                iid = next((k for k, v in added.items() if v["oi"] == e.get("output_index")), None)
            st = added.get(iid)
            if st is None or st["done"]:
                p["STREAM-ITEM-LIFECYCLE"].append(f"output_item.done for {iid!r} never added or twice")
                continue
            if any(k[0] == iid and v != "closed" for k, v in parts.items()):
                p["STREAM-ITEM-LIFECYCLE"].append(f"output_item.done for {iid} with parts still open")
            st["done"], st["item"] = True, item
            for (k_iid, fam, idx), value in dones.items():
                if k_iid == iid and _output_value(item, fam, idx) != value:
                    p["STREAM-DONE-MATCHES-OUTPUT"].append(f"output_item.done {iid}: {fam} [{idx}]")
            if item.get("status") == "incomplete":
                incomplete_item = iid
            continue
        iid = e.get("item_id")
        if iid is None:
            continue
        st = added.get(iid)
        if st is None or st["done"]:
            p["STREAM-ANNOUNCED-ITEM"].append(f"#{i} {t} references {iid!r}")
            continue
        if e.get("output_index") != st["oi"]:
            p["STREAM-ANNOUNCED-ITEM"].append(f"#{i} {t}: output_index {e.get('output_index')!r}")
        if t in PART_EVENTS:
            kind = PART_EVENTS[t]
            idx = e.get(kind)
            key = (iid, kind, idx)
            if t.endswith(".added"):
                want = next_part.get((iid, kind), 0)
                if idx != want:
                    p["STREAM-INDEXES-IN-ORDER"].append(f"{t} of {iid}: {kind} {idx!r}, expected {want}")
                if key in parts:
                    p["STREAM-ITEM-LIFECYCLE"].append(f"{t} of {iid}: part {idx!r} added twice")
                parts[key] = "open"
                next_part[(iid, kind)] = (idx + 1) if type(idx) is int else want + 1
            else:
                if parts.get(key) not in ("open", "text-done"):  # after deltas, their .done comes first
                    p["STREAM-ITEM-LIFECYCLE"].append(f"{t} of {iid}: part {idx!r} not open, or its deltas not done")
                parts[key] = "closed"
                part = e.get("part") if isinstance(e.get("part"), dict) else {}
                fam, fld = (("response.reasoning_summary_text", "text") if kind == "summary_index"
                            else PART_FAMILY.get(part.get("type"), (None, None)))
                value = dones.get((iid, fam, idx))
                if value is not None and part.get(fld) != value:
                    p["STREAM-DONE-MATCHES-OUTPUT"].append(f"{t} of {iid}: part {idx!r} {fld} differs from .done")
            continue
        family, _, suffix = (t or "").rpartition(".")
        if family in FAMILIES and suffix in ("delta", "done"):
            fld, idx_field, container = FAMILIES[family]
            idx = e.get(idx_field) if idx_field else None
            if container is not None and parts.get((iid, idx_field, idx)) not in ("open", "deltas"):
                p["STREAM-ITEM-LIFECYCLE"].append(f"#{i} {t} of {iid} outside an open part")
            key = (iid, family, idx)
            if suffix == "delta":
                if container is not None and parts.get((iid, idx_field, idx)) == "open":
                    parts[(iid, idx_field, idx)] = "deltas"
                if key in dones:
                    p["STREAM-ITEM-LIFECYCLE"].append(f"#{i} {t} of {iid} after its .done")
                d = e.get("delta")
                deltas.setdefault(key, []).append(d if isinstance(d, str) else "")
            else:
                value = e.get(fld)
                dones[key] = value
                if container is not None:
                    parts[(iid, idx_field, idx)] = "text-done"
                if isinstance(value, str) and "".join(deltas.get(key, [])) != value:
                    p["STREAM-DELTAS-ADD-UP"].append(f"{t} of {iid}")

    if term is not None and term.get("type") == "response.completed":
        if any(not added[k]["done"] for k in order):
            p["STREAM-ITEM-LIFECYCLE"].append("response.completed while items are open")
    if term is not None and incomplete_item is not None and term.get("type") != "response.incomplete":
        p["STREAM-INCOMPLETE-ITEM-LAST"].append(f"item {incomplete_item} ended incomplete, then {term.get('type')}")
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
                p["STREAM-DONE-MATCHES-OUTPUT"].append(f"terminal output lacks {iid}")
                continue
            for (k_iid, fam, idx), value in dones.items():
                if k_iid == iid and _output_value(out, fam, idx) != value:
                    p["STREAM-DONE-MATCHES-OUTPUT"].append(f"terminal output item {iid}: {fam} [{idx}]")
    schemas = get_schemas()
    p["SCHEMA-SERVER-EVENT"] += [f"#{i} {e.get('type')}" for i, e in enumerate(ev) if schemas.validate(e)]
    return {c: v for c, v in p.items() if v}


def _one_default_lane_response(frames) -> bool:
    creates = [m for d, m in frames if d == "c" and isinstance(m, dict) and m.get("type") == "response.create"]
    return len(creates) == 1 and "stream_id" not in creates[0] and all(d == "c" or isinstance(m, dict)
                                                                         for d, m in frames)


def _server_events(frames) -> list[dict]:
    return [m for d, m in frames if d == "s"]


def run(frames, schemas) -> StreamMonitor:
    m = StreamMonitor(schemas)
    for d, msg in frames:
        if d == "c":
            m.sent(msg)
        else:
            m.feed(json.dumps(msg))
    m.finish()
    assert not m.internal_errors
    return m


@pytest.mark.parametrize("name", stream_names())
def test_both_readings_find_every_example_stream_conforming(name):
    frames = load(name)
    m = run(frames, get_schemas())
    assert [f for f in m.findings if f.kind == "violation"] == []
    for rs in m.requests:  # each response of the stream on its own
        if rs.lane is None and rs.origin == "create" and rs.terminal_type:  # a response that streamed
            assert reference_problems(rs.events) == {}, (name, rs.index)


CROSS = [mu for mu in MUTATIONS if mu[3] in CLAUSES and _one_default_lane_response(load(mu[1]))]


@pytest.mark.parametrize("mid,example,mutate,clause,mode", CROSS, ids=[mu[0] for mu in CROSS])
def test_both_readings_catch_the_seeded_defect(mid, example, mutate, clause, mode):
    frames = mutate(copy.deepcopy(load(example)))
    if not _one_default_lane_response(frames):
        pytest.skip("the mutation made more than one default-lane response")
    monitor = {f.clause for f in run(frames, get_schemas() if mode else False).findings if f.kind == "violation"}
    reference = reference_problems(_server_events(frames))
    assert clause in monitor
    assert clause in reference, f"{mid}: the reference reading missed {clause}: {reference}"
