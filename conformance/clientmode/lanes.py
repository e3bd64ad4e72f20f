"""Judges a client's lanes and steering from what a scenario recorded (sans-I/O), the clauses
a client is held to only when it claims lanes or steering (``--client-claims``; docs/spec.md
§4.11 items 72-73): lane names and limits (§4.2 item 6, §4.4 items 20-23), lanes that really
run at once, each lane's chain its own (§4.4 item 23, §4.5 item 33), and steers that name a
running response (§4.9 item 46). One function per clause, the rows of ``CHECKS``; ``judge`` adds them to its
own. Like ``judge``, every verdict rests on what the server saw and when, so no race can fail
a client that did right.
"""

from __future__ import annotations

from typing import Callable

from conformance.clientmode import scenarios
from conformance.clientmode.record import (TERMINAL, Direction, Judgement, Recording, Request, finished,
                                           process_outcome)
from conformance.clientmode.scenarios import Scenario
from conformance.monitor.events import valid_lane_name

MAX_NAMED_LANES = 32        # distinct named stream_ids per connection (§4.4 item 22)
MAX_IN_FLIGHT = 16          # responses active at once per connection, over all its lanes (§4.4 item 21)


def _named(reqs: list[Request]) -> list[Request]:
    return [r for r in reqs if r.lane is not None]


def _where(req: Request) -> str:
    lane = "the default lane" if req.lane is None else f"lane {req.lane!r}"
    return f"request {req.number} (connection {req.connection.index}, {lane})"


