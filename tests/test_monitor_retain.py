"""Self-tests of ``StreamMonitor(retain="live")``, the mode the proxy runs the monitor in
(docs/proxy.md, "What it judges"; §4.3 item 11 of docs/spec.md).

The proxy reads no request's events or response objects, so its monitor counts events
instead of keeping them and releases an ended response's bulk (response objects, the
create's input, the text its deltas streamed). The verdicts must not change: the proxy used
to clear each request's event list after every frame, and the rule that accepts a
``response.queued`` right after a queued ``response.created`` (it counts the request's events)
then reported a false STREAM-CREATED-FIRST on every such response. Here: that stream through
the proxy's ``Watch``; the live and the full monitor on the example streams and a few hundred
mutations of them (findings, states and attribution equal); what an ended response keeps
after many turns on one connection, and that a long connection's book stops growing.
"""
from __future__ import annotations

import copy
import functools
import json
import random

import pytest

from conformance import verdicts as V
from conformance.monitor import StreamMonitor
from conformance.monitor.requests import ENDED_KEPT
from conformance.proxy.observe import Watch
from monitor_mutations import load_streams, mutate
from monitor_mutations import play as feed
from test_monitor import TEXT, load, real_schemas, where
from test_monitor_leniency import _queued_stream

MUTATED = 400


def queued_stream() -> list:
    """A text turn whose response.created says queued, then response.queued (a real server's
    order, accepted since the §4.3 item 11 update)."""
    return _queued_stream("queued")


def verdicts_of(monitor: StreamMonitor, observed: list) -> dict:
    """What the monitor judged, without what retain="live" drops (events, response objects)."""
    def listed(found):
        return [(f.clause, f.message, f.kind, f.frame_index, f.response_id, f.pointer) for f in found]

    return {
        "findings": listed(monitor.findings),
        "frames": [(o.index, o.request, listed(o.findings)) for o in observed],
        "requests": [(r.index, r.lane, r.response_id, str(r.state), r.terminal_type, r.origin, r.error,
                      len(r.events), listed(r.findings)) for r in monitor.requests if r is not None],
        "connection_errors": monitor.connection_errors,
        "unattributed": monitor.unattributed,
        "notes": monitor.notes,
        "internal_errors": monitor.internal_errors,
    }


@functools.cache
def registry() -> V.ClauseRegistry:
    return V.ClauseRegistry.load(V.default_clauses_path())


def watch_through(frames: list, number: int = 1) -> Watch:
    """A proxy watch that saw ``frames`` (("c" | "s", message)), still open."""
    watch = Watch(number, "127.0.0.1:1", registry=registry(), schemas=False)
    for direction, msg in frames:
        (watch.client_frame if direction == "c" else watch.upstream_frame)(json.dumps(msg))
    return watch


def test_queued_created_then_queued_is_clean_through_the_proxy():
    watch = watch_through(queued_stream())
    watch.close("upstream closed: code 1000", judge=True)
    assert watch.recorder.observations == [], [(o.clause, o.message) for o in watch.recorder.observations]
    assert watch.record()["verdict"] == V.PASS


@pytest.mark.parametrize("retain", ["all", "live"])
def test_queued_created_then_queued_is_clean_in_both_modes(retain):
    monitor = StreamMonitor(False, retain=retain)
    feed(monitor, queued_stream())
    assert [f.clause for f in monitor.findings] == []


def test_queued_after_a_running_created_is_still_a_finding_when_live():
    frames = _queued_stream("in_progress")
    monitor = StreamMonitor(False, retain="live")
    feed(monitor, frames)
    assert "STREAM-CREATED-FIRST" in {f.clause for f in monitor.findings}


@pytest.mark.parametrize("mode", ["grammar", "schemas"])
def test_live_judges_as_all_on_mutated_streams(mode):
    schemas = False if mode == "grammar" else real_schemas()
    bases = load_streams()
    rng = random.Random(19)
    streams = bases + [mutate(rng.choice(bases), rng) for _ in range(MUTATED)]
    findings = 0
    for number, frames in enumerate(streams):
        full, live = StreamMonitor(schemas), StreamMonitor(schemas, retain="live")
        expected = verdicts_of(full, feed(full, frames))
        got = verdicts_of(live, feed(live, frames))
        assert got == expected, f"stream {number}: {[k for k in expected if expected[k] != got[k]]}"
        findings += len(expected["findings"])
    assert findings > MUTATED / 2  # the mutations did make findings to compare


def many_turns(count: int) -> list:
    """``count`` text turns on one connection, each with ids of its own."""
    text = json.dumps(load(TEXT))
    frames = []
    for turn in range(count):
        frames += json.loads(text.replace("resp_example_", f"resp_t{turn}_").replace("msg_example_", f"msg_t{turn}_"))
    return frames


