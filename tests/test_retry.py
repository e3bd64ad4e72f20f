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
from conformance.client import Blocked, HarnessError, RateLimited, ServerError, TargetStalled, _retry_after


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
def test_a_defect_fails_every_try_never_flaky(tmp_path: Path):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--reference-defect", "sequence-not-monotonic",
                               "--clause", "SEQ-MONOTONIC", "--retries", "1"], tmp_path / "rep", timeout=180)
    assert cert is not None, proc.stdout[-3000:]
    assert clause_verdicts(cert)["SEQ-MONOTONIC"] == "FAIL"
    judged = [c for c in cert["cases"] if c["verdict"] not in ("UNSUPPORTED", "SKIPPED")]
    assert judged and {c["verdict"] for c in judged} <= {"FAIL", "PASS"}
    assert any(c["verdict"] == "FAIL" and [t["verdict"] for t in c["tries"]] == ["FAIL", "FAIL"] for c in judged)
