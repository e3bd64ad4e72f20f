"""A scenario the gateway sandwich's upstream plays (``--gateway-upstream-scenario``,
docs/clients.md "Gateways"), and the judgements of that scenario's client clauses on the
gateway's upstream traffic (sans-I/O; docs/spec.md §1.4, §4.11 items 64, 65, 67).

Only scenarios a correct gateway absorbs without its own client seeing anything it would not
see from a conformant server are playable (``PLAYABLE``): the server cases keep judging the
gateway's downstream side in the same run, so a scenario a correct gateway passes on (a close,
an error, a failed response) would blame the gateway for the reference server's own scenario.
``REFUSED`` says why each other scenario is not playable.

The upstream plays the scenario on each of its connections: request numbers count the creates
of one connection (``conformance.clientmode.stage.ScenarioHook(per_connection=True)``), because
the server cases open many short connections, in any order and on several xdist workers; a
count across the run would make which case meets the scenario a matter of timing.

Client mode's judgements (``conformance.clientmode.judge``) read a client that runs N turns
and exits; a gateway neither ends nor holds one conversation, so the clauses are judged here
per upstream connection, on what the gateway itself did after the scenario's trigger: closing
the upstream with an error code (anything but 1000, 1001, 1005, 1006; 1009: a frame too big),
closing it with any code although its own client had not closed its side (the suite writes
which connections its cases closed themselves, and when: ``sandwich.case_closed``), or sending
anything but what its client sent before a slow response began.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

from conformance.clientmode import scenarios as scenario_table
from conformance.clientmode.judge import TERMINAL, Judgement
from conformance.clientmode.record import Connection, Direction, Frame, Recording
from conformance.clientmode.scenarios import Act, Scenario

# close codes a gateway sends upstream when its client closed, or when it goes away itself;
# 1005 and 1006 are what a peer reports for a close without a code and an aborted socket
ORDERLY_CLOSES = frozenset({1000, 1001, 1005, 1006})
LARGE_BYTES = 2**20
UNKNOWN_TYPE = "conformance.unknown_event"      # conformance.clientmode.stage.UNKNOWN_EVENT

Excused = Callable[[Frame], bool]           # the frame reached the upstream as the gateway's client sent it
CaseClosed = Callable[[Connection], bool]   # the gateway's client closed its side of this connection
SHOWN = 3

# why a correct gateway absorbs the scenario (docs/clients.md "Gateways")
PLAYABLE: Mapping[str, str] = MappingProxyType({
    "unknown-events": "a gateway passes unknown and control events on, or drops them; either way its client "
                      "gets every response whole (§4.11 item 64)",
    "large-terminal": "a gateway relays a terminal event over 1 MiB intact (§1.4: a server sends them in normal "
                      "operation)",
    "slow-first-token": "a gateway waits for a slow first event as a client must (§4.11 item 67); its own client "
                        "waits as long",
})

_CLOSES = ("the upstream closes the socket; a relay passes the close on to its client, who must reconnect "
           "(§1.5: the connection-local state goes with the connection; §4.11 item 60), so the server cases "
           "would see a close no source says a gateway must hide")
_ANSWERS = ("the upstream answers with an error or a failed response, which a correct gateway passes on: the "
            "server cases would judge the scenario, not the gateway")
REFUSED: Mapping[str, str] = MappingProxyType({
    "tool-loop": "it is the upstream behaving normally: leave the option out",
    "eviction": _ANSWERS, "top-level-error": _ANSWERS, "response-failed": _ANSWERS,
    "response-incomplete": _ANSWERS, "reconnect-refused": _CLOSES,
    "lifetime": _CLOSES, "idle-close": _CLOSES, "close-mid-response": _CLOSES, "idle-limit": _CLOSES,
    "limit-answer": _CLOSES, "store-false-reconnect": _CLOSES,
    "busy-reject": "the upstream rejects a create sent while a response runs, which the profile's busy "
                   "policy does not declare: the server cases would see the rejection",
    "abandoned": "it needs a client that abandons a request (CONFORMANCE_CLIENT_ABANDON); the server cases "
                 "follow no client contract",
    "lanes": "it needs a client that runs conversations on named lanes (CONFORMANCE_CLIENT_LANES); the server "
             "cases follow no client contract",
    "steering": "it needs a client that steers a response (CONFORMANCE_CLIENT_STEER); the server cases follow "
                "no client contract",
})


class NotPlayable(ValueError):
    """A scenario the sandwich's upstream does not play; the message lists those it does."""