def test_an_ended_response_keeps_only_a_small_record_when_live():
    frames = many_turns(50)
    full, live = StreamMonitor(False), StreamMonitor(False, retain="live")
    assert verdicts_of(full, feed(full, frames)) == verdicts_of(live, feed(live, frames))
    assert len(live.requests) == 50 and live.findings == []
    for request in live.requests:
        assert request.state == "done" and request.response is None and request.created is None
        assert list(request.events) == [] and len(request.events) > 5
        assert set(request.create) <= {"type", "model", "previous_response_id", "stream_id"}
        assert all(not item.deltas and not item.done_values for item in request.grammar.order)
    kept = full.requests[-1]
    assert kept.response is not None and len(kept.events) == len(live.requests[-1].events)
    assert any(item.deltas for item in kept.grammar.order)


def test_a_late_event_of_an_ended_response_is_still_judged_when_live():
    """Released state is state no rule reads after the end: an event of the first response
    after the second started is still STREAM-TERMINAL-LAST, of the right response."""
    frames = many_turns(2)
    late = copy.deepcopy(frames[where(frames, "response.output_text.delta")][1])
    per_turn = sum(1 for d, msg in frames if d == "s" and msg["type"] == "response.output_text.delta") // 2
    frames.insert(where(frames, "response.output_text.delta", per_turn), ("s", late))
    full, live = StreamMonitor(False), StreamMonitor(False, retain="live")
    expected = verdicts_of(full, feed(full, frames))
    assert "STREAM-TERMINAL-LAST" in {f[0] for f in expected["findings"]}
    assert verdicts_of(live, feed(live, frames)) == expected


def test_a_long_connection_keeps_a_bounded_book_when_live():
    """Past 2 x ENDED_KEPT ended responses the oldest are forgotten, ENDED_KEPT at a time: the
    book of a connection stops growing (a None slot per forgotten request), the verdicts of a
    clean stream do not change, and the lane's last response is kept."""
    turns = 5 * ENDED_KEPT
    frames = many_turns(turns)
    full, live = StreamMonitor(False), StreamMonitor(False, retain="live")
    expected, got = verdicts_of(full, feed(full, frames)), verdicts_of(live, feed(live, frames))
    assert got["findings"] == expected["findings"] == [] and got["frames"] == expected["frames"]
    kept = [request for request in live.requests if request is not None]
    assert len(live.requests) == turns and ENDED_KEPT <= len(kept) < 2 * ENDED_KEPT
    assert kept[-1] is live.requests[-1]  # the lane's last response
    book = live._attribution
    assert len(book._by_id) == len(kept) and len(book._item_owner) <= 2 * len(kept)


def test_an_event_of_a_forgotten_response_is_still_a_finding():
    """An event naming a response 2 x ENDED_KEPT responses back: the full monitor finds it
    after that response's end; the live one no longer knows the response, judges the event as
    one of an unknown response, and still reports it, without an internal error."""
    frames = many_turns(2 * ENDED_KEPT + 2)
    late = copy.deepcopy(frames[where(frames, "response.output_text.delta")][1])
    frames.append(("s", late))
    full, live = StreamMonitor(False), StreamMonitor(False, retain="live")
    feed(full, frames)
    feed(live, frames)
    assert "STREAM-TERMINAL-LAST" in {f.clause for f in full.findings}
    assert live.requests[0] is None and live.findings and not live.internal_errors


def test_retain_takes_all_or_live():
    with pytest.raises(ValueError, match="retain"):
        StreamMonitor(False, retain="some")


def test_a_closed_connection_keeps_only_its_record():
    """A proxy session keeps the watch of every connection it saw, for the report: once closed,
    a watch holds its record (verdicts, usage, notes), not the monitor's book, so a long
    session's collector does not walk every past connection's responses."""
    import gc

    frames = many_turns(3 * ENDED_KEPT)

    def tracked_after(count: int) -> int:
        gc.collect()
        before = len(gc.get_objects())
        watches = []
        for n in range(count):
            watch = watch_through(frames, n)
            watch.close("client closed: code 1000", judge=None)
            assert watch.record()["verdict"] == V.PASS
            watches.append(watch)
        gc.collect()
        return (len(gc.get_objects()) - before) / count

    assert tracked_after(8) < 60   # an open monitor's book after these turns: several hundred


def test_a_closed_connection_frees_its_book_at_once():
    """The monitor's parts refer to one another (bound methods), so a dropped monitor is a cycle:
    released on close, its requests go by reference counting, not at the next full collection
    (a pause that grows with every response still in the book)."""
    import gc

    watch = watch_through(many_turns(40))
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        watch.close("client closed: code 1000", judge=None)
        left_for_the_collector = gc.collect()
    finally:
        if enabled:
            gc.enable()
    assert left_for_the_collector < 40   # the book of 40 responses is several hundred objects
