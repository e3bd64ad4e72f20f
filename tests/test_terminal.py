"""Self-tests of the terminal output (issue 15 items 8 and 12): one line per case that did not
pass, each failing clause's findings once with the cases it touched, no traceback of the
suite's own code by default (``-v`` / ``--long-failures`` give pytest's long form), and a
summary that ends with "Certified: ..." and the report's path. The bound of the issue — a run
against a server with 3 defects prints under 200 lines — is checked on the real cases."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conformance.report import findings as F
from conformance.report import terminal as T

# see tests/test_plugin.py: import what the inner runs use before they run
import conformance.server  # noqa: E402,F401
import conformance.monitor  # noqa: E402,F401
import conformance.schemas  # noqa: E402,F401
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
# a schema deviation seen in nearly every case, a queueing defect and a flat error shape
THREE_DEFECTS = ("missing-created-response-fields", "reject-when-busy", "flat-error-shape")
MAX_LINES = 200
RUN_DEADLINE_S = 240


@pytest.mark.heavy      # a whole suite run with three defects (~20 s of CPU; CI: make selftest-heavy)
def test_three_defects_fit_on_a_screen(tmp_path: Path):
    report = tmp_path / "rep"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "cases"), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--turn-timeout", "5", "--report-dir", str(report)]
    for d in THREE_DEFECTS:
        cmd += ["--reference-defect", d]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {"COLUMNS": "120"}
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=RUN_DEADLINE_S)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) < MAX_LINES, f"{len(lines)} lines:\n" + proc.stdout[-3000:]
    cert = json.loads((report / "certificate.json").read_text())
    failed = {r["id"] for r in cert["clauses"] if r["verdict"] == "FAIL"}
    assert len(failed) >= 3
    # each failing clause is said once, with its cases; no traceback, no transcript
    for cid in failed:
        heads = [ln for ln in lines if ln.startswith(f"  FAIL       {cid} (MUST) in ")]
        assert len(heads) == 1, (cid, heads)
    schema = next(ln for ln in lines if ln.startswith("  FAIL       SCHEMA-SERVER-EVENT (MUST) in "))
    assert int(schema.split(" in ")[1].split()[0]) > 20
    assert sum("required property 'tools' is missing" in ln for ln in lines) <= 2
    assert "Traceback" not in proc.stdout and "FAILURES" not in proc.stdout and ">> " not in proc.stdout
    # one line per case that did not pass, naming its clause and transcript
    not_passing = [c for c in cert["cases"] if c["verdict"] in F.NOT_PASSING]
    for c in not_passing:
        mine = [ln for ln in lines if f" {c['nodeid']}  " in ln]
        assert len(mine) == 1, (c["nodeid"], mine)
        assert mine[0].split()[0] == c["verdict"] and c["transcript"].split("/")[-1] in mine[0]
    # the end: certified or not, then the report
    assert lines[-3].startswith("Certified: no — overall verdict is FAIL")
    assert lines[-2].startswith("report: ") and str(report) in lines[-2]
    # index.html says the schema finding under its clause, not once per case
    html = (report / "index.html").read_text()
    # (its evidence: the messages, and the picture's highlighted frame once)
    assert html.count("required property &#x27;tools&#x27; is missing") <= 4
    assert html.count('the finding under <a href="#evidence-SCHEMA-SERVER-EVENT">') > 20
    assert 'id="clause-SCHEMA-SERVER-EVENT"' in html


CASES = '''
import pytest
from conformance.client import HarnessError

@pytest.mark.clause("TURN-TEXT")
def test_pass(connect, expect):
    t = connect().turn(input="hello", max_output_tokens=200)
    expect("TURN-TEXT", t.status == "completed", t)

@pytest.mark.clause("WS-SAME-PATH")
def test_must_fail(connect, expect):
    connect().turn(input="hi")
    expect("WS-SAME-PATH", False, {"status": 404}, "forced failure")

@pytest.mark.clause("ERR-STATUS-PRESENT")
def test_should_fail(expect):
    expect("ERR-STATUS-PRESENT", False, None, "forced should")

@pytest.mark.clause("TURN-TEXT")
def test_harness_error():
    raise HarnessError("budget exhausted")
'''


def _run(pytester: pytest.Pytester, *extra: str, subprocess: bool = False) -> list[str]:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_demo.py").write_text(CASES)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = run("-p", "no:cacheprovider", "cases", *extra)
    result.assert_outcomes(passed=2, failed=1, errors=1, warnings=1)
    return result.outlines


def test_short_form_by_default(pytester: pytest.Pytester):
    lines = _run(pytester, "--report-dir", "rep")
    out = "\n".join(lines)
    assert "Traceback" not in out and "def test_must_fail" not in out and "conformance transcript" not in out
    assert "short test summary info" not in out and "warnings summary" not in out
    case = next(ln for ln in lines if "::test_must_fail  " in ln)
    assert case.split()[0] == "FAIL" and "WS-SAME-PATH: forced failure" in case
    assert "→ " + os.path.join("rep", "transcripts", "cases_test_demo.py__test_must_fail.txt") in case
    err = next(ln for ln in lines if "::test_harness_error  " in ln)
    assert err.split()[0] == "ERROR" and "TURN-TEXT: budget exhausted" in err
    should = next(ln for ln in lines if "::test_should_fail  " in ln)
    assert should.split()[0] == "NON-STRICT" and "ERR-STATUS-PRESENT: forced should" in should
    assert any(ln.startswith("  FAIL       WS-SAME-PATH (MUST) in 1 case(s): The WebSocket upgrade") for ln in lines)
    assert lines[-3].startswith("Certified: no — overall verdict is FAIL")
    assert lines[-2].startswith("report: rep") and lines[-2].split()[1].endswith("index.html")
    assert "1 failed" in lines[-1] and "1 error" in lines[-1]     # pytest's counts are unchanged


def test_short_form_under_xdist(pytester: pytest.Pytester):
    pytest.importorskip("xdist")
    lines = _run(pytester, "--no-report", "-n", "2", subprocess=True)
    out = "\n".join(lines)
    assert "FAILURES" not in out and "Traceback" not in out and "conformance transcript" not in out
    assert sum(" cases/test_demo.py::test_" in ln for ln in lines) == 3     # FAIL, ERROR, NON-STRICT
    assert lines[-2].startswith("Certified: no — ")


@pytest.mark.parametrize("flag", ["--long-failures", "-v", "--tb=short"])
def test_long_form_on_request(pytester: pytest.Pytester, flag: str):
    out = "\n".join(_run(pytester, "--no-report", flag))
    assert "FAILURES" in out and "conformance transcript" in out and "HarnessError" in out
    assert "short test summary info" in out
    assert "Certified: no — " in out          # the summary is there in both forms


def test_non_conformance_failures_keep_their_long_form(pytester: pytest.Pytester):
    """A plain test (not a case) run beside the cases keeps pytest's usual entry."""
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_demo.py").write_text(CASES)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "cases", "test_plain.py")
    out = result.stdout.str()
    assert "FAILURES" in out and "def test_plain" in out and "FAILED test_plain.py::test_plain" in out
    assert "def test_must_fail" not in out


