"""Generated conversations checked against the reference model: spec §4.5 (continuation and the
connection-local cache, items 24-35), §4.6 item 36 (the cache is gone after a close) and §4.7
item 39 (warm-ups chain like other responses).

A hypothesis ``RuleBasedStateMachine`` drives the target with generated sequences of socket
actions and ``response.create``s: new chains, continuations from a socket's latest id, from an
older id of the same socket, from an id of another or a closed socket, warm-ups, failed
continuations (an orphan ``function_call_output``) and nonce probes. Where the profile claims
lanes (§4.4 items 20-23a, §4.5 items 31 and 33) it also starts chains on named lanes, forks a
response to another lane, fails a fork on one lane and then goes on on the other, and sends
two creates on two lanes at once (their streams interleave: with test controls the sockets
pace every turn a little). Where it claims steering (§4.9) it steers a running response on a
paced socket of its own (the successor, whose context must hold the steer's nonce, joins the
conversation) and steers responses that have ended (refused). Before each create it asks
the reference model (``conformance.model.World``) what must happen; after it, it compares, then
tells the model what did happen so that the two stay in step. A disagreement is shrunk to a
short sequence and reported, as a replayable script, under the clause it violates; that
sequence is then replayed once more on sockets of the ``connect`` fixture so the report carries
its transcript.

The model decides outcomes from ids and flags only. Whether a continuation really carried its
context is checked without any model: a forced ``record_nonces`` call must list every nonce
planted along the chain.

This module holds the rules; budgets, replay, script printing and the verdict plumbing they
share are ``conformance/statemachine.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, multiple, precondition, rule

from conformance.casekit import refusal_code
from conformance.client import Connection, HandshakeRefused, HarnessError, TargetUnreachable
from conformance.model import (COMPLETES, INVALID, NOT_FOUND, STEER_ACCEPTED, STEER_ENDED_CODES, Capabilities,
                               World)
from conformance.probes import FORCE_PROBE, PROBE_BUDGET, PROBE_TOOL, seen
from conformance.statemachine import REAL_RUNS, ConversationMachine, Fatal, Run, budget, format_script, judge

MAX_OPEN = 3            # sockets open at once

HIT_TRUE, HIT_FALSE = "CACHE-HIT-STORE-TRUE", "CACHE-HIT-STORE-FALSE"
MISS_FALSE, HYDRATED = "CACHE-MISS-STORE-FALSE", "CACHE-MISS-STORE-TRUE-HYDRATED"
OTHER_CONN, AFTER_RECONNECT = "ZDR-OTHER-CONNECTION", "ZDR-AFTER-RECONNECT"
NOTHING_PERSISTED = "ZDR-NOTHING-PERSISTED"
EVICT, CARRIED = "EVICT-ON-FAILED-CONTINUATION", "CONT-CONTEXT-CARRIED"
WARM_CHAIN, WARM_KEPT, WARM_RUNS = "WARMUP-CHAINABLE", "WARMUP-CONTEXT-KEPT", "WARMUP-NO-OUTPUT"
CONN_USABLE, FORCED_CALL = "ERR-CONNECTION-USABLE", "TURN-FUNCTION-CALL"
# Marked: they apply to every target. The warm-up and hydration clauses (which need
# generate_false / store_true_hydrates) are checked and expected only where the target claims
# them: marking them would make the whole case UNSUPPORTED on targets without them.
MARKED = (HIT_TRUE, HIT_FALSE, MISS_FALSE, OTHER_CONN, AFTER_RECONNECT, EVICT, CARRIED)

FORK, FORK_FAILED, EVICT_LANE = "LANE-FORK", "LANE-FORK-FAILURE-KEEPS-PARENT", "LANE-EVICT-SAME-LANE"
PER_LANE = "LANE-CACHE-PER-LANE"
STEER_OK, STEER_SUCC, STEER_CTX, STEER_ENDED = ("STEER-ACCEPTED", "STEER-SUCCESSOR", "STEER-SUCCESSOR-CONTEXT",
                                                "STEER-ENDED-REFUSED")
LANES = ("a", "b")      # named lanes of the generated conversations (the default lane is None)
LANE = st.sampled_from((None,) + LANES)
PACE_MS = 3             # every turn of a machine socket lasts this long (interleaved lanes)
STEER_PACE_MS = 40      # a steered target runs this long, so the steer reaches it running
STEERS = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")

ORPHAN_PREFIX = "call_conformance_orphan_"
RATE_LIMIT_CODES = ("rate_limit_exceeded", "insufficient_quota")
PICK = st.integers(min_value=0, max_value=MAX_OPEN - 1)   # which of the candidate sockets


# --- the values the machine passes around ------------------------------------------------------

@dataclass(eq=False)
class ConnRef:
    """One socket (a harness Connection) and the model's connection id."""

    label: int
    ws: Any
    mid: int
    last: "RespRef | None" = None      # the last response created on it (our record, not the model's)
    evicted: set = field(default_factory=set)   # ids a failed same-lane continuation referenced here
    errors: int = 0
    closed: bool = False
    lanes: dict = field(default_factory=dict)   # lane -> the last response created on it here
    own: bool = False                           # a paced socket of its own (never handed on)

    def __repr__(self) -> str:
        return f"conn#{self.label}"


