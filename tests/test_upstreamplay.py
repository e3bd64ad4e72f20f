"""The scenario the gateway sandwich's upstream plays (conformance/clientmode/upstreamplay.py,
docs/clients.md "Gateways"): its client clauses judged on constructed upstream recordings, per
connection, on what the gateway itself did after the scenario's trigger; and the stage counting
a scenario's requests per connection, playing no act on a create queued behind a running
response or sent on a lane."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType

from conformance.clientmode import scenarios, upstreamplay
from conformance.clientmode.record import Connection, Direction, Frame, Recording
from conformance.clientmode.sandwich import upstream_scenario
from conformance.clientmode.stage import ScenarioHook

UNKNOWN = {"type": "conformance.unknown_event"}


def _create(**fields) -> dict:
    return {"type": "response.create", "model": "m", "input": "hi", **fields}


def _conn(index: int, rows: list, closed_by: str = "client", code: int | None = 1000) -> Connection:
    """``rows``: (at, "in" or "out", event, size or None)."""
    conn = Connection(index, 0.0, "/v1/responses", True, False, closed=rows[-1][0] + 0.1 if rows else 1.0,
                      closed_by=closed_by, close_code=code)
    for at, direction, event, size in rows:
        text = json.dumps(event)
        conn.frames.append(Frame(at, Direction(direction), True, text, size or len(text), event))
    return conn


def _turn(start: float, big: bool = False, rid: str = "resp_1") -> list:
    response = {"id": rid, "status": "completed", "output": []}
    return [(start, "in", _create(), None),
            (start + 0.01, "out", {"type": "response.created", "response": response}, None),
            (start + 0.02, "out", UNKNOWN, None),
            (start + 0.03, "out", {"type": "response.completed", "response": response}, 2**20 + 100 if big else None)]


def _judge(clause: str, *conns: Connection, excused=lambda frame: True, case_closed=lambda conn: True):
    """``excused``: the frame was relayed as the client sent it; ``case_closed``: the client closed."""
    scenario = scenarios.BY_NAME[{scenarios.UNKNOWN_EVENTS: "unknown-events", scenarios.LARGE_FRAMES: "large-terminal",
                                  scenarios.WAITS_FOR_SLOW: "slow-first-token"}[clause]]
    (judgement,) = upstreamplay.judge_played(Recording(list(conns)), scenario, excused, case_closed)
    assert judgement.clause == clause
    return judgement


@pytest.mark.parametrize("clause", [scenarios.UNKNOWN_EVENTS, scenarios.LARGE_FRAMES])
def test_a_gateway_that_closes_with_an_error_code_after_the_trigger_fails(clause):
    good = _conn(0, _turn(0.0, big=True) + _turn(1.0, big=True, rid="resp_2"))
    bad = _conn(1, _turn(2.0, big=True), code=1009 if clause == scenarios.LARGE_FRAMES else 1011)
    judgement = _judge(clause, good, bad)
    assert judgement.ok is False and "connection 1 closed by the gateway with" in judgement.message
    passed = _judge(clause, good, _conn(1, _turn(2.0, big=True), code=1001))
    assert passed.ok is True and "2 upstream connection(s)" in passed.message and "1 carried another" in passed.message


def test_a_close_the_upstream_made_or_one_before_the_trigger_is_not_the_gateways():
    by_server = _conn(0, _turn(0.0, big=True), closed_by="server", code=1011)
    assert _judge(scenarios.LARGE_FRAMES, by_server).ok is True
    early = _conn(1, _turn(0.0), code=1009)
    early.closed = 0.0      # before its frames: the trigger had not gone out
    assert _judge(scenarios.UNKNOWN_EVENTS, early).ok is True


@pytest.mark.parametrize("clause", [scenarios.UNKNOWN_EVENTS, scenarios.LARGE_FRAMES, scenarios.WAITS_FOR_SLOW])
def test_nothing_to_judge_without_the_trigger(clause):
    plain = _conn(0, [(0.0, "in", _create(), None),
                      (0.1, "out", {"type": "response.completed", "response": {"id": "r"}}, None)])
    assert _judge(clause, plain).ok is None


def _slow(extra: list, first_at: float = 3.5) -> Connection:
    """Two turns on one connection; the second's first event comes at ``first_at``."""
    response = {"id": "resp_2", "status": "completed"}
    rows = _turn(0.0) + [(0.5, "in", _create(previous_response_id="resp_1"), None), *extra,
                         (first_at, "out", {"type": "response.created", "response": response}, None),
                         (first_at + 0.1, "out", {"type": "response.completed", "response": response}, None)]
    return _conn(0, sorted(rows, key=lambda row: row[0]))


def test_a_gateway_that_waits_for_the_slow_first_event_passes():
    judgement = _judge(scenarios.WAITS_FOR_SLOW, _slow([]))
    assert judgement.ok is True and judgement.message.startswith("1 slowed request(s)")


def test_a_gateway_that_resends_or_sends_its_own_frame_before_the_first_event_fails():
    resent = _judge(scenarios.WAITS_FOR_SLOW, _slow([(2.5, "in", _create(previous_response_id="resp_1"), None)]))
    assert resent.ok is False and "the gateway sent response.create 2.00 s after the create" in resent.message
    own = _judge(scenarios.WAITS_FOR_SLOW, _slow([(1.0, "in", {"type": "response.cancel"}, None)]),
                 excused=lambda frame: False)
    assert own.ok is False and "response.cancel" in own.message
    relayed = _judge(scenarios.WAITS_FOR_SLOW, _slow([(1.0, "in", {"type": "response.cancel"}, None)]))
    assert relayed.ok is True       # its client sent it: the gateway only relayed it