def choose(name: str, option: str) -> Scenario:
    """The playable scenario ``name``; ``NotPlayable`` naming ``option`` otherwise."""
    if name in PLAYABLE:
        return scenario_table.BY_NAME[name]
    why = REFUSED.get(name, "no such scenario")
    allowed = "; ".join(f"{key} ({reason})" for key, reason in PLAYABLE.items())
    raise NotPlayable(f"{option} {name!r}: {why}. The gateway's upstream plays only a scenario a correct "
                      f"gateway absorbs without its client seeing it: {allowed}")


def judged_clauses(scenario: Scenario | None) -> tuple[str, ...]:
    """The client clauses the scenario adds to the any-traffic ones on the upstream side."""
    return () if scenario is None else tuple(c for c in scenario.clauses if c in CHECKS)


# --- the judgements, per upstream connection ------------------------------------------------------

def _failed_close(conn: Connection, after: float) -> bool:
    """The gateway closed ``conn`` with an error code at or after ``after``."""
    return (conn.closed_by == "client" and conn.close_code is not None and conn.close_code not in ORDERLY_CLOSES
            and (conn.closed is None or conn.closed >= after))


def _abandoned(conn: Connection, after: float, case_closed: CaseClosed) -> bool:
    """The gateway closed ``conn`` at or after ``after`` on its own: its client had not closed
    its side (a close it only passed on is its client's)."""
    return (conn.closed_by == "client" and conn.closed is not None and conn.closed >= after
            and not case_closed(conn))


def _creates_after(conn: Connection, after: float) -> int:
    return sum(1 for f in conn.frames if f.direction is Direction.IN and f.at >= after
               and (f.event or {}).get("type") == "response.create")


def _triggered(clause: str, rec: Recording, trigger: Callable[[Frame], bool], what: str,
               case_closed: CaseClosed) -> Judgement:
    """Every connection the scenario's ``trigger`` frame went out on: afterwards the gateway did
    not close it with an error code, nor on its own (its client had not closed)."""
    hit = [(conn, next(f for f in conn.frames if f.direction is Direction.OUT and trigger(f)))
           for conn in rec.connections if any(f.direction is Direction.OUT and trigger(f) for f in conn.frames)]
    if not hit:
        return Judgement(clause, None, f"no {what} was sent upstream")
    failed = [(conn, first) for conn, first in hit
              if _failed_close(conn, first.at) or _abandoned(conn, first.at, case_closed)]
    if failed:
        shown = "; ".join(f"connection {conn.index} closed by the gateway with {conn.close_code} "
                          f"{(conn.closed or first.at) - first.at:.2f} s after the first {what}"
                          + (", its client had not closed" if _abandoned(conn, first.at, case_closed) else "")
                          for conn, first in failed[:SHOWN])
        more = f" and {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
        return Judgement(clause, False, f"{shown}{more} (of {len(hit)} connection(s) that got one)")
    went_on = sum(1 for conn, first in hit if _creates_after(conn, first.at))
    return Judgement(clause, True, f"{what} sent on {len(hit)} upstream connection(s); the gateway closed none of "
                                   "them with an error code or before its client closed, and "
                                   f"{went_on} carried another request after it")


def unknown_events(rec: Recording, scenario: Scenario, excused: Excused, case_closed: CaseClosed) -> Judgement:
    return _triggered(scenario_table.UNKNOWN_EVENTS, rec, lambda f: (f.event or {}).get("type") == UNKNOWN_TYPE,
                      "unknown event", case_closed)