def _case(nodeid: str, verdict: str, clauses: list[str], findings: list[tuple[str, str, str]], **kw) -> dict:
    return {"nodeid": nodeid, "verdict": verdict, "clauses": clauses, "messages": kw.pop("messages", []),
            "findings": [{"clause": c, "verdict": v, "message": m, "ok": False} for c, v, m in findings], **kw}


def _cert(cases: list[dict], rows: dict[str, str]) -> dict:
    return {"cases": cases, "overall": "FAIL",
            "certification": {"certified": False, "reasons": ["overall verdict is FAIL"]},
            "clauses": [{"id": cid, "level": "MUST", "verdict": v, "requirement": f"{cid} holds."}
                        for cid, v in rows.items()]}


def test_one_deviation_said_once_with_its_cases():
    schema = "response.created: /response/tools: required property 'tools' is missing"
    cases = [_case(f"cases/t.py::test_{i}", "FAIL", ["TURN-TEXT"], [("SCHEMA-SERVER-EVENT", "FAIL", schema)] * 2)
             for i in range(42)]
    own = [("SCHEMA-SERVER-EVENT", "FAIL", schema), ("QUEUE-FIFO", "FAIL", "the second create was refused")]
    cases.append(_case("cases/t.py::test_own", "FAIL", ["QUEUE-FIFO"], own))
    cases.append(_case("cases/t.py::test_known", "KNOWN", ["TURN-TEXT"], [("SCHEMA-SERVER-EVENT", "FAIL", schema)]))
    cases.append(_case("cases/t.py::test_ok", "PASS", ["TURN-TEXT"], []))
    cert = _cert(cases, {"SCHEMA-SERVER-EVENT": "FAIL", "QUEUE-FIFO": "FAIL", "TURN-TEXT": "PASS"})
    groups = F.group_by_clause(cert)
    assert [(g.clause, len(g.cases)) for g in groups] == [("SCHEMA-SERVER-EVENT", 43), ("QUEUE-FIFO", 1)]
    assert "cases/t.py::test_known" not in groups[0].cases and groups[0].headline == schema
    lines = [t for t, _ in T.findings_lines(cert)]
    assert sum(schema in ln for ln in lines) == 1
    own = next(ln for ln in lines if "::test_own  " in ln)
    assert "QUEUE-FIFO: the second create was refused; also SCHEMA-SERVER-EVENT" in own   # its own clause first
    plain = next(ln for ln in lines if "::test_3  " in ln)
    assert "SCHEMA-SERVER-EVENT: as in 43 cases" in plain
    assert not any("test_ok" in ln or "test_known  " in ln for ln in lines)