def test_a_gateway_that_closes_before_the_slow_first_event_fails():
    conn = _slow([])
    conn.frames = conn.frames[:5]
    conn.closed = 2.5
    judgement = _judge(scenarios.WAITS_FOR_SLOW, conn, case_closed=lambda conn: False)
    assert judgement.ok is False and "closed the connection (1000) 2.00 s after the create" in judgement.message


def test_a_queued_create_is_not_a_slowed_one():
    """A second create sent before the first response ended gets no act from the stage, so the
    judge does not read its wait either."""
    response = {"id": "resp_1", "status": "completed"}
    rows = [(0.0, "in", _create(), None), (0.01, "in", _create(), None),
            (0.1, "out", {"type": "response.completed", "response": response}, None),
            (0.2, "in", {"type": "response.cancel"}, None),
            (0.3, "out", {"type": "response.completed", "response": {"id": "resp_2"}}, None)]
    assert _judge(scenarios.WAITS_FOR_SLOW, _conn(0, rows), excused=lambda frame: False).ok is None


class _Transport:
    def __init__(self) -> None:
        self.sent: list = []

    async def send_many(self, frames: list) -> None:
        self.sent.extend(frames)

    async def close(self, code: int, reason: str) -> None:
        pass


class _Upgrade:
    rel_url = "/v1/responses"
    path = "/v1/responses"

    def __init__(self, key: str) -> None:
        self.headers = {"Authorization": f"Bearer {key}"}


def _terminal(rid: str) -> bytes:
    return json.dumps({"type": "response.completed", "response": {"id": rid, "output": []},
                       "sequence_number": 3}).encode()


def test_the_stage_plays_on_each_connection_but_not_on_a_queued_or_lane_create():
    """large-terminal's act is request 2 of each connection: idle second creates are padded; a
    create queued behind a running response and one on a lane are answered as usual."""
    hook = ScenarioHook(upstream_scenario(scenarios.BY_NAME["large-terminal"]), "sk-x", per_connection=True)

    async def turn(stage, transport, rid: str, **fields) -> int:
        await stage.received(WSMsgType.TEXT, json.dumps(_create(**fields)))
        await stage.send_many([(_terminal(rid), False)])
        return len(transport.sent[-1][0])

    async def play() -> list[int]:
        sizes = []
        for _ in range(2):          # two connections, two sequential turns each
            transport = _Transport()
            stage = hook.connect(_Upgrade("sk-x")).wrap(transport)
            sizes += [await turn(stage, transport, "r1"), await turn(stage, transport, "r2")]
        transport = _Transport()
        stage = hook.connect(_Upgrade("sk-x")).wrap(transport)
        await stage.received(WSMsgType.TEXT, json.dumps(_create()))
        await stage.received(WSMsgType.TEXT, json.dumps(_create()))      # queued behind the first
        await stage.send_many([(_terminal("q1"), False), (_terminal("q2"), False)])
        sizes += [len(data) for data, _ in transport.sent]
        transport = _Transport()
        stage = hook.connect(_Upgrade("sk-x")).wrap(transport)
        sizes += [await turn(stage, transport, "l1"), await turn(stage, transport, "l2", stream_id="lane-a")]
        return sizes

    sizes = asyncio.run(play())
    big = [size > 2**20 for size in sizes]
    assert big == [False, True, False, True, False, False, False, False], sizes


def test_a_gateway_that_closes_on_its_own_after_the_trigger_fails():
    """Whatever the code: the gateway gave the connection up after the unknown event, although
    its client had not closed; a close its client made and it passed on is not its doing."""
    response = {"id": "resp_1", "status": "in_progress"}
    rows = [(0.0, "in", _create(), None), (0.01, "out", {"type": "response.created", "response": response}, None),
            (0.02, "out", UNKNOWN, None)]
    judgement = _judge(scenarios.UNKNOWN_EVENTS, _conn(0, rows, code=1000), case_closed=lambda conn: False)
    assert judgement.ok is False and "its client had not closed" in judgement.message
    assert _judge(scenarios.UNKNOWN_EVENTS, _conn(0, rows, code=1000)).ok is True       # passed on


def test_a_close_before_the_slow_first_event_that_the_client_made_is_not_the_gateways():
    conn = _slow([])
    conn.frames = conn.frames[:5]
    conn.closed = 2.5
    (judgement,) = upstreamplay.judge_played(Recording([conn]), scenarios.BY_NAME["slow-first-token"],
                                             lambda frame: True, lambda conn: True)
    assert judgement.ok is None     # the slowed request never got to its first event: nothing to judge


def test_the_suite_writes_when_its_case_closed_a_connection_itself():
    """sandwich.case_closed: the first frame's digest and the moment, only for a close the case
    made (a close by its peer, the gateway, is the gateway's)."""
    from types import SimpleNamespace

    from conformance.clientmode import sandwich
    first = json.dumps(_create())
    rows = [(0.0, "sent", first), (0.5, "closed", "code=1000")]
    mine = SimpleNamespace(closed=True, closed_by_peer=False, transcript=rows, t0=100.0, closing_at=0.25)
    marker = sandwich.case_closed(mine)
    assert marker == f"{sandwich.CASE_CLOSED}{sandwich.sent_digests(first)[0]}@100.250"    # when it began
    mine.closing_at = None
    assert sandwich.case_closed(mine).endswith("@100.500")     # else when the close ended
    assert sandwich.case_closed(SimpleNamespace(closed=True, closed_by_peer=True, transcript=rows, t0=100.0)) is None
    assert sandwich.case_closed(SimpleNamespace(closed=False, closed_by_peer=False, transcript=rows, t0=1.0)) is None
