"""Generated conversations checked against the reference model: spec §4.5 (continuation and the
connection-local cache, items 24-35), §4.6 item 36 (the cache is gone after a close) and §4.7
item 39 (warm-ups chain like other responses).

A hypothesis ``RuleBasedStateMachine`` drives the target with generated sequences of socket
actions and ``response.create``s: new chains, continuations from a socket's latest id, from an
older id of the same socket, from an id of another or a closed socket, warm-ups, failed
continuations (an orphan ``function_call_output``) and nonce probes. Before each create it asks
the reference model (``conformance.model.World``) what must happen; after it, it compares, then
tells the model what did happen so that the two stay in step. A disagreement is shrunk to a
short sequence and reported, as a replayable script, under the clause it violates; that
sequence is then replayed once more on sockets of the ``connect`` fixture so the report carries
its transcript.

The model decides outcomes from ids and flags only. Whether a continuation really carried its
context is checked without any model: a forced ``record_nonces`` call must list every nonce
planted along the chain.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, multiple, precondition, rule,
                                 run_state_machine_as_test)

from conformance.client import Connection, HandshakeRefused, HarnessError, TargetUnreachable
from conformance.model import COMPLETES, INVALID, NOT_FOUND, Capabilities, World
from conformance.probes import FORCE_PROBE, PROBE_BUDGET, PROBE_TOOL, seen

MAX_OPEN = 3            # sockets open at once
# budgets: the embedded server answers in about a millisecond (~460 creates, ~1.5 s, more when
# a failure is shrunk). A real endpoint gets ~70 small creates (max_output_tokens each, probes
# PROBE_BUDGET), no shrinking: a budget (measured) whose derandomized sequences still reach
# every marked clause of an agreeing target and catch each cache defect of the reference server.
EMBEDDED_RUNS = dict(max_examples=40, stateful_step_count=15)
REAL_RUNS = dict(max_examples=6, stateful_step_count=18)

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
    evicted: set = field(default_factory=set)   # ids a failed continuation referenced here
    errors: int = 0
    closed: bool = False

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
    nonces: tuple = ()                 # (nonce, planted_by_a_warmup) along the chain, in order

    def __repr__(self) -> str:
        kind = "warm-up, " if self.warmup else ""
        return f"resp#{self.label}({kind}store={_b(self.store)}, conn={self.conn.label})"


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


class _Disagreement(Exception):
    """The target and the model (or the monitor) disagree; raised inside the machine so that
    hypothesis shrinks the sequence."""

    def __init__(self, clause: str, message: str, evidence: Any, script: list[str], steps: list):
        super().__init__(f"{clause}: {message}")
        self.clause, self.message, self.evidence = clause, message, evidence
        self.script, self.steps = script, steps


class _Fatal(Exception):
    """The run cannot go on (harness error, rate limit, silence): stop without more I/O."""


@dataclass
class _Run:
    """What every generated conversation of one case shares."""

    target: Any
    verdict: Any
    nonce: Callable[[], str]
    caps: Capabilities
    registry: Any
    agreed: Counter = field(default_factory=Counter)
    soft_reported: set = field(default_factory=set)
    fatal: BaseException | None = None
    sockets: list = field(default_factory=list)   # exploration sockets, closed at the end
    idle: list = field(default_factory=list)      # open exploration sockets a conversation left
    conversations: int = 0
    creates: int = 0
    orphans: int = 0

    def level(self, clause: str) -> str | None:
        return self.registry[clause].level if clause in self.registry else None

    def stop(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        raise _Fatal(str(exc))

    def explore_socket(self) -> Connection:
        """A socket for exploring. They stay out of the connect fixture (hundreds of them would
        bury the report; the failing sequence is replayed on fixture sockets instead), and a
        socket a finished conversation left open is reused: the next conversation only ever
        names ids it created itself, so what the socket still caches cannot matter, and
        shrinking runs hundreds of conversations."""
        if self.idle:
            return self.idle.pop()
        conn = Connection.open(self.target)
        self.sockets.append(conn)
        return conn

    def release(self, ref: "ConnRef") -> None:
        # a socket that answered an error goes: whether the server closes after errors is for
        # the conversation that saw the error to find out, not for the next one
        if ref.errors or ref.ws.closed:
            ref.ws.close()
        else:
            self.idle.append(ref.ws)


def _capabilities(target: Any) -> Capabilities:
    # every create here waits for its answer, so the busy policy never comes into play
    return Capabilities.from_profile(target.profile)


# --- the machine -------------------------------------------------------------------------------

class Conversations(RuleBasedStateMachine):
    """Sockets and responses of one generated conversation; see the module docstring."""

    resp = Bundle("resp")

    def __init__(self, run: _Run, connect: Callable[[], Connection] | None = None):
        super().__init__()
        self.run = run
        self.connect = connect or run.explore_socket
        self.world = World(run.caps)
        self.open_conns: list[ConnRef] = []
        self.resps: list[RespRef] = []
        self.script: list[str] = []       # what happened, for people
        self.steps: list[tuple] = []      # the rule calls, for the replay
        self._conns = 0
        self._resps = 0
        run.conversations += 1

    def _step(self, name: str, **kwargs: Any) -> None:
        self.steps.append((name, {k: (("resp", v.label) if isinstance(v, RespRef) else v)
                                  for k, v in kwargs.items()}))

    def _pick(self, conns: list[ConnRef], pick: int) -> ConnRef:
        return conns[pick % len(conns)]

    # -- sockets ------------------------------------------------------------------------------

    def _open(self) -> ConnRef:
        if self.run.fatal is not None:
            raise _Fatal("an earlier conversation stopped the run")
        try:
            ws = self.connect()
        except (HarnessError, TargetUnreachable, HandshakeRefused) as exc:
            self.run.stop(exc)
        ref = ConnRef(self._conns, ws, self.world.open(t=time.monotonic()))
        self._conns += 1
        self.open_conns.append(ref)
        self.script.append(f"{ref!r} = open()")
        return ref

    @initialize()
    def first_connection(self) -> None:
        self._step("first_connection")
        self._open()

    # a new socket only once every open one has been used, and only used ones are closed:
    # opening and closing empty sockets checks nothing
    @precondition(lambda self: len(self.open_conns) < MAX_OPEN and all(c.last for c in self.open_conns))
    @rule()
    def open_connection(self) -> None:
        self._step("open_connection")
        self._open()

    @precondition(lambda self: any(c.last for c in self.open_conns))
    @rule(pick=PICK)
    def close_connection(self, pick: int) -> None:
        self._step("close_connection", pick=pick)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        self.script.append(f"close({conn!r})")
        conn.ws.close()
        conn.closed = True
        self.open_conns.remove(conn)
        self.world.close(conn.mid)

    def teardown(self) -> None:
        if self.connect == self.run.explore_socket:
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
        self._step("new_chain", pick=pick, store=store)
        conn = self._pick(self.open_conns, pick)
        code = self.run.nonce()
        request = {"input": f"Remember the code {code}. Reply with one word: ok", "store": store}
        step = f"new_chain({conn!r}, store={_b(store)}, nonce={code})"
        turn, ok = self._create(conn, request, None, step)
        return self._remember(conn, turn, store, ((code, False),), warmup=False) if ok else multiple()

    @precondition(lambda self: self.open_conns and self.run.target.has("generate_false"))
    @rule(target=resp, pick=PICK, store=st.booleans())
    def warm_up(self, pick: int, store: bool):
        self._step("warm_up", pick=pick, store=store)
        conn = self._pick(self.open_conns, pick)
        code = self.run.nonce()
        request = {"input": f"Remember the code {code}.", "store": store, "generate": False}
        step = f"warm_up({conn!r}, store={_b(store)}, nonce={code})"
        turn, ok = self._create(conn, request, None, step)
        return self._remember(conn, turn, store, ((code, True),), warmup=True) if ok else multiple()

    @precondition(lambda self: any(c.last for c in self.open_conns))
    @rule(target=resp, pick=PICK, store=st.booleans(), probe=st.booleans())
    def continue_latest(self, pick: int, store: bool, probe: bool):
        """The latest response of a socket: a cache hit (unless a failed turn evicted it)."""
        self._step("continue_latest", pick=pick, store=store, probe=probe)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        return self._continue(conn, conn.last, store, probe, "continue_latest")

    @precondition(lambda self: any(_is_older(r) for r in self.resps))
    @rule(target=resp, parent=resp.filter(_is_older), store=st.booleans(), probe=st.booleans())
    def continue_older(self, parent: RespRef, store: bool, probe: bool):
        """An id of an open socket that is no longer its latest, on that socket: a miss
        (hydrated where store=true ids are)."""
        self._step("continue_older", parent=parent, store=store, probe=probe)
        return self._continue(parent.conn, parent, store, probe, "continue_older")

    @precondition(lambda self: any(_is_evicted(r) for r in self.resps))
    @rule(target=resp, parent=resp.filter(_is_evicted), store=st.booleans(), probe=st.booleans())
    def continue_evicted(self, parent: RespRef, store: bool, probe: bool):
        """An id a failed continuation referenced, on that socket: evicted, so a miss (spec
        §4.5 item 30: previous_response_not_found for store=false)."""
        self._step("continue_evicted", parent=parent, store=store, probe=probe)
        return self._continue(parent.conn, parent, store, probe, "continue_evicted")

    @rule(target=resp, parent=resp, pick=PICK, store=st.booleans(), probe=st.booleans())
    def continue_elsewhere(self, parent: RespRef, pick: int, store: bool, probe: bool):
        """Any id, on another socket than its own: an open one, else a new one (a reconnect
        when the parent's socket is closed)."""
        self._step("continue_elsewhere", parent=parent, pick=pick, store=store, probe=probe)
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
        self._step("fail_latest", pick=pick)
        conn = self._pick([c for c in self.open_conns if c.last], pick)
        parent = conn.last
        self.run.orphans += 1
        call_id = f"{ORPHAN_PREFIX}{self.run.orphans}"
        request = {"previous_response_id": parent.id, "store": False,
                   "input": [{"type": "function_call_output", "call_id": call_id, "output": "nothing"}]}
        self._create(conn, request, parent, f"fail_latest({conn!r}, previous={parent!r}, orphan call_id={call_id})")

    def _continue(self, conn: ConnRef, parent: RespRef, store: bool, probe: bool, name: str):
        code = self.run.nonce()
        request: dict[str, Any] = {"previous_response_id": parent.id, "store": store}
        if probe:
            request.update(input=f"The latest code is {code}. Call record_nonces with every code "
                                 "seen in this conversation.",
                           tools=[PROBE_TOOL], tool_choice=FORCE_PROBE,
                           max_output_tokens=max(self.run.target.max_output_tokens, PROBE_BUDGET))
        else:
            request["input"] = f"Also remember the code {code}. Reply with one word: ok"
        step = (f"{name}({conn!r}, previous={parent!r}, store={_b(store)}, nonce={code}"
                + (", probe" if probe else "") + ")")
        nonces = parent.nonces + ((code, False),)
        turn, ok = self._create(conn, request, parent, step)
        if not ok:
            return multiple()
        if probe:
            return self._probe(conn, parent, turn, store, nonces)
        return self._remember(conn, turn, store, nonces, warmup=False)

    def _remember(self, conn: ConnRef, turn: Any, store: bool, nonces: tuple, *, warmup: bool,
                  bundle: bool = True) -> Any:
        if turn.status == "failed":    # started, then failed: not cached, nothing to continue
            return multiple()
        ref = RespRef(self._resps, turn.response_id, store, conn, warmup, nonces)
        self._resps += 1
        conn.last = ref
        self.script[-1] = f"{ref!r} = {self.script[-1]}"
        if bundle:
            self.resps.append(ref)
        return ref

    def _probe(self, conn: ConnRef, parent: RespRef, turn: Any, store: bool, nonces: tuple):
        """The forced record_nonces call must list every nonce of the chain. Then the call is
        answered, so that the conversation goes on from a response without a pending call."""
        if turn.status == "failed":
            self._soft_note(f"a probe response ended failed, its context was not checked: {turn.summary()}")
            return multiple()
        calls = [c for c in turn.function_calls if str(c.get("name", "")).startswith("record_nonces")]
        if not calls:
            if turn.status == "incomplete":
                self.run.stop(HarnessError(f"budget: {PROBE_BUDGET} output tokens were not enough for the forced "
                                           f"record_nonces call ({turn.summary()}); raise --max-output-tokens"))
            self._disagree(FORCED_CALL, "tool_choice forced record_nonces but the response made no such call", turn)
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
            clause = WARM_KEPT if all(w for _, w in missing) else CARRIED
            self._disagree(clause, f"the probe continuing from {parent!r} did not see "
                           f"{', '.join(n for n, _ in missing)} (it recorded {recorded}); the chain planted "
                           f"{', '.join(n for n, _ in nonces)}", turn)
        self._agree(CARRIED)
        if any(w for _, w in nonces):
            self._agree(WARM_KEPT)
        self.script[-1] += f"; the probe saw all {len(nonces)} nonces"
        probe = self._remember(conn, turn, store, nonces, warmup=False, bundle=False)
        outputs = [{"type": "function_call_output", "call_id": c.get("call_id"), "output": "recorded"} for c in calls]
        request = {"previous_response_id": turn.response_id, "store": store, "input": outputs}
        answer, ok = self._create(conn, request, probe, f"answer_probe({conn!r}, previous={probe!r})")
        return self._remember(conn, answer, store, nonces, warmup=False) if ok else multiple()

    # -- one create: predict, send, compare, observe ------------------------------------------

    def _create(self, conn: ConnRef, request: dict, parent: RespRef | None, step: str):
        """Returns (turn, started); raises _Disagreement when the target and the model differ."""
        if self.run.fatal is not None:
            raise _Fatal("an earlier conversation stopped the run")
        self.script.append(step)
        prediction = self.world.predict(conn.mid, request, t=time.monotonic())
        self.run.creates += 1
        try:
            turn = conn.ws.turn(**request)
        except (HarnessError, TargetUnreachable, HandshakeRefused) as exc:
            self.run.stop(exc)
        outcome = self._observed(conn, turn)
        self.script[-1] += f"   # model: {_describe(prediction)}; target: {_describe_turn(turn)}"
        self._monitor(turn)
        self._judge(conn, request, parent, prediction, turn, outcome)
        if outcome in (INVALID, NOT_FOUND, "failed") and parent is not None:
            conn.evicted.add(parent.id)
        if outcome in (INVALID, NOT_FOUND):
            conn.errors += 1
        self.world.observe(conn.mid, request, turn.response_id,
                           turn.status if turn.status in ("completed", "incomplete", "failed") else outcome,
                           response=turn.response, code=turn.error_code)
        return turn, turn.status in ("completed", "incomplete", "failed")

    def _observed(self, conn: ConnRef, turn: Any) -> str:
        if turn.status in ("completed", "incomplete"):
            return COMPLETES
        if turn.status == "failed":
            return "failed"
        if turn.status == "error":
            if turn.error_code in RATE_LIMIT_CODES or turn.error_status == 429:
                self.run.stop(HarnessError(f"rate-limited, the run cannot go on: {turn.summary()}"))
            return NOT_FOUND if turn.error_code == "previous_response_not_found" else INVALID
        if turn.status == "closed" and conn.errors:
            self._disagree(CONN_USABLE, f"the server closed {conn!r} after a request-scoped error; "
                           "the next create got no answer", turn)
        self.run.stop(HarnessError(f"no answer to a response.create ({turn.summary()}), the generated "
                                   f"conversation cannot go on:\n{_format_script(self.script)}\n"
                                   f"{conn.ws.transcript_text(limit=30)}"))
        raise AssertionError("unreachable")

    def _monitor(self, turn: Any) -> None:
        """Stream findings shrink like model disagreements (these sockets are not the fixture's,
        so the plugin does not see their findings)."""
        for finding in turn.findings:
            if getattr(finding, "kind", "violation") == "violation" and self.run.level(finding.clause):
                self._disagree(finding.clause, f"stream monitor: {finding.message}", turn)

    def _judge(self, conn: ConnRef, request: dict, parent: RespRef | None, p: Any, turn: Any, outcome: str) -> None:
        started = outcome in (COMPLETES, "failed")
        if p.outcome == COMPLETES:
            if parent is None:
                if not started:
                    if request.get("generate") is False:
                        self._disagree(WARM_RUNS, "a generate:false warm-up was rejected", turn)
                    self.run.stop(HarnessError(f"the target rejected a plain new chain, so the model cannot be "
                                               f"checked: {turn.summary()}"))
                return
            clause = self._hit_clause(parent, p)
            if not started:     # (returns only for a MAY clause: hydration)
                return self._disagree(clause, f"continuing from {parent!r} on {conn!r} must work ({p.reason}), "
                                      f"but the target answered {_describe_turn(turn)}", turn)
            self._agree(clause)
            return None
        if p.outcome == NOT_FOUND:
            # a store=true id where the profile does not claim hydration: either answer is fine
            undecided = parent.store and not self.run.caps.zdr and not self.run.caps.hydrates
            if undecided and started:
                return
            if started:
                self._disagree(self._miss_clause(conn, parent),
                               f"{parent!r} must not be found on {conn!r} ({p.reason}), but the target "
                               f"continued it: {_describe_turn(turn)}", turn)
            if outcome == INVALID and _has_orphan(request):
                return     # wrong twice over (unknown id, orphan output): either error may win
            if turn.error_code != p.expected_code or (p.expected_status and turn.error_status != p.expected_status):
                want = f"{p.expected_code}" + (f", status {p.expected_status}" if p.expected_status else "")
                self._disagree(MISS_FALSE, f"a cache miss on {parent!r} must fail with {want}; the target "
                               f"answered {_describe_turn(turn)}", turn)
            if not undecided:
                self._agree(self._miss_clause(conn, parent))
            return
        if p.outcome == INVALID:
            if outcome == NOT_FOUND:
                self._disagree(self._hit_clause(parent, p),
                               f"{parent!r} must still be cached on {conn!r} ({p.reason} is the only problem "
                               f"of this request), but the target did not find it", turn)
            if outcome == COMPLETES:
                self._disagree(EVICT, f"a continuation from {parent!r} with an output for an unknown call_id "
                               f"must fail, but the target ran it: {_describe_turn(turn)}", turn)
            return     # EVICT counts as exercised only once a miss on the evicted id is seen
        raise HarnessError(f"the model predicted {p.outcome!r}, which this machine never provokes ({p.reason})")

    @staticmethod
    def _hit_clause(parent: RespRef, p: Any) -> str:
        if p.hydrated:
            return HYDRATED
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

    # -- verdict plumbing ----------------------------------------------------------------------

    def _agree(self, clause: str) -> None:
        self.run.agreed[clause] += 1

    def _soft_note(self, message: str) -> None:
        if message not in self.run.soft_reported:
            self.run.soft_reported.add(message)
            self.run.verdict.info(message)

    def _disagree(self, clause: str, message: str, evidence: Any) -> None:
        script = list(self.script)
        script[-1] += f"   <-- {clause}"
        if self.run.level(clause) != "MUST":
            # a SHOULD/MAY disagreement does not stop the run: report it once and go on
            if clause not in self.run.soft_reported:
                self.run.soft_reported.add(clause)
                self.run.verdict.expect(clause, False, evidence, message + "\n" + _format_script(script))
            return
        raise _Disagreement(clause, message, evidence, script, list(self.steps))


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


def _format_script(lines: list[str]) -> str:
    return ("sequence (every create waits for its answer; nonces are planted in each input):\n"
            + "\n".join(f"    {ln}" for ln in lines))


def _runs(target: Any, budget: int | None) -> dict | None:
    """How many conversations of how many steps: the case's own sizes, or about ``budget``
    creates (--generated-budget). Off against a real target unless a budget is given, so that
    every case of a default run costs a few requests."""
    if budget is None:
        return EMBEDDED_RUNS if target.is_embedded else None
    if budget <= 0:
        return None
    steps = min(REAL_RUNS["stateful_step_count"], budget)
    return dict(max_examples=max(1, budget // steps), stateful_step_count=steps)


def _hypothesis_settings(target: Any, runs: dict) -> settings:
    # against a real endpoint a failing sequence is at most 18 steps: report it as found
    # rather than spend requests on shrinking it
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if target.is_embedded else [])
    return settings(derandomize=True, database=None, deadline=None, print_blob=False,
                    report_multiple_bugs=False, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large],
                    **runs)


def _find_disagreement(exc: BaseException) -> _Disagreement | None:
    if isinstance(exc, _Disagreement):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find_disagreement(inner)
        if found is not None:
            return found
    return None


def _replay(run: _Run, steps: list, connect: Callable[[], Connection]) -> _Disagreement | None:
    """Run the shrunk sequence once more on fixture sockets (their transcript goes into the
    report) and return its disagreement, if it reproduced."""
    agreed, fatal = run.agreed.copy(), run.fatal
    machine = Conversations(run, connect)
    try:
        for name, kwargs in steps:
            args = {k: next((r for r in machine.resps if r.label == v[1]), None)
                    if isinstance(v, tuple) else v for k, v in kwargs.items()}
            if any(a is None for a in args.values()):
                return None      # the replay went another way: a response of the script is missing
            getattr(machine, name)(**args)
    except _Disagreement as exc:
        return exc
    except _Fatal:
        return None
    finally:
        machine.teardown()
        run.agreed, run.fatal = agreed, fatal
    return None


# --- the case ----------------------------------------------------------------------------------

@pytest.mark.clause(*MARKED)
@pytest.mark.max_requests(generated=True)
def test_generated_conversations_agree_with_model(target, connect, verdict, nonce_factory, conformance_session):
    runs = _runs(target, conformance_session.settings.generated_budget)
    if runs is None:
        pytest.skip("generated conversations are opt-in against a real target: --generated-budget N "
                    f"spends about N requests ({REAL_RUNS['max_examples'] * REAL_RUNS['stateful_step_count']} "
                    "reach every marked clause)")
    run = _Run(target, verdict, nonce_factory, _capabilities(target), conformance_session.settings.registry)
    failure: _Disagreement | None = None
    flaky = False
    try:
        run_state_machine_as_test(lambda: Conversations(run), settings=_hypothesis_settings(target, runs))
    except _Fatal:
        pass
    except Exception as exc:  # noqa: BLE001 - hypothesis wraps a failure that did not reproduce in a group
        failure = _find_disagreement(exc)
        if failure is None and run.fatal is None:
            raise
        flaky = failure is not None and failure is not exc
    finally:
        for sock in run.sockets:
            sock.close()
    if run.fatal is not None:
        raise run.fatal
    for clause, n in sorted(run.agreed.items()):
        if failure is None or clause != failure.clause:
            verdict.expect(clause, True, None, f"{n} generated steps agreed with the model")
    if failure is not None:
        replayed = _replay(run, failure.steps, connect)
        notes = []
        if flaky:
            notes.append("the shrunk sequence did not reproduce the disagreement when hypothesis replayed it")
        notes.append("replayed once more on the sockets whose transcript follows: "
                     + ("same disagreement" if replayed is not None and replayed.clause == failure.clause
                        else "it did NOT reproduce"))
        verdict.expect(failure.clause, False, failure.evidence,
                       f"{failure.message}\n{_format_script(failure.script)}\n({'; '.join(notes)})")
    unexercised = [c for c in MARKED if not run.agreed[c]]
    if unexercised:   # say what a small budget did not reach (this makes the verdict INFO)
        verdict.info(f"not exercised by {run.conversations} generated conversations ({run.creates} creates): "
                     + ", ".join(unexercised))
