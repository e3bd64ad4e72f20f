"""Slow is not stuck (§1.5, docs/spec.md): idle deadlines, turn cap, stalled targets, run
deadline, and the verdicts of a target that stops answering (CREATE-ANSWERED,
STREAM-ONE-TERMINAL) measured end to end against a standalone reference server.

The end-to-end runs use a short --turn-timeout to keep CI fast; README ("Slow is not stuck")
records one measured run with the default options.
"""

from __future__ import annotations

import time

import pytest

from _standalone import KEY, clause_verdicts, run_cases, standalone_server
from conformance.client import Connection, TargetStalled
from conformance.liveness import Liveness
from conformance.runcontext import RunContext

TURN_DELAY_HEADER = "X-Conformance-Turn-Delay-Ms"


# --- the shared stall state ----------------------------------------------------------------

def test_three_deadline_turns_over_the_run_stall_the_target_across_processes(tmp_path):
    path = tmp_path / "run" / "liveness.json"
    a, b = Liveness(path), Liveness(path)         # two xdist workers of one run
    a.case, b.case = "cases/a.py::one", "cases/b.py::two"
    a.turn_ended("timeout")
    b.turn_ended("completed")                      # passes in between do not reset the count
    b.turn_ended("error")
    b.turn_ended("closed")
    b.turn_ended("timeout")
    assert a.stalled() is None and b.stalled() is None
    a.case = "cases/a.py::three"
    a.turn_ended("timeout")
    stall = b.stalled()
    assert stall and stall["since"] == "cases/a.py::one" and stall["reason"] == "stalled"
    assert stall["kind"] == "unanswered"            # no response of them started: no create is sent
    with pytest.raises(TargetStalled, match=r"target stalled since cases/a.py::one"):
        b.check()
    a.turn_ended("completed")                      # a stall is final
    assert Liveness(path).recorded()["since"] == "cases/a.py::one"
    a.cleanup()
    assert not path.exists()


def test_unfinished_responses_stop_generating_turns_only(tmp_path):
    path = tmp_path / "liveness.json"
    live = Liveness(path)
    live.case = "cases/x.py::first"
    for _ in range(3):
        live.turn_ended("timeout", started=True)
    assert live.stalled()["kind"] == "unfinished"
    live.check()                                    # creates are still sent: errors get judged
    with pytest.raises(TargetStalled, match=r"since cases/x.py::first .*generating turn"):
        live.started_while_stalled()
    other = Liveness(path)
    other.turn_ended("timeout", started=False)      # then a create got no answer at all
    with pytest.raises(TargetStalled):
        live.check()


def test_run_deadline_stops_the_run(tmp_path):
    live = Liveness(tmp_path / "liveness.json", run_deadline=time.time() - 1)
    live.case = "cases/x.py::late"
    with pytest.raises(TargetStalled, match=r"run timeout .* during cases/x.py::late"):
        live.check()
    assert live.recorded()["reason"] == "run-timeout"


# --- idle deadline and turn cap --------------------------------------------------------------

@pytest.fixture
def slow_target(reference_server_factory):
    _, tgt = reference_server_factory(test_controls=True)
    return tgt


def test_a_long_turn_with_short_silences_passes(slow_target):
    slow_target.turn_timeout, slow_target.turn_cap = 0.8, 30.0
    with Connection.open(slow_target, headers={TURN_DELAY_HEADER: "2500"}) as conn:
        t0 = time.monotonic()
        turn = conn.turn(input="Reply with the single word: ok")
        took = time.monotonic() - t0
    assert turn.status in ("completed", "incomplete"), turn.summary()    # it ended
    assert took > 2 * slow_target.turn_timeout        # longer than one idle deadline: slow, not stuck
    assert not turn.violations


def test_the_turn_cap_ends_a_lively_turn(slow_target):
    slow_target.turn_timeout, slow_target.turn_cap = 5.0, 0.8
    with Connection.open(slow_target, headers={TURN_DELAY_HEADER: "4000"}) as conn:
        turn = conn.turn(input="Reply with the single word: ok")
    assert turn.status == "timeout" and "turn cap 0.8s" in turn.detail
    assert [f.clause for f in turn.violations] == ["STREAM-ONE-TERMINAL"]


