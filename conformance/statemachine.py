"""Machinery for cases that drive a target with generated conversations (a hypothesis
``RuleBasedStateMachine``): budgets, the state one case's conversations share (``Run``), the
rule machine's bookkeeping (steps for replay, a script for people, verdict plumbing), replay of
a shrunk failure on the fixture's sockets, and the driver that turns a run into verdicts.

The rules themselves (what to send, what the reference model predicts, which clause a
disagreement violates) live in the case module, ``cases/test_state_machine.py``, which checks
docs/spec.md §4.5-§4.7. Nothing here knows the protocol beyond opening a socket.

A rule machine subclasses ``ConversationMachine``; values passed between its rules carry an
integer ``label`` and are listed in ``refs``, so a step can be recorded as data and replayed.
A MUST disagreement raises ``Disagreement`` (hypothesis shrinks it); a SHOULD or MAY one is
reported once and the run goes on; ``Fatal`` stops the run without more I/O (harness error,
rate limit, silence).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from conformance.client import Connection

# budgets: the embedded server answers in about a millisecond (~560 creates, ~7 s with the
# lane rules' 3 ms pacing and one 40 ms-paced steer per conversation; more when a failure is
# shrunk). A real endpoint gets ~70 small creates (max_output_tokens each, probes
# PROBE_BUDGET), no shrinking: a budget (measured) whose derandomized sequences still reach
# every marked clause of an agreeing target and catch each cache defect of the reference server.
EMBEDDED_RUNS = dict(max_examples=40, stateful_step_count=15)
REAL_RUNS = dict(max_examples=6, stateful_step_count=18)


class Disagreement(Exception):
    """The target and the model (or the monitor) disagree; raised inside the machine so that
    hypothesis shrinks the sequence."""

    def __init__(self, clause: str, message: str, evidence: Any, script: list[str], steps: list):
        super().__init__(f"{clause}: {message}")
        self.clause, self.message, self.evidence = clause, message, evidence
        self.script, self.steps = script, steps


class Fatal(Exception):
    """The run cannot go on (harness error, rate limit, silence): stop without more I/O."""


@dataclass
class Run:
    """What every generated conversation of one case shares."""

    target: Any
    verdict: Any
    nonce: Callable[[], str]
    caps: Any                     # the model's capabilities (conformance.model.Capabilities)
    registry: Any
    agreed: Counter = field(default_factory=Counter)
    soft_reported: set = field(default_factory=set)
    fatal: BaseException | None = None
    sockets: list = field(default_factory=list)   # exploration sockets, closed at the end
    idle: list = field(default_factory=list)      # open exploration sockets a conversation left
    conversations: int = 0
    creates: int = 0
    serial: int = 0               # for names unique across the run's conversations
    headers: dict | None = None   # handshake headers of every exploration socket (e.g. pacing)
    shrink: bool = True           # shrink a failing sequence (embedded server only; --no-shrink)

    def level(self, clause: str) -> str | None:
        return self.registry[clause].level if clause in self.registry else None

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def stop(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        raise Fatal(str(exc))

    def explore_socket(self, headers: dict | None = None) -> Connection:
        """A socket for exploring. They stay out of the connect fixture (hundreds of them would
        bury the report; the failing sequence is replayed on fixture sockets instead), and a
        socket a finished conversation left open is reused: the next conversation only ever
        names ids it created itself, so what the socket still caches cannot matter, and
        shrinking runs hundreds of conversations. A socket asked for with ``headers`` of its
        own is new and never handed on (``ref.own``)."""
        if self.idle and headers is None:
            return self.idle.pop()
        conn = Connection.open(self.target, headers=headers or self.headers)
        self.sockets.append(conn)
        return conn

    def release(self, ref: Any) -> None:
        """Give back a conversation's socket (``ref.ws``; ``ref.errors`` counts its errors)."""
        # a socket that answered an error goes: whether the server closes after errors is for
        # the conversation that saw the error to find out, not for the next one
        if ref.errors or ref.ws.closed or getattr(ref, "own", False):
            ref.ws.close()
        else:
            self.idle.append(ref.ws)