def large_frames(rec: Recording, scenario: Scenario, excused: Excused, case_closed: CaseClosed) -> Judgement:
    return _triggered(scenario_table.LARGE_FRAMES, rec, lambda f: f.size > LARGE_BYTES, "frame over 1 MiB",
                      case_closed)


def _played(conn: Connection, create: Frame) -> bool:
    """The stage played its act on ``create``: no stream_id, and every earlier create of the
    connection answered (a terminal event or an error) before it came (stage.ConnectionStage)."""
    if (create.event or {}).get("stream_id") is not None:
        return False
    before = conn.frames[:conn.frames.index(create)]
    creates = sum(1 for f in before if f.direction is Direction.IN and (f.event or {}).get("type") == "response.create")
    answers = sum(1 for f in before if f.direction is Direction.OUT
                  and ((f.event or {}).get("type") in TERMINAL or (f.event or {}).get("type") == "error"))
    return creates <= answers


def waits_for_slow(rec: Recording, scenario: Scenario, excused: Excused, case_closed: CaseClosed) -> Judgement:
    """On each connection, the request whose first event the upstream delayed: before that event
    the gateway sends nothing its client did not send (a copy of the create is a resend) and does
    not close the connection unless its client closed."""
    slow = {number for number, act in scenario.acts.items() if act is Act.SLOW_FIRST}
    checked, failures = 0, []
    for conn in rec.connections:
        creates = [f for f in conn.frames
                   if f.direction is Direction.IN and (f.event or {}).get("type") == "response.create"]
        for number in sorted(slow):
            if len(creates) < number:
                continue
            create = creates[number - 1]
            if not _played(conn, create):
                continue
            after = conn.frames[conn.frames.index(create) + 1:]
            first = next((f for f in after if f.direction is Direction.OUT), None)
            until = first.at if first is not None else float("inf")
            where = f"connection {conn.index}, request {number}"
            own = [f for f in after if f.direction is Direction.IN and f.at < until
                   and (f.data == create.data or not excused(f))]
            if own:
                kind = (own[0].event or {}).get("type") or "a frame"
                failures.append(f"{where}: the gateway sent {kind} {own[0].at - create.at:.2f} s after the create, "
                                "before the response's first event")
            elif conn.closed_by == "client" and conn.closed is not None and conn.closed < until \
                    and not case_closed(conn):
                failures.append(f"{where}: the gateway closed the connection ({conn.close_code}) "
                                f"{conn.closed - create.at:.2f} s after the create, before the response's first event")
            elif first is not None:
                checked += 1
    if failures:
        more = f" and {len(failures) - SHOWN} more" if len(failures) > SHOWN else ""
        return Judgement(scenario_table.WAITS_FOR_SLOW, False, "; ".join(failures[:SHOWN]) + more)
    if not checked:
        return Judgement(scenario_table.WAITS_FOR_SLOW, None, "no upstream connection carried a slowed request "
                                                               "to its first event")
    return Judgement(scenario_table.WAITS_FOR_SLOW, True, f"{checked} slowed request(s) waited for their first "
                                                          "event: nothing sent, no close before it")


Check = Callable[[Recording, Scenario, Excused, CaseClosed], Judgement]
CHECKS: Mapping[str, Check] = MappingProxyType({
    scenario_table.UNKNOWN_EVENTS: unknown_events,
    scenario_table.LARGE_FRAMES: large_frames,
    scenario_table.WAITS_FOR_SLOW: waits_for_slow,
})


def judge_played(recording: Recording, scenario: Scenario, excused: Excused,
                 case_closed: CaseClosed = lambda conn: False) -> list[Judgement]:
    """One judgement per clause the scenario adds (``judged_clauses``); ``excused(frame)``: the
    frame reached the upstream as the gateway's client sent it; ``case_closed(conn)``: the
    gateway's client closed the connection this upstream one served (the gateway passed it on)."""
    return [CHECKS[clause](recording, scenario, excused, case_closed) for clause in judged_clauses(scenario)]
