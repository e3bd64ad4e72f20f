"""Self-tests of the monitor's profile leniencies and of the production facts of issue 8.

§4.3 item 16a (docs/spec.md): with ``setup_events="optional"`` unannounced items and parts are
INFO observations, with ``terminal_output="optional"`` a missing, null or empty terminal
``output`` is; deltas that arrive still add up to ``.done`` and to ``output_item.done`` (MUST).
§3.4: control events (``ping``, ``codex.rate_limits``, ``response.metadata``,
``codex.keepalive``, any unknown type without a response id) are extensions, never
attributed. §4.3 item 11 update: ``response.queued`` right after a queued ``response.created``.
"""
from __future__ import annotations

import copy
import json

import pytest

from conformance.monitor import INFO, StreamMonitor
from test_monitor import FC, TEXT, load, real_schemas, run, where

SETUP = ("response.output_item.added", "response.content_part.added", "response.reasoning_summary_part.added")
OPTIONAL = {"setup_events": "optional", "terminal_output": "optional"}


def kinds(m: StreamMonitor, kind: str) -> set[str]:
    return {f.clause for f in m.findings if f.kind == kind}


def without_setup(frames):
    """The stream as --omit-setup-events sends it: setup events gone, numbers contiguous."""
    return renumbered([copy.deepcopy(f) for f in frames if not (f[0] == "s" and f[1].get("type") in SETUP)])


def renumbered(frames):
    """sequence_number 0, 1, 2 ... from each response.created on."""
    n = 0
    for d, msg in frames:
        if d == "s" and "sequence_number" in msg:
            n = 0 if msg["type"] == "response.created" else n
            msg["sequence_number"] = n
            n += 1
    return frames


def terminal_output(frames, how: str):
    frames = copy.deepcopy(frames)
    resp = frames[where(frames, "response.completed")][1]["response"]
    if how == "missing":
        del resp["output"]
    else:
        resp["output"] = None if how == "null" else []
    return frames


@pytest.mark.parametrize("example", [TEXT, FC])
def test_setup_events_left_out(example):
    frames = without_setup(load(example))
    strict = run(frames)
    assert {"STREAM-ANNOUNCED-ITEM"} <= kinds(strict, "violation")
    lenient = run(frames, **OPTIONAL)
    assert kinds(lenient, "violation") == set()
    assert "STREAM-ANNOUNCED-ITEM" in kinds(lenient, INFO)
    # one observation per response and clause, not one per event
    infos = [f for f in lenient.findings if f.kind == INFO]
    assert len(infos) == len({(f.clause, f.response_id) for f in infos})


def test_left_out_setup_events_still_add_up():
    frames = without_setup(load(TEXT))
    frames[where(frames, "response.output_text.delta")][1]["delta"] += "X"
    assert "STREAM-DELTAS-ADD-UP" in kinds(run(frames, **OPTIONAL), "violation")
    frames = without_setup(load(TEXT))
    frames[where(frames, "response.output_item.done")][1]["item"]["content"][0]["text"] = "other"
    assert "STREAM-DONE-MATCHES-OUTPUT" in kinds(run(frames, **OPTIONAL), "violation")


@pytest.mark.parametrize("how", ["empty", "null", "missing"])
@pytest.mark.parametrize("schemas", [False, "real"])
def test_terminal_output_left_out(how, schemas):
    frames = terminal_output(load(TEXT), how)
    sch = real_schemas() if schemas else False
    strict = run(frames, sch)
    assert "STREAM-DONE-MATCHES-OUTPUT" in kinds(strict, "violation") | kinds(strict, "violation")
    lenient = run(frames, sch, terminal_output="optional")
    assert kinds(lenient, "violation") == set(), [f.message for f in lenient.findings]
    assert "STREAM-DONE-MATCHES-OUTPUT" in kinds(lenient, INFO)