def lane_names(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.2 item 6, §2.1: a ``stream_id`` is 1-256 characters of ``[A-Za-z0-9_.-]``."""
    named = _named(reqs)
    if not named:
        return Judgement(scenarios.LANE_NAMES, None, "no response.create named a lane (stream_id)")
    for req in named:
        if not valid_lane_name(req.lane):
            shown = repr(req.lane)[:80]
            return Judgement(scenarios.LANE_NAMES, False, f"request {req.number} on connection {req.connection.index} "
                             f"names lane {shown}: not 1-256 characters of [A-Za-z0-9_.-]")
    names = {r.lane for r in named}
    return Judgement(scenarios.LANE_NAMES, True, f"{len(named)} create(s) on {len(names)} named lane(s), every "
                                                 "name 1-256 characters of [A-Za-z0-9_.-]")


def _most_in_flight(reqs: list[Request]) -> tuple[int, Request | None]:
    """The most creates of one connection the server had received and not yet answered at
    once, and the create that reached it. A create with an invalid lane name never runs and
    does not count; one never answered counts to the end."""
    marks = []
    for req in reqs:
        if req.lane is None or valid_lane_name(req.lane):
            marks.append((req.frame.at, 1, req))
            if req.answered_at is not None:
                marks.append((req.answered_at, -1, req))
    # an answer sent at the moment a create arrived went out first: the create cannot count it
    marks.sort(key=lambda mark: (mark[0], mark[1]))
    most, current, peak = 0, 0, None
    for _, step, req in marks:
        current += step
        if current > most:
            most, peak = current, req
    return most, peak


def lane_count(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.4 items 21-22: per connection at most 32 distinct lane names (a name never counts
    down, §4.4 item 23a) and at most 16 requests in flight over all lanes. In flight: the
    server had received the create and not yet sent its terminal event or error."""
    named = _named(reqs)
    if not named:
        return Judgement(scenarios.LANE_COUNT, None, "no response.create named a lane (stream_id)")
    widest, busiest = 0, 0
    for conn in rec.connections:
        own = [r for r in reqs if r.connection is conn]
        names: list[str] = []
        for req in own:
            if req.lane is not None and valid_lane_name(req.lane) and req.lane not in names:
                names.append(req.lane)
                if len(names) > MAX_NAMED_LANES:
                    return Judgement(scenarios.LANE_COUNT, False, f"{_where(req)} opens distinct lane name "
                                     f"number {len(names)} of connection {conn.index} (at most {MAX_NAMED_LANES})")
        most, peak = _most_in_flight(own)
        if most > MAX_IN_FLIGHT:
            return Judgement(scenarios.LANE_COUNT, False, f"{_where(peak)} arrived while {most - 1} earlier "
                             f"request(s) of connection {conn.index} had no answer yet: {most} in flight "
                             f"(at most {MAX_IN_FLIGHT})")
        widest, busiest = max(widest, len(names)), max(busiest, most)
    return Judgement(scenarios.LANE_COUNT, True, f"at most {widest} named lane(s) and {busiest} request(s) in flight "
                                                 "per connection")


def lanes_in_flight(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.4 item 20: a client that claims lanes runs them at once. Seen when a create of one
    lane arrived while a create of another lane on the same connection had no answer yet (the
    server's own order: a client that waits for each answer before the next lane's create never
    shows it); then every conversation must complete."""
    used = {}
    for req in _named(reqs):
        used.setdefault(req.connection.index, set()).add(req.lane)
    if not any(len(lanes) > 1 for lanes in used.values()):
        return Judgement(scenarios.LANES_IN_FLIGHT, None, "no connection carried two named lanes")
    overlap = None
    for req in reqs:
        running = [r for r in reqs if r.connection is req.connection and r.lane != req.lane
                   and r.frame.at < req.frame.at and (r.answered_at is None or r.answered_at > req.frame.at)]
        if running:
            overlap = (req, running[0])
            break
    if overlap is None:
        return Judgement(scenarios.LANES_IN_FLIGHT, False, f"{sum(len(lanes) for lanes in used.values())} named "
                         "lanes, run one after another: no create arrived while another lane's request was "
                         f"in flight; {process_outcome(rec)}")
    passed, why = finished(rec, scenario, reqs)
    req, running = overlap
    return Judgement(scenarios.LANES_IN_FLIGHT, passed, f"{_where(req)} arrived while {_where(running)} was in "
                                                        f"flight; {why}")


def lane_own_chain(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.4 item 23, §4.5 item 33: once a lane has a response of its own on a connection, its
    continuations name a response of that lane. The first create of a lane may name another
    lane's response (a fork begins a branch); later ones that do carry on another lane's chain."""
    own: dict[tuple, list[str]] = {}      # (connection, lane) -> the lane's response ids so far
    checked = 0
    for req in reqs:
        key = (req.connection.index, req.lane)
        previous = req.create.get("previous_response_id")
        mine = own.get(key, [])
        if previous and mine:
            checked += 1
            if previous not in mine:
                owners = [lane for (conn, lane), ids in own.items() if conn == key[0] and previous in ids]
                shown = ("no lane of this connection" if not owners
                         else "the default lane" if owners[0] is None else f"lane {owners[0]!r}")
                return Judgement(scenarios.LANE_OWN_CHAIN, False, f"{_where(req)} continues {previous}, a response "
                                 f"of {shown}, after its own lane had answered {len(mine)} request(s)")
        own.setdefault(key, []).extend(rid for rid in (*req.steered, req.response_id) if rid)
    if not checked:
        return Judgement(scenarios.LANE_OWN_CHAIN, None, "no lane continued after a response of its own")
    return Judgement(scenarios.LANE_OWN_CHAIN, True, f"{checked} continuation(s), each naming a response of its "
                                                     "own lane")


def steers_active(rec: Recording, scenario: Scenario, reqs: list[Request]) -> Judgement:
    """§4.9 item 46: a ``response.steer`` names a response whose ``response.created`` the server
    had sent on the same connection and whose terminal event it had not sent yet, both as the
    server saw them when the steer arrived (the scenario holds the steered response until the
    steers arrived, so a client that steers once it sees ``response.created`` always meets it
    running); then the conversation, the successor's answer included, must complete."""
    count = 0
    for conn in rec.connections:
        begun: set = set()
        ended: dict = {}        # response id -> the terminal event type
        for frame in conn.frames:
            event = frame.event or {}
            etype = event.get("type")
            if frame.direction is Direction.OUT:
                rid = (event.get("response") or {}).get("id")
                if etype == "response.created":
                    begun.add(rid)
                elif etype in TERMINAL:
                    ended[rid] = etype
                continue
            if etype != "response.steer":
                continue
            count += 1
            target = event.get("previous_response_id")
            where = f"connection {conn.index}, the steer at {frame.at:g} s"
            if target in ended:
                return Judgement(scenarios.STEERS_ACTIVE, False, f"{where} names {target}, which had already ended "
                                 f"({ended[target]})")
            if target not in begun:
                return Judgement(scenarios.STEERS_ACTIVE, False, f"{where} names {target!r}, which this connection "
                                 "had not begun (no response.created for it)")
    if not count:
        return Judgement(scenarios.STEERS_ACTIVE, None, "the client sent no response.steer")
    passed, why = finished(rec, scenario, reqs)
    return Judgement(scenarios.STEERS_ACTIVE, passed, f"{count} steer(s), each naming a running response; {why}")


Check = Callable[[Recording, Scenario, list], Judgement]
CHECKS: dict[str, Check] = {
    scenarios.LANE_NAMES: lane_names,
    scenarios.LANE_COUNT: lane_count,
    scenarios.LANES_IN_FLIGHT: lanes_in_flight,
    scenarios.LANE_OWN_CHAIN: lane_own_chain,
    scenarios.STEERS_ACTIVE: steers_active,
}
