"""Lanes (``stream_id``): spec §4.2 item 6 (lane names), §4.3 item 18 (tagging), §4.4 items
20-23a (FIFO per lane, concurrency across lanes, the 16-active and 32-name limits, reuse of a
name, per-lane eviction) and §4.5 items 25, 31 and 33 (a cache per lane, forks).

Which response belongs to which create is told by the lane and by a marker in ``metadata``
(echoed in the Response object), never by generated text; context is told by the nonce probe
(``conformance/probes.py``). Timing claims (FIFO without overlap, concurrency, the active
limit) are judged from the frame order: the creates go out back to back, the first asking for
a long answer (``casekit.long_turn``), on a socket whose turns last a while when the target
honours test controls (``X-Conformance-Turn-Delay-Ms``); when the timeline does not prove the
creates arrived while the first response ran, the case says it cannot judge (ERROR, with what
the target must do). Every case costs at most 4 creates, except the two limit cases:
LANE-ACTIVE-LIMIT 18 turns (the first a long one), LANE-NAMED-LIMIT 35 warm-ups (README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from conformance.casekit import (IN_FLIGHT_MARGIN_S, PROMPT, RAN, TIME_TOOL, expect_monitor_clean, long_turn,
                                paced, refusal_code, setup_turn, too_fast)
from conformance.client import HarnessError, Turn
from conformance.monitor import TERMINAL_TYPES
from conformance.probes import plant, probe_fields, recorded_nonces, seen

ORDER_KEY = "conformance_order"
TURN_DELAY_MS = 300          # every turn on a delayed socket lasts this long (test controls)
NOT_FOUND = "previous_response_not_found"
ORPHAN = [{"type": "function_call_output", "call_id": "call_conformance_orphan_lane", "output": "12:00"}]


# --- the timeline of a socket, read back from its messages ----------------------------------

@dataclass
class _Resp:
    rid: str
    lane: str | None
    order: str | None
    created_at: int
    terminal_at: int | None = None
    terminal_type: str | None = None


@dataclass
class _Lanes:
    responses: list[_Resp] = field(default_factory=list)     # in order of response.created
    errors: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        rs = ", ".join(f"{r.rid}[lane={r.lane!r} order={r.order}] created@{r.created_at} "
                       f"{(r.terminal_type or 'no terminal').split('.')[-1]}@{r.terminal_at}"
                       for r in self.responses)
        errs = ", ".join(f"error code={_code(e)!r} stream_id={e.get('stream_id')!r}" for e in self.errors)
        return "; ".join(x for x in (rs, errs) if x) or "no responses, no errors"

    def ended(self) -> int:
        return sum(1 for r in self.responses if r.terminal_type) + len(self.errors)

    def max_active(self) -> int:
        """The most responses between their response.created and terminal event at once."""
        marks = sorted([(r.created_at, 1) for r in self.responses]
                       + [(r.terminal_at, -1) for r in self.responses if r.terminal_at is not None])
        best = now = 0
        for _, step in marks:
            now += step
            best = max(best, now)
        return best


def _code(event: dict):
    inner = event.get("error")
    return inner.get("code") if isinstance(inner, dict) else None


def _read(messages: list[dict]) -> _Lanes:
    tl = _Lanes()
    by_id: dict[str, _Resp] = {}
    for index, msg in enumerate(messages):
        typ = msg.get("type")
        resp = msg.get("response") if isinstance(msg.get("response"), dict) else {}
        rid = resp.get("id")
        meta = resp.get("metadata") if isinstance(resp.get("metadata"), dict) else {}
        if typ == "response.created" and isinstance(rid, str) and rid not in by_id:
            by_id[rid] = _Resp(rid, msg.get("stream_id"), meta.get(ORDER_KEY), index)
            tl.responses.append(by_id[rid])
        elif typ in TERMINAL_TYPES and isinstance(rid, str) and rid in by_id and by_id[rid].terminal_at is None:
            by_id[rid].terminal_at, by_id[rid].terminal_type = index, typ
        elif typ == "error":
            tl.errors.append(msg)
    return tl


def _drain(conn, count: int, timeout: float) -> _Lanes:
    """Read until ``count`` creates are answered (terminal event or error) or the deadline."""
    deadline = time.monotonic() + timeout
    tl = _read(conn.messages)
    # the monitor's count too: a terminal event ends its response whatever id it names
    while tl.ended() < count and conn.ended_requests() < count and not conn.closed \
            and time.monotonic() < deadline:
        conn.recv_until(lambda m: True, timeout=deadline - time.monotonic())
        tl = _read(conn.messages)
    return tl


def _in_flight(conn, first: _Resp, creates: int) -> tuple[bool, float | None, float]:
    """Was the last of ``creates`` creates sent before the first response's terminal event was
    received, by more than the round trip of its create (so it reached the server while that
    response was still running)? (proved, how long after the last send the terminal came, how
    long after it had to come)."""
    sent = [t for t, d, text in conn.transcript if d == "sent" and '"response.create"' in str(text)][-creates:]
    recv = [t for t, d, _ in conn.transcript if d == "received"]
    if len(sent) < creates or first.created_at >= len(recv):
        return False, None, IN_FLIGHT_MARGIN_S
    needed = recv[first.created_at] - sent[0] + IN_FLIGHT_MARGIN_S
    if first.terminal_at is None or first.terminal_at >= len(recv):
        return False, None, needed
    ran = recv[first.terminal_at] - sent[-1]
    return ran > needed, ran, needed


def _sent_in_time(conn, first: _Resp, creates: int) -> bool:
    return _in_flight(conn, first, creates)[0]


def _cannot_judge(target, conn, tl: _Lanes, creates: int) -> HarnessError:
    _, ran, needed = _in_flight(conn, tl.responses[0], creates) if tl.responses else (False, None, 0.0)
    return HarnessError(too_fast(target, f"{creates} creates were sent back to back", ran, needed)
                        + ". Timeline: " + tl.describe())


# --- lane names ---------------------------------------------------------------------------------

@pytest.mark.clause("CREATE-INVALID-STREAM-ID")
@pytest.mark.parametrize("name", ["", "x" * 257, "bad name", "lane/1"], ids=["empty", "too_long", "space", "slash"])
@pytest.mark.max_requests(creates=1)
def test_invalid_stream_id(connect, expect, name):
    conn = connect()
    turn = conn.turn(input=PROMPT, store=False, stream_id=name)
    expect("CREATE-INVALID-STREAM-ID", turn.status == "error", turn,
           f"stream_id {name[:20]!r} (len {len(name)}) was not refused with an error event")
    err = (turn.error or {}).get("error") if isinstance((turn.error or {}).get("error"), dict) else {}
    expect("CREATE-INVALID-STREAM-ID", turn.error_code == "invalid_stream_id", turn,
           f"expected error.code invalid_stream_id, got {turn.error_code!r}")
    expect("CREATE-INVALID-STREAM-ID", turn.error_status == 400, turn,
           f"expected status 400, got {turn.error_status!r}")
    expect("CREATE-INVALID-STREAM-ID", err.get("param") == "stream_id", turn,
           f"expected error.param stream_id, got {err.get('param')!r}")


# --- FIFO per lane, concurrency across lanes ------------------------------------------------------

@pytest.mark.clause("LANE-FIFO")
@pytest.mark.max_requests(creates=3)
def test_lane_fifo(target, connect, expect):
    conn = paced(target, connect, TURN_DELAY_MS)
    count = 3
    for n in range(1, count + 1):
        first = long_turn(target) if n == 1 else {"input": PROMPT}
        conn.create(**first, stream_id="fifo", metadata={ORDER_KEY: str(n)}, store=False)
    tl = _drain(conn, count, target.turn_timeout)
    expect("LANE-FIFO", not tl.errors, tl.describe(), "a create queued on a busy lane was answered with an error")
    expect("LANE-FIFO", len(tl.responses) == count and tl.ended() == count, tl.describe(),
           f"{count} creates on one lane, {len(tl.responses)} responses started and {tl.ended()} ended")
    for prev, nxt in zip(tl.responses, tl.responses[1:]):
        expect("LANE-FIFO", prev.terminal_at is not None and prev.terminal_at < nxt.created_at, tl.describe(),
               f"response {nxt.rid} of lane 'fifo' was created while {prev.rid} of the same lane was running")
    orders = [r.order for r in tl.responses]
    expect("LANE-FIFO", orders == [str(n) for n in range(1, count + 1)], tl.describe(),
           f"the lane answered its creates in the order {orders}, expected 1, 2, 3")
    if not _sent_in_time(conn, tl.responses[0], count):
        raise _cannot_judge(target, conn, tl, count)


@pytest.mark.clause("LANE-CONCURRENT")
@pytest.mark.max_requests(creates=2)
def test_lanes_run_concurrently(target, connect, expect):
    conn = paced(target, connect, TURN_DELAY_MS)
    conn.create(**long_turn(target), stream_id="conc-a", metadata={ORDER_KEY: "a"}, store=False)
    conn.create(input=PROMPT, stream_id="conc-b", metadata={ORDER_KEY: "b"}, store=False)
    tl = _drain(conn, 2, target.turn_timeout)
    if tl.errors or len(tl.responses) != 2 or tl.ended() != 2:
        raise HarnessError("two creates on two lanes did not both run, so concurrency cannot be judged: "
                           + tl.describe())
    first, second = tl.responses
    overlapped = first.terminal_at is not None and second.created_at < first.terminal_at
    if not overlapped and not _sent_in_time(conn, first, 2):
        raise _cannot_judge(target, conn, tl, 2)
    expect("LANE-CONCURRENT", overlapped, tl.describe(),
           f"lane {second.lane!r} waited for lane {first.lane!r}: its response was created only after the other "
           "lane's terminal event, although its create had arrived while that response was running")


# --- tagging, reuse of a name ---------------------------------------------------------------------

@pytest.mark.clause("LANE-TAGGED", "LANE-DEFAULT-UNTAGGED")
@pytest.mark.max_requests(creates=3)
def test_lane_tagging(target, connect, expect):
    conn = connect()
    named = setup_turn(conn, input=PROMPT, stream_id="tag-a", store=False)
    wrong = [ev.get("type") for ev in named.events if ev.get("stream_id") != "tag-a"]
    expect("LANE-TAGGED", not wrong, named, f"events of lane 'tag-a' without its stream_id: {wrong[:6]}")
    failed = conn.turn(input=PROMPT, stream_id="tag-a", store=False,
                       previous_response_id="resp_conformance_unknown_lane_0000")
    if failed.status != "error":
        raise HarnessError(f"an unknown previous_response_id was not refused, so the tag of a request error "
                           f"cannot be judged: {failed.summary()}")
    expect("LANE-TAGGED", (failed.error or {}).get("stream_id") == "tag-a", failed,
           f"the request error of lane 'tag-a' carries stream_id {(failed.error or {}).get('stream_id')!r}")
    plain = setup_turn(conn, input=PROMPT, store=False)
    tagged = [ev.get("type") for ev in plain.events if "stream_id" in ev]
    expect("LANE-DEFAULT-UNTAGGED", not tagged, plain, f"default-lane events carrying stream_id: {tagged[:6]}")
    expect_monitor_clean(expect, conn, ["LANE-TAGGED", "LANE-DEFAULT-UNTAGGED"])


@pytest.mark.clause("LANE-NEW-CONVERSATION")
@pytest.mark.max_requests(creates=2)
def test_reused_name_starts_new_conversation(target, connect, expect, nonce_factory):
    conn = connect()
    nonce = nonce_factory()
    setup_turn(conn, input=plant(nonce), stream_id="reuse", store=False)
    probe = conn.turn(**probe_fields(target, stream_id="reuse", store=False))
    if probe.status not in RAN:
        raise HarnessError(f"the second create on the lane did not run: {probe.summary()}")
    expect("LANE-NEW-CONVERSATION", not seen(recorded_nonces(probe), nonce), probe,
           f"a create on lane 'reuse' without previous_response_id saw {nonce}, planted by the lane's "
           "earlier conversation: it continued it instead of starting a new one")


# --- the cache per lane, forks, eviction per lane ---------------------------------------------------

def _planted(connect, nonce_factory, lane: str) -> tuple:
    """A socket, a nonce and the store=false turn on ``lane`` that planted it."""
    conn, nonce = connect(), nonce_factory()
    return conn, nonce, setup_turn(conn, input=plant(nonce), stream_id=lane, store=False)


def _probe_sees(target, conn, expect, clause: str, parent: Turn, lane: str, nonce: str, why: str) -> Turn:
    probe = conn.turn(**probe_fields(target, stream_id=lane, store=False, previous_response_id=parent.response_id))
    expect(clause, probe.status in RAN, probe, f"{why}: continuing {parent.response_id} on lane {lane!r} "
                                                f"ended {probe.status} ({probe.error_code!r})")
    expect(clause, seen(recorded_nonces(probe), nonce), probe,
           f"{why}: the continuation on lane {lane!r} did not see {nonce}")
    return probe


@pytest.mark.clause("LANE-CACHE-PER-LANE")
@pytest.mark.max_requests(creates=3)
def test_cache_per_lane(target, connect, expect, nonce_factory):
    conn, nonce, first = _planted(connect, nonce_factory, "cache-a")
    setup_turn(conn, input=PROMPT, stream_id="cache-b", store=False)
    _probe_sees(target, conn, expect, "LANE-CACHE-PER-LANE", first, "cache-a", nonce,
                "lane 'cache-b' ran a store=false turn after lane 'cache-a''s latest response")


@pytest.mark.clause("LANE-FORK")
@pytest.mark.max_requests(creates=3)
def test_fork_to_another_lane(target, connect, expect, nonce_factory):
    conn, nonce, parent = _planted(connect, nonce_factory, "fork-a")
    fork = _probe_sees(target, conn, expect, "LANE-FORK", parent, "fork-b", nonce, "a fork to lane 'fork-b'")
    expect("LANE-FORK", (fork.response or {}).get("previous_response_id") == parent.response_id, fork,
           "the fork's response does not echo its parent as previous_response_id")
    after = conn.turn(input=PROMPT, stream_id="fork-a", store=False, previous_response_id=parent.response_id)
    expect("LANE-FORK", after.status in RAN, after,
           f"after the fork, lane 'fork-a' could not go on from the parent: {after.status} ({after.error_code!r})")


def _after_failure(target, connect, lane: str, fail_lane: str) -> tuple[Turn, Turn]:
    """A store=false turn on ``lane``, a continuation of it on ``fail_lane`` that must fail (an
    orphan function_call_output), then ``lane`` continues it again: (parent, that turn)."""
    conn = connect()
    parent = setup_turn(conn, input=PROMPT, stream_id=lane, store=False)
    turn = conn.turn(input=ORPHAN, tools=[TIME_TOOL], stream_id=fail_lane, store=False,
                     previous_response_id=parent.response_id)
    if turn.status in RAN or refusal_code(turn, target) == NOT_FOUND:
        raise HarnessError(f"could not provoke a failed continuation (an orphan function_call_output): "
                           f"{turn.summary()}")
    return parent, conn.turn(input=PROMPT, stream_id=lane, store=False, previous_response_id=parent.response_id)


@pytest.mark.clause("LANE-FORK-FAILURE-KEEPS-PARENT")
@pytest.mark.max_requests(creates=3)
def test_failed_fork_keeps_parent(target, connect, expect):
    parent, after = _after_failure(target, connect, "keep-a", "keep-b")
    expect("LANE-FORK-FAILURE-KEEPS-PARENT", after.status in RAN, after,
           f"a fork of {parent.response_id} failed on lane 'keep-b', then lane 'keep-a' could not go on from "
           f"it: {after.status} ({after.error_code!r}); only a failure on the same lane evicts")


@pytest.mark.clause("LANE-EVICT-SAME-LANE")
@pytest.mark.max_requests(creates=3)
def test_failed_same_lane_continuation_evicts(target, connect, expect):
    parent, after = _after_failure(target, connect, "evict-a", "evict-a")
    code = refusal_code(after, target)
    expect("LANE-EVICT-SAME-LANE", code == NOT_FOUND, after,
           f"a continuation of {parent.response_id} failed on its own lane 'evict-a', then continuing it again "
           f"ended {after.status} ({code!r}) instead of {NOT_FOUND}")


# --- the limits (their cost is stated in the README) ------------------------------------------------

# the limits are the profile's ([concurrency] max_active, 16 at OpenAI, §4.4 item 21;
# max_named_lanes, 32, §4.4 item 22): a vendor that states others gets those checked

@pytest.mark.clause("LANE-ACTIVE-LIMIT")
@pytest.mark.max_requests(creates=2, plus="concurrency.max_active")
def test_active_limit_queues(target, connect, expect):
    limit = target.profile.max_active
    conn = paced(target, connect, TURN_DELAY_MS)
    count = limit + 2
    for n in range(count):
        first = long_turn(target) if n == 0 else {"input": PROMPT}
        conn.create(**first, stream_id=f"act-{n}", metadata={ORDER_KEY: str(n)}, store=False)
    tl = _drain(conn, count, target.turn_timeout * 3)
    expect("LANE-ACTIVE-LIMIT", not tl.errors, tl.describe(),
           f"{count} creates on {count} lanes: {len(tl.errors)} were refused with an error instead of queued")
    expect("LANE-ACTIVE-LIMIT", len(tl.responses) == count and tl.ended() == count, tl.describe(),
           f"{count} creates on {count} lanes: {len(tl.responses)} responses started, {tl.ended()} ended")
    expect("LANE-ACTIVE-LIMIT", tl.max_active() <= limit, tl.describe(),
           f"{tl.max_active()} responses were active at once; the limit is {limit} per connection")
    # the limit was exercised only if every create arrived while the first response still ran
    if tl.responses and not _sent_in_time(conn, tl.responses[0], count):
        raise _cannot_judge(target, conn, tl, count)


@pytest.mark.clause("LANE-NAMED-LIMIT")
@pytest.mark.max_requests(creates=3, plus="concurrency.max_named_lanes")
def test_named_limit(target, connect, expect):
    limit = target.profile.max_named_lanes
    conn = connect()
    warm = {"generate": False} if target.has("generate_false") else {}
    for n in range(1, limit + 1):
        turn = conn.turn(input=PROMPT, stream_id=f"name-{n}", store=False, **warm)
        expect("LANE-NAMED-LIMIT", turn.status in RAN, turn,
               f"the distinct lane name number {n} (of {limit} allowed) was refused: {turn.error_code!r}")
    over = conn.turn(input=PROMPT, stream_id=f"name-{limit + 1}", store=False, **warm)
    err = over.error or {}
    inner = err.get("error") if isinstance(err.get("error"), dict) else {}
    expect("LANE-NAMED-LIMIT", over.error_code == "websocket_stream_limit_reached", over,
           f"the distinct lane name number {limit + 1} (the names of finished lanes still count) got "
           f"{over.status} ({over.error_code!r}) instead of websocket_stream_limit_reached")
    expect("LANE-NAMED-LIMIT", over.error_status == 400 and inner.get("param") == "stream_id"
           and err.get("stream_id") == f"name-{limit + 1}", over,
           f"the stream limit error needs status 400, param stream_id and the refused stream_id; got status "
           f"{over.error_status!r}, param {inner.get('param')!r}, stream_id {err.get('stream_id')!r}")
    again = conn.turn(input=PROMPT, stream_id="name-1", store=False, **warm)
    expect("LANE-NAMED-LIMIT", again.status in RAN, again,
           f"at the limit, a name already used was refused ({again.error_code!r}); only new names count")
    default = conn.turn(input=PROMPT, store=False, **warm)
    expect("LANE-NAMED-LIMIT", default.status in RAN, default,
           f"at the limit, a default-lane create was refused ({default.error_code!r}); the default lane does "
           "not count")
