"""A client's own test command, run unchanged (``--client-test-command``, docs/clients.md
"A client's own tests"): against the reference server behaving normally, and then, with
``--client-test-scenario``, once more while it plays that scenario; with the environment of
client mode, under a deadline each time.

What it sent is judged by the client clauses that hold for any traffic
(``conformance.clientmode.anytraffic``); the run under the scenario also by that scenario's
own clauses (``judged_clauses``), judged as in client mode (``conformance.clientmode.judge``)
with "the client finished" read as: the tests exited 0 in time after at least one completed
response. The clauses that need the N-turn contract (one socket, finishing N turns) are left
UNTESTED (the case does not mark them), and a clause the traffic gave nothing to check reads
NOT-REACHED. Only scenarios a test command can survive apply (``SCENARIOS``): where the client
must give up (exit non-zero), a test that expects the error passes and exits 0, so the exit
status cannot show what the client did.

A non-zero exit, a hang past the deadline or a command that cannot start is
``OwnTestsFailed``: the tests failed against a conformant server, so the case cannot vouch for
the client (ERROR, exit 7). The scenario runs only after the tests passed against the server
behaving normally: a failure under it is then the scenario's doing, and FAILs the scenario's
clause that judges it; one that no clause of the scenario explains is ``OwnTestsFailed`` too.
Every violation seen in the traffic still FAILs its clause. ``conformance.clienthooks``'
``client_own_tests`` fixture calls ``play``; cases/client/test_own_tests.py states the
expectations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from conformance.clientmode import scenarios
from conformance.clientmode.anytraffic import ANY_TRAFFIC, judge_any
from conformance.clientmode.casework import ScenarioTranscript
from conformance.clientmode.judge import Judgement, judge
from conformance.clientmode.runner import run_scenario
from conformance.clientmode.scenarios import Exit, Scenario
from conformance.harnesserrors import HarnessError
from conformance.monitor.records import Finding

DEADLINE_S = 120.0          # a test suite takes longer than a contract conversation
OWN_TESTS = Scenario("own-tests", "the client's own test command, unchanged; the reference server "
                     "behaves normally (no scenario)", (), deadline_s=DEADLINE_S)
# need the contract's N turns over one socket: a test suite opens sockets and ends as it likes
CONTRACT_ONLY = (scenarios.ONE_SOCKET, scenarios.FINISHES)
OWN_TURNS = 1               # "finished" for a test command: exit 0 after a completed response


def judged_clauses(scenario: Scenario) -> tuple[str, ...]:
    """The clauses ``scenario`` adds to the any-traffic ones when a test command runs under it."""
    return tuple(c for c in scenario.clauses if c not in ANY_TRAFFIC and c not in CONTRACT_ONLY)


# --client-test-scenario NAME: the scenarios a test command can survive, and that judge
# something beyond the any-traffic clauses (tool-loop is the server behaving normally); not
# lanes and steering, played only for a --client-command that claims them
SCENARIOS: Mapping[str, Scenario] = MappingProxyType({
    s.name: s for s in scenarios.SCENARIOS if s.exit is Exit.SUCCESS and judged_clauses(s) and s.claim is None})


class OwnTestsFailed(HarnessError):
    """The client's own tests did not pass against the reference server."""


@dataclass
class OwnRun:
    """What the runs of the test command gave the case."""

    judgements: list[Judgement]     # of every run; failed ones are also the transcripts' findings
    process: Any                    # clientmode.record.Process of the last run
    scenario: Scenario | None = None    # None: the last run had the server behave normally


def _run_once(command: str, played: Scenario, connections: list, cwd: str | Path | None, deadline: float,
              scenario_clauses: tuple[str, ...] = ()) -> tuple[list[Judgement], Any]:
    run = run_scenario(played, command, cwd=str(cwd) if cwd else None, deadline_s=deadline)
    transcript = ScenarioTranscript(run, command)
    connections.append(transcript)
    found = judge_any(run.recording)
    if scenario_clauses:
        found += judge(run.recording, played, scenario_clauses)
    judgements = [Judgement(j.clause, j.ok, run.redact(j.message)) for j in found]
    transcript.findings = [Finding(j.clause, j.message) for j in judgements if j.ok is False]
    return judgements, run.recording.process


def play(command: str, connections: list, cwd: str | Path | None = None,
         deadline_s: float | None = None, scenario: Scenario | None = None) -> OwnRun:
    """Run ``command`` against the reference server behaving normally, then, if it passed and a
    ``scenario`` is given, while the server plays it; each transcript joins ``connections``."""
    deadline = DEADLINE_S if deadline_s is None else deadline_s
    judgements, process = _run_once(command, OWN_TESTS, connections, cwd, deadline)
    if scenario is None or outcome(process) is not None:
        return OwnRun(judgements, process)      # failing tests show nothing about the scenario
    played = dataclasses.replace(scenario, turns=OWN_TURNS, deadline_s=deadline)
    more, process = _run_once(command, played, connections, cwd, deadline, judged_clauses(scenario))
    return OwnRun(judgements + more, process, scenario)


def outcome(process: Any) -> str | None:
    """Why the tests count as failed (one line), or None when they exited 0 in time."""
    if process is None:
        return "the test command did not run"
    if process.start_error:
        return f"the test command could not start: {process.start_error}"
    if process.timed_out:
        return (f"the test command was still running at the deadline ({process.duration_s:g} s) and was "
                "killed (--client-deadline raises it)")
    if process.returncode != 0:
        return f"the test command exited {process.returncode} after {process.duration_s:g} s"
    return None


def expect_own(own: OwnRun, expect: Any) -> None:
    """One ``expect`` per clause that held; then ``OwnTestsFailed`` when the tests failed and no
    clause of the scenario FAILed for it."""
    for judgement in own.judgements:
        if judgement.ok:
            expect(judgement.clause, True, None, judgement.message)
    why = outcome(own.process)
    if why is None:
        return
    if own.scenario is None:
        raise OwnTestsFailed(f"{why}, against the reference server behaving normally: the client or its "
                             "tests break on a conformant server (the transcript has their output); "
                             "conformance not shown")
    scenario_clauses = judged_clauses(own.scenario)
    if any(j.ok is False for j in own.judgements if j.clause in scenario_clauses):
        return      # they passed without the scenario and broke under it: its clause's finding says how
    raise OwnTestsFailed(f"{why}, against the reference server playing scenario {own.scenario.name} (they "
                         "passed with the server behaving normally), and no clause of the scenario "
                         f"({', '.join(scenario_clauses)}) judged the failure: the transcript has their "
                         "output; conformance not shown")


__all__ = ["ANY_TRAFFIC", "OWN_TESTS", "SCENARIOS", "OwnRun", "OwnTestsFailed", "expect_own", "judged_clauses",
           "outcome", "play"]
