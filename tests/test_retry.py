"""Retries and FLAKY (conformance/retry.py and the plugin's try loop): a case that FAILs or
ERRORs for a transient reason runs again on fresh connections; differing verdicts are FLAKY,
reported with every try's transcript, and keep the overall verdict from PASS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _standalone import clause_verdicts, run_cases
from conformance import retry as R
from conformance import verdicts as V
from conformance.client import (Blocked, HandshakeRefused, HarnessError, RateLimited, ServerError, TargetStalled,
                                _retry_after)
from conformance.monitor import Finding


def test_combine_and_retryable():
    assert R.combine([V.FAIL, V.FAIL]) == V.FAIL
    assert R.combine([V.FAIL, V.PASS]) == R.FLAKY
    assert R.combine([V.ERROR, V.PASS]) == R.FLAKY
    assert R.combine([V.PASS]) == V.PASS
    assert R.retryable(V.FAIL, None)
    assert R.retryable(V.ERROR, RateLimited("429"))
    assert R.retryable(V.ERROR, ServerError("500"))
    assert not R.retryable(V.ERROR, TargetStalled("stalled"))
    assert not R.retryable(V.ERROR, Blocked("misalignment_policy_violation"))     # §3.10: never retried
    assert not R.retryable(V.ERROR, ValueError("a bug in the case"))
    assert not R.retryable(V.NON_STRICT, None) and not R.retryable(V.PASS, None)


def test_retry_after_is_honoured_and_capped():
    assert _retry_after({"error": {"code": "rate_limit_exceeded", "message": "Please try again in 1.5s."}}) == 1.5
    assert _retry_after({"error": {"message": "try again in 250ms"}}) == 0.25
    assert _retry_after({"status": 429, "retry_after": 7}) == 7.0
    assert _retry_after({"error": {"message": "slow down"}}) is None
    assert R.retry_delay(RateLimited("x", retry_after=2.0), 1) == 2.0
    assert R.retry_delay(RateLimited("x", retry_after=3600), 1) == R.RETRY_AFTER_CAP
    assert R.retry_delay(HarnessError("reset"), 2) == 2 * R.DEFAULT_BACKOFF


def test_a_transient_error_then_a_verdict_is_that_verdict():
    assert R.combine([V.ERROR, V.PASS], ["rate_limit", None]) == V.PASS
    assert R.combine([V.ERROR, V.FAIL], ["server_error", None]) == V.FAIL
    assert R.combine([V.ERROR, V.ERROR], ["rate_limit", "rate_limit"]) == V.ERROR   # nothing judged
    assert R.combine([V.ERROR, V.PASS], [None, None]) == R.FLAKY          # a non-transient ERROR still counts
    assert R.combine([V.FAIL, V.ERROR, V.PASS], [None, "rate_limit", None]) == R.FLAKY
    assert R.transient(RateLimited("429")) == "rate_limit" and R.transient(ServerError("500")) == "server_error"
    assert R.transient(HandshakeRefused(503, "", {})) == "server_error"
    assert R.transient(HandshakeRefused(401, "", {})) is None and R.transient(HarnessError("x")) is None
    assert R.retryable(V.ERROR, HandshakeRefused(429, "", {"Retry-After": "2"}))
    assert R.retry_delay(HandshakeRefused(429, "", {"retry-after": "2"}), 1) == 2.0
    assert R.retry_delay(HandshakeRefused(429, "", {"Retry-After": "Wed, 21 Oct 2015"}), 1) == R.DEFAULT_BACKOFF
    records = [{"tries": [{"verdict": "ERROR", "transient": "rate_limit"}, {"verdict": "PASS"}]},
               {"tries": [{"verdict": "FAIL"}, {"verdict": "FAIL"}]}, {}]
    assert R.summary(records) == {"transient": 1, "cases": 1, "by_reason": {"rate_limit": 1}}


def test_deterministic_findings_and_the_retry_idle_deadline():
    on_frame = Finding("SEQ-MONOTONIC", "went back", frame_index=3)
    by_deadline = Finding("STREAM-ONE-TERMINAL", "no terminal event (idle deadline 60s)")
    assert R.deterministic({"SEQ-MONOTONIC"}, [on_frame])
    assert not R.deterministic({"SEQ-MONOTONIC", "TURN-TEXT"}, [on_frame])          # an expectation too
    assert not R.deterministic({"STREAM-ONE-TERMINAL"}, [by_deadline, Finding("STREAM-ONE-TERMINAL", "x", frame_index=9)])
    assert not R.deterministic(set(), [on_frame])
    assert R.retryable(V.FAIL, None) and not R.retryable(V.FAIL, None, deterministic=True)
    assert R.retry_idle(60.0) == 15.0 and R.retry_idle(2.0) == 1.0 and R.retry_idle(0.5) == 0.5


CASES = '''
import pytest
from pathlib import Path

COUNTER = Path(__file__).with_name("tries.txt")

def _try():
    n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(n))
    return n

@pytest.mark.clause("TURN-TEXT")
def test_flaky(connect, expect):
    connect().turn(input="hi")
    expect("TURN-TEXT", _try() > 1, None, "the first try fails")

@pytest.mark.clause("WS-TEXT-JSON-FRAMES")
def test_always_fails(connect, expect):
    connect()
    expect("WS-TEXT-JSON-FRAMES", False, None, "fails every time")

@pytest.mark.clause("SEQ-PRESENT")
def test_case_bug():
    raise ValueError("a bug in the case: never retried")
'''


def _demo(tmp_path: Path, body: str) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "test_demo.py").write_text(body)
    return cases


@pytest.mark.timeout(120)
def test_flaky_fail_and_error_tries(tmp_path: Path):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--retries", "1"], tmp_path / "rep", cases=_demo(tmp_path, CASES),
                              timeout=100)
    assert cert is not None, proc.stdout[-3000:]
    assert "FLAKY" in proc.stdout and proc.returncode == 1
    cases_ = {c["nodeid"].rsplit("::", 1)[1]: c for c in cert["cases"]}
    flaky, fails, bug = cases_["test_flaky"], cases_["test_always_fails"], cases_["test_case_bug"]
    assert flaky["verdict"] == "FLAKY" and [t["verdict"] for t in flaky["tries"]] == ["FAIL", "PASS"]
    assert fails["verdict"] == "FAIL" and [t["verdict"] for t in fails["tries"]] == ["FAIL", "FAIL"]
    assert bug["verdict"] == "ERROR" and "tries" not in bug
    assert clause_verdicts(cert)["TURN-TEXT"] == "FLAKY"
    assert cert["counts"]["cases"]["FLAKY"] == 1
    transcript = (tmp_path / "rep" / flaky["transcript"]).read_text()
    assert "=== try 1 of 2: FAIL ===" in transcript and "=== try 2 of 2: PASS ===" in transcript
    assert transcript.count('"type":"response.create"') == 2        # one fresh connection per try


@pytest.mark.timeout(120)
def test_flaky_must_keeps_overall_from_pass(tmp_path: Path):
    body = CASES.split('@pytest.mark.clause("WS-TEXT-JSON-FRAMES")')[0]
    proc, cert, _ = run_cases(["-p", "no:xdist", "--retries", "2"], tmp_path / "rep", cases=_demo(tmp_path, body),
                              timeout=100)
    assert cert is not None, proc.stdout[-3000:]
    assert cert["overall"] == "FLAKY" and proc.returncode == 1
    assert [t["verdict"] for t in cert["cases"][0]["tries"]] == ["FAIL", "PASS"]    # stops once it passed


@pytest.mark.timeout(200)
def test_a_defect_fails_never_flaky_and_is_not_retried(tmp_path: Path):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--reference-defect", "sequence-not-monotonic",
                               "--clause", "SEQ-MONOTONIC", "--retries", "1"], tmp_path / "rep", timeout=180)
    assert cert is not None, proc.stdout[-3000:]
    assert clause_verdicts(cert)["SEQ-MONOTONIC"] == "FAIL"
    judged = [c for c in cert["cases"] if c["verdict"] not in ("UNSUPPORTED", "SKIPPED")]
    assert judged and {c["verdict"] for c in judged} <= {"FAIL", "PASS"}
    # a FAIL resting on frames the target sent is deterministic: not retried (issue 21, issue 15 item 12)
    failed = [c for c in judged if c["verdict"] == "FAIL"]
    assert failed and all("tries" not in c and any("not retried" in m for m in c["messages"]) for c in failed)
