"""A client's own test command, run unchanged (``--client-test-command``, docs/clients.md
"A client's own tests"): once, against the reference server behaving normally, with the
environment of client mode, under a deadline; what it sent is judged by the client clauses
that hold for any traffic (``conformance.clientmode.anytraffic``).

Its tests follow no scenario and no N-turn contract, so the clauses that need a scenario's
trigger or the contract are left UNTESTED (the case does not mark them), and a clause the
traffic gave nothing to check reads NOT-REACHED. A non-zero exit, a hang past the deadline or
a command that cannot start is ``OwnTestsFailed``: the tests failed against a conformant
server, so the case cannot vouch for the client (ERROR, exit 7), while every violation seen
in its traffic still FAILs its clause. ``conformance.plugin``'s ``client_own_tests`` fixture
calls ``play``; cases/client/test_own_tests.py states the expectations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.clientmode.anytraffic import ANY_TRAFFIC, judge_any
from conformance.clientmode.casework import ScenarioTranscript
from conformance.clientmode.judge import Judgement
from conformance.clientmode.runner import run_scenario
from conformance.clientmode.scenarios import Scenario
from conformance.harnesserrors import HarnessError
from conformance.monitor.records import Finding

DEADLINE_S = 120.0          # a test suite takes longer than a contract conversation
OWN_TESTS = Scenario("own-tests", "the client's own test command, unchanged; the reference server "
                     "behaves normally (no scenario)", (), deadline_s=DEADLINE_S)


class OwnTestsFailed(HarnessError):
    """The client's own tests did not pass against the reference server behaving normally."""


def play(command: str, connections: list, cwd: str | Path | None = None,
         deadline_s: float | None = None) -> tuple[list[Judgement], Any]:
    """Run ``command`` once; its transcript joins ``connections`` (the case's). Returns the
    judgements (failed ones are also the transcript's findings) and the run's process."""
    run = run_scenario(OWN_TESTS, command, cwd=str(cwd) if cwd else None,
                       deadline_s=DEADLINE_S if deadline_s is None else deadline_s)
    transcript = ScenarioTranscript(run, command)
    connections.append(transcript)
    judgements = [Judgement(j.clause, j.ok, run.redact(j.message)) for j in judge_any(run.recording)]
    transcript.findings = [Finding(j.clause, j.message) for j in judgements if j.ok is False]
    return judgements, run.recording.process


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


def expect_own(judgements: list[Judgement], process: Any, expect: Any) -> None:
    """One ``expect`` per clause that held; then ``OwnTestsFailed`` when the tests failed."""
    for judgement in judgements:
        if judgement.ok:
            expect(judgement.clause, True, None, judgement.message)
    why = outcome(process)
    if why is not None:
        raise OwnTestsFailed(f"{why}, against the reference server behaving normally: the client or its "
                             "tests break on a conformant server (the transcript has their output); "
                             "conformance not shown")


__all__ = ["ANY_TRAFFIC", "OWN_TESTS", "OwnTestsFailed", "expect_own", "outcome", "play"]