def test_reasons_of_error_and_flaky_cases():
    err = _case("c::e", "ERROR", ["LANE-FIFO"], [], messages=["ERROR: HarnessError: cannot judge: too fast"])
    stalled = _case("c::s", "ERROR", ["TURN-TEXT"], [], messages=["ERROR: TargetStalled: no frame for 60 s"])
    assert F.case_reason(stalled) == ("TURN-TEXT", "TargetStalled: no frame for 60 s")
    flaky = _case("c::f", "FLAKY", ["QUEUE-FIFO"], [], messages=["tries gave FAIL, PASS"],
                  tries=[{"failed_clauses": ["QUEUE-FIFO"]}, {"failed_clauses": []}])
    assert F.case_reason(err) == ("LANE-FIFO", "cannot judge: too fast")
    assert F.case_reason(flaky) == ("QUEUE-FIFO", "tries gave FAIL, PASS (failed: QUEUE-FIFO)")
    assert F.sentence("x" * 500).endswith("…") and len(F.sentence("x" * 500)) == F.SENTENCE
    assert F.sentence("first line\nsecond") == "first line"


def test_certified_line():
    yes = {"certification": {"certified": True, "reasons": [], "must_pass": 58, "must_claimed": 58}}
    assert T.verdict_lines(yes, None)[0][0] == "Certified: yes (MUST 58/58 claimed clauses PASS)"
    no = {"certification": {"certified": False, "reasons": ["overall verdict is ERROR", "1 FLAKY case(s): c::f"]}}
    text = [t for t, _ in T.verdict_lines(no, {"dir": "/elsewhere/rep"}, cwd="/work")]
    assert text == ["Certified: no — overall verdict is ERROR; 1 FLAKY case(s): c::f",
                    "report: /elsewhere/rep/index.html  (certificate.json, junit.xml, badge.svg, transcripts/)"]


def test_held_back_restores_pytest_stats():
    class Rep:
        def __init__(self, nodeid: str, message: str = ""):
            self.nodeid, self.message = nodeid, message
    case, plain, warn = Rep("cases/t.py::a"), Rep("t.py::b"), Rep("", "x.py:1: ConformanceWarning: NON-STRICT: y")
    stats = {"failed": [case, plain], "warnings": [warn], "passed": [Rep("p")]}
    with T.held_back(stats, {"cases/t.py::a"}):
        assert stats["failed"] == [plain] and stats["warnings"] == []
        stats["warnings"].append(Rep("", "late"))
    assert stats["failed"] == [case, plain] and [w.message for w in stats["warnings"]][0] == warn.message
    assert len(stats["warnings"]) == 2