@dataclass(eq=False)
class RespRef:
    """A response the target created: its id, store flag, origin socket and its chain's nonces."""

    label: int
    id: str
    store: bool
    conn: ConnRef
    warmup: bool = False
    nonces: tuple = ()                 # (nonce, planted by: "turn" | "warmup" | "steer") along the chain
    lane: str | None = None
    fork_failed: bool = False          # a fork of it failed on another lane (it must stay cached)

    def __repr__(self) -> str:
        kind = "warm-up, " if self.warmup else ""
        lane = f", lane={self.lane}" if self.lane else ""
        return f"resp#{self.label}({kind}store={_b(self.store)}, conn={self.conn.label}{lane})"


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _is_older(r: RespRef) -> bool:
    return not r.conn.closed and r.conn.last is not r


def _is_evicted(r: RespRef) -> bool:
    return not r.conn.closed and r.id in r.conn.evicted


def _has_orphan(request: dict) -> bool:
    items = request.get("input")
    return isinstance(items, list) and any(str(i.get("call_id", "")).startswith(ORPHAN_PREFIX)
                                           for i in items if isinstance(i, dict))


# --- the machine -------------------------------------------------------------------------------

class Conversations(ConversationMachine):
    """Sockets and responses of one generated conversation; see the module docstring."""

    resp = Bundle("resp")

    def __init__(self, run: Run, connect: Callable[[], Connection] | None = None):
        super().__init__(run, connect)
        self.world = World(run.caps)
        self.open_conns: list[ConnRef] = []
        self.resps: list[RespRef] = self.refs     # the responses rules pass to each other
        self._conns = 0
        self._resps = 0
        self.steered = False

    def _pick(self, conns: list[ConnRef], pick: int) -> ConnRef:
        return conns[pick % len(conns)]

    # -- sockets ------------------------------------------------------------------------------

    def _open(self, headers: dict | None = None) -> ConnRef:
        if self.run.fatal is not None:
            raise Fatal("an earlier conversation stopped the run")
        try:
            ws = self.connect(headers=headers) if headers else self.connect()
        except (HarnessError, TargetUnreachable, HandshakeRefused) as exc:
            self.run.stop(exc)
        ref = ConnRef(self._conns, ws, self.world.open(now=time.monotonic()), own=bool(headers))
        self._conns += 1
        self.open_conns.append(ref)
        self.script.append(f"{ref!r} = open(" + (f"{headers}" if headers else "") + ")")
        return ref

    @initialize()
    def first_connection(self) -> None:
        self.record("first_connection")
        self._open()

    # a new socket only once every open one has been used, and only used ones are closed:
    # opening and closing empty sockets checks nothing
    @precondition(lambda self: len(self.open_conns) < MAX_OPEN and all(c.last for c in self.open_conns))
    @rule()
    def open_connection(self) -> None:
        self.record("open_connection")
        self._open()

    @precondition(lambda self: any(c.last for c in self.open_conns))
    @rule(pick=PICK)
    def close_connection(self, pick: int) -> None:
        self.record("close_connection", pick=pick)
        self._close(self._pick([c for c in self.open_conns if c.last], pick))

    def _close(self, conn: ConnRef) -> None:
        self.script.append(f"close({conn!r})")
        conn.ws.close()
        conn.closed = True
        self.open_conns.remove(conn)
        self.world.close(conn.mid)

    def teardown(self) -> None:
        if self.exploring:
            for conn in self.open_conns:
                self.run.release(conn)
            self.open_conns.clear()
            return
        for conn in self.open_conns:
            conn.ws.close()
            conn.closed = True
        self.open_conns.clear()

    # -- turns --------------------------------------------------------------------------------

    @precondition(lambda self: self.open_conns)
    @rule(target=resp, pick=PICK, store=st.booleans())
    def new_chain(self, pick: int, store: bool):
        self.record("new_chain", pick=pick, store=store)
        conn = self._pick(self.open_conns, pick)
        code = self.run.nonce()
        request = {"input": f"Remember the code {code}. Reply with one word: ok", "store": store}
        step = f"new_chain({conn!r}, store={_b(store)}, nonce={code})"
        turn, ok = self._create(conn, request, None, step)
        return self._remember(conn, turn, store, ((code, "turn"),), warmup=False) if ok else multiple()

    @precondition(lambda self: self.open_conns and self.run.target.has("generate_false"))
    @rule(target=resp, pick=PICK, store=st.booleans())
    def warm_up(self, pick: int, store: bool):
        self.record("warm_up", pick=pick, store=store)
        conn = self._pick(self.open_conns, pick)
        code = self.run.nonce()
        request = {"input": f"Remember the code {code}.", "store": store, "generate": False}
        step = f"warm_up({conn!r}, store={_b(store)}, nonce={code})"
        turn, ok = self._create(conn, request, None, step)
        return self._remember(conn, turn, store, ((code, "warmup"),), warmup=True) if ok else multiple()

    @precondition(lambda self: any(c.last for c in self.open_conns))
    @rule(target=resp, pick=PICK, store=st.booleans(), probe=st.booleans())
    def continue_latest(self, pick: int, store: bool, probe: bool):
        """The latest response of a socket: a cache hit (unless a failed turn evicted it)."""
        self.record("continue_latest", pick=pick, store=store, probe=probe)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        return self._continue(conn, conn.last, store, probe, "continue_latest")

    @precondition(lambda self: any(_is_older(r) for r in self.resps))
    @rule(target=resp, parent=resp.filter(_is_older), store=st.booleans(), probe=st.booleans())
    def continue_older(self, parent: RespRef, store: bool, probe: bool):
        """An id of an open socket that is no longer its latest, on that socket: a miss
        (hydrated where store=true ids are)."""
        self.record("continue_older", parent=parent, store=store, probe=probe)
        return self._continue(parent.conn, parent, store, probe, "continue_older")

    @precondition(lambda self: any(_is_evicted(r) for r in self.resps))
    @rule(target=resp, parent=resp.filter(_is_evicted), store=st.booleans(), probe=st.booleans())
    def continue_evicted(self, parent: RespRef, store: bool, probe: bool):
        """An id a failed continuation referenced, on that socket: evicted, so a miss (spec
        §4.5 item 30: previous_response_not_found for store=false)."""
        self.record("continue_evicted", parent=parent, store=store, probe=probe)
        return self._continue(parent.conn, parent, store, probe, "continue_evicted")

    @rule(target=resp, parent=resp, pick=PICK, store=st.booleans(), probe=st.booleans())
    def continue_elsewhere(self, parent: RespRef, pick: int, store: bool, probe: bool):
        """Any id, on another socket than its own: an open one, else a new one (a reconnect
        when the parent's socket is closed)."""
        self.record("continue_elsewhere", parent=parent, pick=pick, store=store, probe=probe)
        others = [c for c in self.open_conns if c is not parent.conn]
        if not others and len(self.open_conns) >= MAX_OPEN:
            return multiple()
        conn = self._pick(others, pick) if others else self._open()
        return self._continue(conn, parent, store, probe, "continue_elsewhere")

    @precondition(lambda self: any(c.last for c in self.open_conns))
    @rule(pick=PICK)
    def fail_latest(self, pick: int) -> None:
        """A continuation that must fail: an output for a tool call nobody made (the scenario
        of spec §4.5 item 30); the id it referenced must then be evicted."""
        self.record("fail_latest", pick=pick)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        parent = conn.last
        call_id = f"{ORPHAN_PREFIX}{self.run.next_serial()}"
        request = {"previous_response_id": parent.id, "store": False,
                   "input": [{"type": "function_call_output", "call_id": call_id, "output": "nothing"}]}
        if parent.lane is not None:
            request["stream_id"] = parent.lane
        self._create(conn, request, parent, f"fail_latest({conn!r}, previous={parent!r}, orphan call_id={call_id})")

    # -- lanes (§4.4 items 20-23a, §4.5 items 31 and 33) ---------------------------------------

    @precondition(lambda self: self.open_conns and self.run.caps.lanes)
    @rule(target=resp, pick=PICK, lane=st.sampled_from(LANES), store=st.booleans())
    def lane_chain(self, pick: int, lane: str, store: bool):
        self.record("lane_chain", pick=pick, lane=lane, store=store)
        conn = self._pick(self.open_conns, pick)
        code = self.run.nonce()
        request = {"input": f"Remember the code {code}. Reply with one word: ok", "store": store, "stream_id": lane}
        turn, ok = self._create(conn, request, None, f"lane_chain({conn!r}, lane={lane}, store={_b(store)}, nonce={code})")
        return self._remember(conn, turn, store, ((code, "turn"),), warmup=False) if ok else multiple()

    @precondition(lambda self: self.run.caps.lanes and any(not r.conn.closed for r in self.resps))
    @rule(target=resp, parent=resp.filter(lambda r: not r.conn.closed), lane=LANE, store=st.booleans(),
          probe=st.booleans())
    def fork(self, parent: RespRef, lane: str | None, store: bool, probe: bool):
        """Continue a response on another lane of its socket: a fork while it is its lane's
        latest [33], a miss once its lane moved on."""
        self.record("fork", parent=parent, lane=lane, store=store, probe=probe)
        if lane == parent.lane:
            lane = LANES[0] if lane is None else None
        return self._continue(parent.conn, parent, store, probe, "fork", lane=lane)

    @precondition(lambda self: self.run.caps.lanes and any(c.last for c in self.open_conns))
    @rule(pick=PICK, lane=LANE)
    def fail_fork(self, pick: int, lane: str | None) -> None:
        """A fork that must fail (an orphan tool output) on another lane: the parent stays
        cached for its own lane [31, 23a]."""
        self.record("fail_fork", pick=pick, lane=lane)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        parent = conn.last
        if lane == parent.lane:
            lane = LANES[0] if lane is None else None
        call_id = f"{ORPHAN_PREFIX}{self.run.next_serial()}"
        request: dict[str, Any] = {"previous_response_id": parent.id, "store": False,
                                   "input": [{"type": "function_call_output", "call_id": call_id, "output": "x"}]}
        if lane is not None:
            request["stream_id"] = lane
        self._create(conn, request, parent, f"fail_fork({conn!r}, previous={parent!r}, lane={lane}, "
                                            f"orphan call_id={call_id})")

    @precondition(lambda self: self.open_conns and self.run.caps.lanes)
    @rule(target=resp, pick=PICK, store=st.booleans())
    def interleave(self, pick: int, store: bool):
        """Two creates on lanes a and b sent at once (each continues its lane's latest on this
        socket, or starts a chain), then both answers read: the two streams interleave."""
        self.record("interleave", pick=pick, store=store)
        conn = self._pick(self.open_conns, pick)
        sent = []
        for lane in LANES:
            code = self.run.nonce()
            parent = conn.lanes.get(lane)
            request: dict[str, Any] = {"input": f"Also remember the code {code}. Reply with one word: ok",
                                       "store": store, "stream_id": lane}
            if parent is not None:
                request["previous_response_id"] = parent.id
            step = (f"interleave({conn!r}, lane={lane}, previous={parent!r}, store={_b(store)}, nonce={code})"
                    + ("   (sent with the next step, before either answer)" if lane == LANES[0] else ""))
            prediction, number = self._send(conn, request, step)
            sent.append((request, parent, prediction, number, (parent.nonces if parent else ()) + ((code, "turn"),),
                         len(self.script) - 1))
        made = []
        for request, parent, prediction, number, nonces, line in sent:
            turn, ok = self._finish(conn, request, parent, prediction, self._wait(conn, number), line)
            if ok:
                made.append(self._remember(conn, turn, store, nonces, warmup=False, line=line))
        made = [m for m in made if isinstance(m, RespRef)]
        return multiple(*made)

    # -- steering (§4.9) -----------------------------------------------------------------------

    # once per conversation: its paced socket is slow, and one steer checks every rule
    @precondition(lambda self: self.run.caps.steering and self.run.target.has("test_controls")
                  and len(self.open_conns) < MAX_OPEN and not self.steered)
    @rule(target=resp, lane=LANE, store=st.booleans())
    def steer_running(self, lane: str | None, store: bool):
        """On a paced socket of its own: a turn, a steer at its response.created (planting a
        nonce), then the target's end and the successor, which joins the conversation."""
        self.record("steer_running", lane=lane, store=store)
        self.steered = True
        conn = self._open({"X-Conformance-Turn-Delay-Ms": str(STEER_PACE_MS)})
        code, steer_code = self.run.nonce(), self.run.nonce()
        request: dict[str, Any] = {"input": f"Remember the code {code}. Reply with one word: ok", "store": store}
        if lane is not None:
            request["stream_id"] = lane
        prediction, number = self._send(conn, request, f"steer_target({conn!r}, lane={lane}, store={_b(store)}, "
                                                        f"nonce={code})")
        got = conn.ws.recv_until(lambda m: m.get("type") in ("response.created", "error"), self.run.target.turn_timeout)
        created = next((m["response"]["id"] for m in got if m.get("type") == "response.created"
                        and isinstance(m.get("response"), dict)), None)
        if created is None:
            turn, _ = self._finish(conn, request, None, prediction, self._wait(conn, number))
            return multiple()
        sp = self.world.predict_steer(conn.mid, created, running=True)
        self.script.append(f"steer({created}, nonce={steer_code})   # model: {sp.outcome}")
        conn.ws.steer(created, f"Also remember the code {steer_code}.")
        turn, ok = self._finish(conn, request, None, prediction, self._wait(conn, number))
        target_ref = self._remember(conn, turn, store, ((code, "turn"),), warmup=False) if ok else None
        answer = self._steer_answer(conn, created)
        if sp.outcome != STEER_ACCEPTED:
            return target_ref if isinstance(target_ref, RespRef) else multiple()
        if answer.get("type") == "response.steer.failed" and \
                (answer.get("error") or {}).get("code") in STEER_ENDED_CODES:
            self.soft_note("a steer reached its target after it had ended (pacing too short for this machine)")
            return target_ref if isinstance(target_ref, RespRef) else multiple()
        if answer.get("type") != "response.steer.accepted":
            self.disagree(STEER_OK, f"a steer of the running {created} got {answer.get('type')} "
                                    f"({(answer.get('error') or {}).get('code')!r})", answer)
        self.agree(STEER_OK)
        def succ_created(m: dict) -> bool:
            return m.get("type") == "response.created" and \
                (m.get("response") or {}).get("previous_response_id") == created

        if not any(succ_created(m) for m in conn.ws.messages):
            conn.ws.recv_until(succ_created, self.run.target.turn_timeout)
        successor = next((rs for rs in conn.ws.monitor.requests if rs.origin == "steer"
                          and (rs.create or {}).get("previous_response_id") == created), None)
        succ_turn = conn.ws.wait(successor.index) if successor is not None else None
        if succ_turn is None or succ_turn.status not in ("completed", "incomplete") or \
                (succ_turn.response or {}).get("previous_response_id") != created:
            self.disagree(STEER_SUCC, f"no successor of the steered {created} ran "
                                      f"({succ_turn.summary() if succ_turn else 'none started'})", turn)
        self.agree(STEER_SUCC)
        self._monitor(succ_turn)
        self.world.observe_successor(conn.mid, created, succ_turn.response_id, lane, store=store)
        self.script.append(f"successor {succ_turn.response_id} of {created} ran")
        nonces = (target_ref.nonces if isinstance(target_ref, RespRef) else ((code, "turn"),)) + ((steer_code, "steer"),)
        ref = RespRef(self._resps, succ_turn.response_id, store, conn, False, nonces, lane=lane)
        self._resps += 1
        conn.last = conn.lanes[lane] = ref
        self.script[-1] = f"{ref!r} = {self.script[-1]}"
        # the steer's nonce must be in the successor's context: probe it here, then let the
        # slow socket go (the successor stays in the conversation as a closed socket's id)
        answered = self._continue(conn, ref, store, True, "probe_successor")
        self._close(conn)
        return multiple(ref, *([answered] if isinstance(answered, RespRef) else []))

    @precondition(lambda self: self.run.caps.steering and any(not r.conn.closed for r in self.resps))
    @rule(parent=resp.filter(lambda r: not r.conn.closed))
    def steer_ended(self, parent: RespRef) -> None:
        """A steer naming a response that has ended is refused [46, 49]."""
        self.record("steer_ended", parent=parent)
        conn = parent.conn
        p = self.world.predict_steer(conn.mid, parent.id, running=False)
        self.script.append(f"steer_ended({conn!r}, {parent!r})   # model: {p.outcome} {p.expected_code or ''}")
        conn.ws.steer(parent.id, "Also say: thanks")
        answer = self._steer_answer(conn, parent.id)
        code = (answer.get("error") or {}).get("code") if isinstance(answer.get("error"), dict) else None
        ok = answer.get("type") == "response.steer.failed" and (code == p.expected_code if p.expected_code
                                                                 else code in STEER_ENDED_CODES)
        if not ok:
            self.disagree(STEER_ENDED, f"a steer of the ended {parent!r} got {answer.get('type')} ({code!r}); "
                                       f"the model says {p.outcome} ({p.reason})", answer)
        self.agree(STEER_ENDED)

    def _steer_answer(self, conn: ConnRef, target_id: str) -> dict:
        def answers(m: dict) -> bool:
            steer = m.get("steer") if isinstance(m.get("steer"), dict) else {}
            return m.get("type") in STEERS and steer.get("previous_response_id") == target_id

        found = next((m for m in conn.ws.messages if answers(m)), None)
        if found is None:
            got = conn.ws.recv_until(lambda m: answers(m) or m.get("type") == "error", self.run.target.turn_timeout)
            found = got[-1] if got and (answers(got[-1]) or got[-1].get("type") == "error") else None
        if found is None:
            self.run.stop(HarnessError(f"no answer to a steer of {target_id}:\n{format_script(self.script)}"))
        return found

    def _continue(self, conn: ConnRef, parent: RespRef, store: bool, probe: bool, name: str, lane: Any = "own"):
        """Continue ``parent`` on ``conn``: on the parent's own lane (its socket), else on ``lane``."""
        code = self.run.nonce()
        if lane == "own":
            lane = parent.lane if parent.conn is conn else None
        request: dict[str, Any] = {"previous_response_id": parent.id, "store": store}
        if lane is not None:
            request["stream_id"] = lane
        if probe:
            request.update(input=f"The latest code is {code}. Call record_nonces with every code "
                                 "seen in this conversation.",
                           tools=[PROBE_TOOL], tool_choice=FORCE_PROBE,
                           max_output_tokens=max(self.run.target.max_output_tokens, PROBE_BUDGET))
        else:
            request["input"] = f"Also remember the code {code}. Reply with one word: ok"
        step = (f"{name}({conn!r}, previous={parent!r}, store={_b(store)}, nonce={code}"
                + (f", lane={lane}" if lane else "") + (", probe" if probe else "") + ")")
        nonces = parent.nonces + ((code, "turn"),)
        turn, ok = self._create(conn, request, parent, step)
        if not ok:
            return multiple()
        if probe:
            return self._probe(conn, parent, turn, store, nonces)
        return self._remember(conn, turn, store, nonces, warmup=False)

    def _remember(self, conn: ConnRef, turn: Any, store: bool, nonces: tuple, *, warmup: bool,
                  bundle: bool = True, line: int = -1) -> Any:
        if turn.status == "failed":    # started, then failed: not cached, nothing to continue
            return multiple()
        sid = turn.create.get("stream_id") if isinstance(turn.create, dict) else None
        ref = RespRef(self._resps, turn.response_id, store, conn, warmup, nonces, lane=sid)
        self._resps += 1
        conn.last = ref
        conn.lanes[sid] = ref
        self.script[line] = f"{ref!r} = {self.script[line]}"
        if bundle:
            self.resps.append(ref)
        return ref

    def _probe(self, conn: ConnRef, parent: RespRef, turn: Any, store: bool, nonces: tuple):
        """The forced record_nonces call must list every nonce of the chain. Then the call is
        answered, so that the conversation goes on from a response without a pending call."""
        if turn.status == "failed":
            self.soft_note(f"a probe response ended failed, its context was not checked: {turn.summary()}")
            return multiple()
        calls = [c for c in turn.function_calls if str(c.get("name", "")).startswith("record_nonces")]
        if not calls:
            if turn.status == "incomplete":
                self.run.stop(HarnessError(f"budget: {PROBE_BUDGET} output tokens were not enough for the forced "
                                           f"record_nonces call ({turn.summary()}); raise --max-output-tokens"))
            self.disagree(FORCED_CALL, "tool_choice forced record_nonces but the response made no such call", turn)
        try:
            args = json.loads(calls[0].get("arguments") or "")
        except ValueError:
            if turn.status == "incomplete":
                self.run.stop(HarnessError(f"budget: the record_nonces arguments were cut by max_output_tokens "
                                           f"({turn.summary()}); raise --max-output-tokens"))
            args = None
        recorded = [str(x) for x in args.get("nonces", [])] if isinstance(args, dict) and \
            isinstance(args.get("nonces"), list) else []
        missing = [(n, w) for n, w in nonces if not seen(recorded, n)]
        if missing:
            kinds = {k for _, k in missing}
            clause = WARM_KEPT if kinds == {"warmup"} else STEER_CTX if kinds == {"steer"} else CARRIED
            self.disagree(clause, f"the probe continuing from {parent!r} did not see "
                           f"{', '.join(n for n, _ in missing)} (it recorded {recorded}); the chain planted "
                           f"{', '.join(n for n, _ in nonces)}", turn)
        self.agree(CARRIED)
        if any(k == "warmup" for _, k in nonces):
            self.agree(WARM_KEPT)
        if any(k == "steer" for _, k in nonces):
            self.agree(STEER_CTX)
        self.script[-1] += f"; the probe saw all {len(nonces)} nonces"
        probe = self._remember(conn, turn, store, nonces, warmup=False, bundle=False)
        outputs = [{"type": "function_call_output", "call_id": c.get("call_id"), "output": "recorded"} for c in calls]
        request = {"previous_response_id": turn.response_id, "store": store, "input": outputs}
        if probe.lane is not None:
            request["stream_id"] = probe.lane
        answer, ok = self._create(conn, request, probe, f"answer_probe({conn!r}, previous={probe!r})")
        return self._remember(conn, answer, store, nonces, warmup=False) if ok else multiple()

    # -- one create: predict, send, compare, observe ------------------------------------------

    def _create(self, conn: ConnRef, request: dict, parent: RespRef | None, step: str):
        """Returns (turn, started); raises Disagreement (via disagree) when the target and the model differ."""
        prediction, number = self._send(conn, request, step)
        return self._finish(conn, request, parent, prediction, self._wait(conn, number))

    def _send(self, conn: ConnRef, request: dict, step: str) -> tuple[Any, int]:
        if self.run.fatal is not None:
            raise Fatal("an earlier conversation stopped the run")
        self.script.append(step)
        prediction = self.world.send(conn.mid, request, now=time.monotonic())
        self.run.creates += 1
        try:
            return prediction, conn.ws.create(**request)
        except (HarnessError, TargetUnreachable, HandshakeRefused) as exc:
            self.run.stop(exc)

    def _wait(self, conn: ConnRef, number: int) -> Any:
        try:
            return conn.ws.wait(number)
        except (HarnessError, TargetUnreachable, HandshakeRefused) as exc:
            self.run.stop(exc)

    def _finish(self, conn: ConnRef, request: dict, parent: RespRef | None, prediction: Any, turn: Any,
                line: int = -1):
        """Judge and observe one answered create; ``line`` is its step in the script."""
        outcome = self._observed(conn, turn)
        self.script[line] += f"   # model: {_describe(prediction)}; target: {_describe_turn(turn)}"
        self.mark_line = line
        self._monitor(turn)
        self._judge(conn, request, parent, prediction, turn, outcome)
        self.mark_line = -1
        same_lane = parent is not None and parent.conn is conn and request.get("stream_id") == parent.lane
        if outcome in (INVALID, NOT_FOUND, "failed") and parent is not None:
            if same_lane or parent.conn is not conn:
                conn.evicted.add(parent.id)
            elif parent.conn is conn:
                parent.fork_failed = True   # a failed fork to another lane: the parent stays [31]
        if outcome in (INVALID, NOT_FOUND):
            conn.errors += 1
        self.world.observe(conn.mid, request, turn.response_id,
                           turn.status if turn.status in ("completed", "incomplete", "failed")
                           and outcome != NOT_FOUND else outcome,
                           response=turn.response, code=refusal_code(turn, self.run.target),
                           # the calls as a client sees them (also when the terminal output is empty)
                           call_ids=[c["call_id"] for c in turn.function_calls if isinstance(c.get("call_id"), str)])
        return turn, turn.status in ("completed", "incomplete", "failed") and outcome != NOT_FOUND

    def _observed(self, conn: ConnRef, turn: Any) -> str:
        if turn.status in ("completed", "incomplete"):
            return COMPLETES
        if turn.status == "failed":     # a refusal the profile lets come as response.failed (§4.10 item 51a)
            return NOT_FOUND if refusal_code(turn, self.run.target) == "previous_response_not_found" else "failed"
        if turn.status == "error":
            if turn.error_code in RATE_LIMIT_CODES or turn.error_status == 429:
                self.run.stop(HarnessError(f"rate-limited, the run cannot go on: {turn.summary()}"))
            return NOT_FOUND if turn.error_code == "previous_response_not_found" else INVALID
        if turn.status == "closed" and conn.errors:
            self.disagree(CONN_USABLE, f"the server closed {conn!r} after a request-scoped error; "
                           "the next create got no answer", turn)
        self.run.stop(HarnessError(f"no answer to a response.create ({turn.summary()}), the generated "
                                   f"conversation cannot go on:\n{format_script(self.script)}\n"
                                   f"{conn.ws.transcript_text(limit=30)}"))
        raise AssertionError("unreachable")

    def _monitor(self, turn: Any) -> None:
        """Stream findings shrink like model disagreements (these sockets are not the fixture's,
        so the plugin does not see their findings)."""
        for finding in turn.findings:
            if getattr(finding, "kind", "violation") == "violation" and self.run.level(finding.clause):
                self.disagree(finding.clause, f"stream monitor: {finding.message}", turn)

    def _judge(self, conn: ConnRef, request: dict, parent: RespRef | None, p: Any, turn: Any, outcome: str) -> None:
        started = outcome in (COMPLETES, "failed")
        if p.outcome == COMPLETES:
            if parent is None:
                if not started:
                    if request.get("generate") is False:
                        self.disagree(WARM_RUNS, "a generate:false warm-up was rejected", turn)
                    self.run.stop(HarnessError(f"the target rejected a plain new chain, so the model cannot be "
                                               f"checked: {turn.summary()}"))
                return
            clause = self._hit_clause(conn, request, parent, p)
            if not started:     # (returns only for a MAY clause: hydration)
                return self.disagree(clause, f"continuing from {parent!r} on {conn!r} must work ({p.reason}), "
                                      f"but the target answered {_describe_turn(turn)}", turn)
            self.agree(clause)
            return None
        if p.outcome == NOT_FOUND:
            # a store=true id where the profile does not claim hydration: either answer is fine
            undecided = parent.store and not self.run.caps.zdr and not self.run.caps.hydrates
            if undecided and started:
                return
            if started:
                self.disagree(self._miss_clause(conn, parent),
                               f"{parent!r} must not be found on {conn!r} ({p.reason}), but the target "
                               f"continued it: {_describe_turn(turn)}", turn)
            if outcome == INVALID and _has_orphan(request):
                return     # wrong twice over (unknown id, orphan output): either error may win
            as_failed = turn.status == "failed"      # the profile's response.failed form has no status
            if refusal_code(turn, self.run.target) != p.expected_code \
                    or (p.expected_status and not as_failed and turn.error_status != p.expected_status):
                want = f"{p.expected_code}" + (f", status {p.expected_status}" if p.expected_status else "")
                self.disagree(MISS_FALSE, f"a cache miss on {parent!r} must fail with {want}; the target "
                               f"answered {_describe_turn(turn)}", turn)
            if not undecided:
                clause = self._miss_clause(conn, parent)
                self.agree(clause)
                if clause == EVICT and parent.lane is not None:
                    self.agree(EVICT_LANE)    # the same rule on a named lane [31, 23a]
            return
        if p.outcome == INVALID:
            if outcome == NOT_FOUND:
                self.disagree(self._hit_clause(conn, request, parent, p),
                               f"{parent!r} must still be cached on {conn!r} ({p.reason} is the only problem "
                               f"of this request), but the target did not find it", turn)
            if outcome == COMPLETES:
                self.disagree(EVICT, f"a continuation from {parent!r} with an output for an unknown call_id "
                               f"must fail, but the target ran it: {_describe_turn(turn)}", turn)
            return     # EVICT counts as exercised only once a miss on the evicted id is seen
        raise HarnessError(f"the model predicted {p.outcome!r}, which this machine never provokes ({p.reason})")

    @staticmethod
    def _hit_clause(conn: ConnRef, request: dict, parent: RespRef, p: Any) -> str:
        if p.hydrated:
            return HYDRATED
        if parent.conn is conn and request.get("stream_id") != parent.lane:
            return FORK
        if parent.fork_failed:
            return FORK_FAILED
        if not parent.store and any(r.label > parent.label and r.lane != parent.lane for r in conn.lanes.values()):
            return PER_LANE     # another lane of the socket made a response since [25]
        if parent.warmup:
            return WARM_CHAIN
        return HIT_TRUE if parent.store else HIT_FALSE

    def _miss_clause(self, conn: ConnRef, parent: RespRef) -> str:
        elsewhere = parent.conn is not conn
        if elsewhere and parent.store and self.run.caps.zdr:
            return NOTHING_PERSISTED
        if elsewhere:
            return AFTER_RECONNECT if parent.conn.closed else OTHER_CONN
        if parent.id in conn.evicted:
            return EVICT
        return MISS_FALSE


