"""Budgets known before the run (conformance/budget.py): every case declares its maximum
requests, the header prints the plan, --max-requests is a hard cap across xdist workers, and
cases that no longer fit are SKIPPED "budget"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _standalone import ROOT, run_cases

CASE_DIR = ROOT / "cases"


def test_every_case_declares_its_maximum_requests():
    missing = []
    for path in sorted(CASE_DIR.glob("test_*.py")):
        text = path.read_text()
        for m in re.finditer(r"^def (test_\w+)\(", text, re.M):
            decorators = text[:m.start()].rsplit("\n\n", 1)[-1]
            if "@pytest.mark.max_requests(" not in decorators:
                missing.append(f"{path.name}::{m.group(1)}")
    assert not missing, f"cases without @pytest.mark.max_requests(...): {missing}"


@pytest.mark.timeout(200)
@pytest.mark.parametrize("workers", [["-p", "no:xdist"], ["-n", "2"]])
def test_max_requests_is_a_hard_cap_across_workers(tmp_path: Path, workers):
    cap = 12
    proc, cert, _ = run_cases([*workers, "--max-requests", str(cap), "cases/test_continuation.py",
                               "cases/test_cache.py", "cases/test_transport.py"], tmp_path / "rep", timeout=180)
    assert cert is not None, proc.stdout[-3000:]
    spent = cert["usage"]["creates"] + cert["usage"]["http_requests"]
    assert 0 < spent <= cap
    skipped = [c for c in cert["cases"] if c["verdict"] == "SKIPPED" and c["messages"][0].startswith("budget:")]
    assert skipped and cert["budget"]["skipped"] == len(skipped)
    assert cert["budget"]["max_requests"] == cap
    # the plan is printed before the first case's result
    plan = proc.stdout.index("conformance budget: at most ")
    assert plan < proc.stdout.index("responses-ws-conformance ===")
    assert f"budget: --max-requests {cap}; {len(skipped)} case(s) SKIPPED (budget)" in proc.stdout


DEMO = '''
import pytest

@pytest.mark.clause("TURN-TEXT")
@pytest.mark.max_requests(creates=1)
def test_declares_one_sends_two(connect):
    conn = connect()
    conn.turn(input="one")
    conn.turn(input="two")
'''


@pytest.mark.timeout(120)
def test_a_case_sending_more_than_declared_is_stopped(tmp_path: Path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "test_demo.py").write_text(DEMO)
    proc, cert, _ = run_cases(["-p", "no:xdist", "--max-requests", "50"], tmp_path / "rep", cases=cases, timeout=100)
    assert cert is not None, proc.stdout[-3000:]
    case = cert["cases"][0]
    assert case["verdict"] == "ERROR" and "BudgetExceeded" in case["messages"][0]
    assert cert["usage"]["creates"] == 1          # the second create was never sent


@pytest.mark.timeout(120)
def test_a_bad_max_requests_mark_is_a_usage_error(tmp_path: Path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "test_demo.py").write_text(DEMO.replace("creates=1", "creates=1, sockets=2"))
    proc, cert, _ = run_cases(["-p", "no:xdist"], tmp_path / "rep", cases=cases, timeout=100)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "test_declares_one_sends_two: max_requests takes creates=, http=, plus=, generated= and perf= only, not ['sockets']" \
        in proc.stderr + proc.stdout