def test_an_unanswered_create_is_a_create_answered_finding(reference_server_factory, tmp_path):
    _, tgt = reference_server_factory(defects=("create-never-answered",))
    tgt.turn_timeout = 0.5
    live = Liveness(tmp_path / "liveness.json")
    tgt.run = RunContext(liveness=live)      # this target's run: the liveness asked, no budget
    with Connection.open(tgt) as conn:
        for _ in range(3):
            turn = conn.turn(input="hi")
            assert turn.status == "timeout"
            assert turn.violations[-1].clause == "CREATE-ANSWERED"
        with pytest.raises(TargetStalled):
            conn.create(input="hi")                   # no fourth request is sent
        assert sum(1 for _, d, _ in conn.transcript if d == "sent") == 3


def test_on_an_unfinished_stall_errors_are_judged_and_a_response_that_starts_stops(
        reference_server_factory, tmp_path):
    _, tgt = reference_server_factory()
    live = Liveness(tmp_path / "liveness.json")
    live.case = "cases/x.py::first"
    for _ in range(3):
        live.turn_ended("timeout", started=True)
    tgt.run = RunContext(liveness=live)      # this target's run: the liveness asked, no budget
    with Connection.open(tgt) as conn:
        refused = conn.turn(input="hi", background=True)      # a create refused with an error still runs
        assert refused.status == "error"
        with pytest.raises(TargetStalled, match=r"since cases/x.py::first"):
            conn.turn(input="hi")                              # ends at response.created, not by a deadline
        assert conn.messages[-1]["type"] == "response.created"


def test_the_idle_deadline_after_the_output_is_done_is_shorter(reference_server_factory):
    _, tgt = reference_server_factory(defects=("missing-terminal-event",))
    tgt.turn_timeout, tgt.idle_after_done = 30.0, 0.3
    with Connection.open(tgt) as conn:
        t0 = time.monotonic()
        turn = conn.turn(input="Reply with the single word: ok")
        took = time.monotonic() - t0
    assert turn.status == "timeout" and "after its output was done" in turn.detail, turn.summary()
    assert took < 15                                           # a hang guard: far below the 30 s idle deadline
    assert [f.clause for f in turn.violations] == ["STREAM-ONE-TERMINAL"]


# --- end to end: a standalone server as --target ---------------------------------------------

@pytest.mark.timeout(300)
@pytest.mark.parametrize("defect, clause, workers", [
    ("create-never-answered", "CREATE-ANSWERED", ["-n", "2"]),     # xdist: the stall is shared
    ("missing-terminal-event", "STREAM-ONE-TERMINAL", ["-p", "no:xdist"]),
])
def test_a_stuck_target_ends_the_run_quickly_with_fail(tmp_path, defect, clause, workers):
    with standalone_server(defect) as url:
        proc, cert, took = run_cases(["--target", url, "--api-key", KEY, "--turn-timeout", "1", *workers],
                                     tmp_path / "rep", timeout=240)
    assert cert is not None, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert clause_verdicts(cert)[clause] == "FAIL"
    assert cert["overall"] == "FAIL"
    assert cert["counts"]["cases"]["FLAKY"] == 0         # default --retries 1: a defect FAILs every try
    assert cert["stalled"] and cert["stalled"]["since"].startswith("cases/")
    keys = list(cert)
    assert keys.index("stalled") == keys.index("certification") + 1      # at the top, after the verdict
    stopped = [c for c in cert["cases"] if c["verdict"] == "ERROR"]
    assert stopped and all(any("target stalled since" in m for m in c["messages"]) for c in stopped)
    assert "RUN STOPPED EARLY: target stalled since" in proc.stdout
    # about 3 idle deadlines (x workers) plus the cases that ran before: far below one per case
    assert took < 90, f"the run took {took:.0f}s"


@pytest.mark.timeout(120)
def test_run_timeout_caps_a_whole_run(tmp_path):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--run-timeout", "0.5", "cases/test_cache.py",
                               "cases/test_continuation.py"], tmp_path / "rep", timeout=100)
    assert cert is not None, proc.stdout[-3000:]
    assert cert["stalled"]["reason"] == "run-timeout"
    assert any("run timeout (--run-timeout)" in m for c in cert["cases"] for m in c["messages"])