class ConversationMachine(RuleBasedStateMachine):
    """Bookkeeping of one generated conversation: recorded steps, the script, verdicts."""

    def __init__(self, run: Run, connect: Callable[[], Connection] | None = None):
        super().__init__()
        self.run = run
        self.connect = connect or run.explore_socket
        self.refs: list = []              # values passed between rules (each has a label)
        self.script: list[str] = []       # what happened, for people
        self.steps: list[tuple] = []      # the rule calls, for the replay
        self.mark_line = -1               # the script line a disagreement points at
        run.conversations += 1

    @property
    def exploring(self) -> bool:
        return self.connect == self.run.explore_socket

    def record(self, name: str, **kwargs: Any) -> None:
        """Record a rule call; a value passed between rules is kept as its label."""
        self.steps.append((name, {k: (("ref", v.label) if hasattr(v, "label") else v)
                                  for k, v in kwargs.items()}))

    def agree(self, clause: str) -> None:
        self.run.agreed[clause] += 1

    def soft_note(self, message: str) -> None:
        if message not in self.run.soft_reported:
            self.run.soft_reported.add(message)
            self.run.verdict.info(message)

    def disagree(self, clause: str, message: str, evidence: Any) -> None:
        script = list(self.script)
        script[self.mark_line] += f"   <-- {clause}"
        if self.run.level(clause) != "MUST":
            # a SHOULD/MAY disagreement does not stop the run: report it once and go on
            if clause not in self.run.soft_reported:
                self.run.soft_reported.add(clause)
                self.run.verdict.expect(clause, False, evidence, message + "\n" + format_script(script))
            return
        raise Disagreement(clause, message, evidence, script, list(self.steps))


def format_script(lines: list[str]) -> str:
    return ("sequence (every create waits for its answer unless its step says otherwise; nonces are "
            "planted in each input):\n"
            + "\n".join(f"    {ln}" for ln in lines))


def budget(target: Any, requests: int | None) -> dict | None:
    """How many conversations of how many steps: the case's own sizes, or about ``requests``
    creates (--generated-budget). Off against a real target unless a budget is given, so that
    every case of a default run costs a few requests."""
    if requests is None:
        return EMBEDDED_RUNS if target.is_embedded else None
    if requests <= 0:
        return None
    steps = min(REAL_RUNS["stateful_step_count"], requests)
    return dict(max_examples=max(1, requests // steps), stateful_step_count=steps)


def hypothesis_settings(target: Any, runs: dict, shrink: bool = True) -> settings:
    # against a real endpoint a failing sequence is at most 18 steps: report it as found
    # rather than spend requests on shrinking it (and so with --no-shrink: same verdicts, sooner)
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if target.is_embedded and shrink else [])
    return settings(derandomize=True, database=None, deadline=None, print_blob=False,
                    report_multiple_bugs=False, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large],
                    **runs)


def find_disagreement(exc: BaseException) -> Disagreement | None:
    if isinstance(exc, Disagreement):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = find_disagreement(inner)
        if found is not None:
            return found
    return None


Factory = Callable[..., ConversationMachine]   # (run, connect=None) -> a machine


def replay(run: Run, factory: Factory, steps: list, connect: Callable[[], Connection]) -> Disagreement | None:
    """Run the shrunk sequence once more on fixture sockets (their transcript goes into the
    report) and return its disagreement, if it reproduced."""
    agreed, fatal = run.agreed.copy(), run.fatal
    machine = factory(run, connect)
    try:
        for name, kwargs in steps:
            args = {k: next((r for r in machine.refs if r.label == v[1]), None)
                    if isinstance(v, tuple) else v for k, v in kwargs.items()}
            if any(a is None for a in args.values()):
                return None      # the replay went another way: a value of the script is missing
            getattr(machine, name)(**args)
    except Disagreement as exc:
        return exc
    except Fatal:
        return None
    finally:
        machine.teardown()
        run.agreed, run.fatal = agreed, fatal
    return None


def judge(run: Run, factory: Factory, connect: Callable[[], Connection], marked: tuple[str, ...],
          runs: dict) -> None:
    """Run the conversations and state the verdicts: every clause that agreed, the (shrunk,
    replayed) disagreement if any, and which marked clauses the budget did not reach."""
    verdict = run.verdict
    failure: Disagreement | None = None
    flaky = False
    try:
        run_state_machine_as_test(lambda: factory(run), settings=hypothesis_settings(run.target, runs, run.shrink))
    except Fatal:
        pass
    except Exception as exc:  # noqa: BLE001 - hypothesis wraps a failure that did not reproduce in a group
        failure = find_disagreement(exc)
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
        replayed = replay(run, factory, failure.steps, connect)
        notes = []
        if flaky:
            notes.append("the shrunk sequence did not reproduce the disagreement when hypothesis replayed it")
        notes.append("replayed once more on the sockets whose transcript follows: "
                     + ("same disagreement" if replayed is not None and replayed.clause == failure.clause
                        else "it did NOT reproduce"))
        verdict.expect(failure.clause, False, failure.evidence,
                       f"{failure.message}\n{format_script(failure.script)}\n({'; '.join(notes)})")
    unexercised = [c for c in marked if not run.agreed[c]]
    if unexercised:   # say what a small budget did not reach (this makes the verdict INFO)
        verdict.info(f"not exercised by {run.conversations} generated conversations ({run.creates} creates): "
                     + ", ".join(unexercised))