def _describe(p: Any) -> str:
    if p.outcome == NOT_FOUND:
        return f"not_found ({p.expected_code}" + (f", status {p.expected_status})" if p.expected_status else ")")
    if p.outcome == COMPLETES:
        return "completes" + (" (hydrated)" if p.hydrated else "")
    return p.outcome


def _describe_turn(turn: Any) -> str:
    if turn.status == "error":
        return f"error code={turn.error_code!r} status={turn.error_status!r}"
    return turn.status


# --- the case ----------------------------------------------------------------------------------

@pytest.mark.clause(*MARKED)
@pytest.mark.max_requests(generated=True)
def test_generated_conversations_agree_with_model(target, connect, verdict, nonce_factory, conformance_session):
    runs = budget(target, conformance_session.settings.generated_budget)
    if runs is None:
        pytest.skip("generated conversations are opt-in against a real target: --generated-budget N "
                    f"spends about N requests ({REAL_RUNS['max_examples'] * REAL_RUNS['stateful_step_count']} "
                    "reach every marked clause)")
    # every create here waits for its answer, so the busy policy never comes into play
    caps = Capabilities.from_profile(target.profile)
    # with test controls every turn lasts a little, so that two lanes' streams interleave
    pace = {"X-Conformance-Turn-Delay-Ms": str(PACE_MS)} if caps.lanes and target.has("test_controls") else None
    run = Run(target, verdict, nonce_factory, caps, conformance_session.settings.registry, headers=pace,
              shrink=conformance_session.settings.shrink)
    judge(run, Conversations, lambda headers=None: connect(headers=headers or pace), MARKED, runs)