def test_terminal_without_response_stays_a_violation():
    frames = copy.deepcopy(load(TEXT))
    del frames[where(frames, "response.completed")][1]["response"]
    m = run(frames, **OPTIONAL)
    assert "STREAM-TERMINAL-RESPONSE" in kinds(m, "violation")


def test_bad_leniency_value():
    with pytest.raises(ValueError, match="setup_events"):
        StreamMonitor(False, setup_events="sometimes")


CONTROL = [{"type": "ping"},
           {"type": "codex.rate_limits", "plan_type": "x", "rate_limits": {}},
           {"type": "response.metadata", "metadata": {"type": "safety_buffering", "use_cases": []}},
           {"type": "some.future.control", "value": 1}]
KEEPALIVE = {"type": "codex.keepalive"}


def with_control_events(frames):
    """Control events before every response.created (after its create) and after every terminal."""
    out = []
    for d, msg in copy.deepcopy(frames):
        if d == "s" and msg.get("type") == "response.created":
            out += [("s", dict(e)) for e in CONTROL]
        out.append((d, msg))
        if d == "s" and msg.get("type") in ("response.completed", "response.failed", "response.incomplete"):
            out.append(("s", dict(KEEPALIVE)))
    return out


@pytest.mark.parametrize("schemas", [False, "real"])
@pytest.mark.parametrize("example", [TEXT, FC, "stream-two-lanes-interleaved.json",
                                     "stream-failed-continuation-evicts-cache.json"])
def test_control_events_disturb_nothing(example, schemas):
    sch = real_schemas() if schemas else False
    plain = run(load(example), sch)
    m = StreamMonitor(sch)
    attributed = []
    for d, msg in with_control_events(load(example)):
        if d == "c":
            m.sent(msg)
            continue
        obs = m.feed(json.dumps(msg))
        if msg["type"] in {e["type"] for e in CONTROL + [KEEPALIVE]}:
            attributed.append(obs.request)
    m.finish()
    assert set(attributed) == {None}, "a control event was attributed to a response"
    assert kinds(m, "violation") == kinds(plain, "violation") == set()
    assert [(r.state, r.response_id, len(r.events)) for r in m.requests] == \
        [(r.state, r.response_id, len(r.events)) for r in plain.requests]
    ext = [f.message for f in m.findings if f.clause == "EXT-UNKNOWN-TOLERATED"]
    assert len(ext) == len(CONTROL) + 1, ext  # once per type


def _queued_stream(created_status: str):
    frames = copy.deepcopy(load(TEXT))
    i = where(frames, "response.created")
    frames[i][1]["response"]["status"] = created_status
    queued = copy.deepcopy(frames[i][1])
    queued["type"] = "response.queued"
    queued["response"]["status"] = "queued"
    frames.insert(i + 1, ("s", queued))
    return renumbered(frames)


def test_queued_after_a_queued_created_is_accepted():
    assert kinds(run(_queued_stream("queued")), "violation") == set()


def test_queued_after_a_running_created_is_not():
    assert "STREAM-CREATED-FIRST" in kinds(run(_queued_stream("in_progress")), "violation")


def test_missing_name_is_one_should_finding_per_response():
    frames = copy.deepcopy(load(FC))
    for d, msg in frames:
        if d == "s" and msg.get("type") == "response.function_call_arguments.done":
            msg.pop("name", None)
    m = run(frames, real_schemas())
    found = [f for f in m.findings if f.kind == "violation"]
    assert {f.clause for f in found} == {"FC-DONE-NAME"}
    assert len(found) == len({f.response_id for f in found})


def test_one_missing_field_one_finding_per_response():
    """The same field missing on two event types of one response: one schema finding."""
    frames = copy.deepcopy(load(TEXT))
    for typ in ("response.output_text.delta", "response.output_text.done"):
        for d, msg in frames:
            if d == "s" and msg.get("type") == typ:
                msg.pop("logprobs", None)
    m = run(frames, real_schemas())
    schema = [f for f in m.findings if f.clause == "SCHEMA-SERVER-EVENT"]
    assert len(schema) == 1, [f.message for f in schema]
