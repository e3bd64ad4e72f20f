"""Self-tests of the pytest plugin via pytester: a tiny case file run against the embedded
reference server (loopback), checking pytest outcomes, verdicts and certificate.json."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import jsonschema
import pytest

from conformance.plugin import EMBEDDED_KEY, NONCE_RE, new_nonce

# pytester's in-process runs drop modules first imported inside them; import what the inner
# runs use up front, so that the outer session keeps one copy of each (aiohttp, server, ...)
import conformance.server  # noqa: E402,F401
import conformance.monitor  # noqa: E402,F401
import conformance.schemas  # noqa: E402,F401

CASES = '''
import pytest
from conformance.client import HarnessError
from conformance.verdicts import expect as module_expect

@pytest.mark.clause("TURN-TEXT")
def test_pass(connect, expect, target, nonce):
    assert target.is_embedded
    t = connect().turn(input=f"hello {nonce}", max_output_tokens=200)
    expect("TURN-TEXT", t.status == "completed", t)
    module_expect("TURN-TEXT", t.output_text != "", t)

@pytest.mark.clause("WS-SAME-PATH")
def test_must_fail(connect, expect):
    connect().turn(input="hi")
    expect("WS-SAME-PATH", False, {"status": 404}, "forced failure")

@pytest.mark.clause("ERR-STATUS-PRESENT")
def test_should_fail(expect):
    expect("ERR-STATUS-PRESENT", False, None, "forced should")
    expect("ERR-STATUS-PRESENT", True)

@pytest.mark.clause("ZDR-NOTHING-PERSISTED")
def test_unsupported(expect):
    raise RuntimeError("must not run: the reference profile does not claim zdr")

@pytest.mark.clause("TURN-TEXT")
def test_harness_error():
    raise HarnessError("budget exhausted")

@pytest.mark.slow
@pytest.mark.clause("LIFETIME-LIMIT-ERROR")
def test_slow():
    raise RuntimeError("must not run without --run-slow")

@pytest.mark.clause("WS-NO-SSE-FRAMING")
def test_monitor_finding_fails(reference_server_factory, connect):
    server, tgt = reference_server_factory(defects=("sse-framing",))
    connect(target=tgt).turn(input="hi")     # no expect: the monitor's findings decide
'''


CERTIFICATE_SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "certificate.json").read_text())


def _cert(pytester: pytest.Pytester, name: str = "rep") -> dict:
    """The run's certificate; it must validate against schemas/certificate.json."""
    cert = json.loads((pytester.path / name / "certificate.json").read_text())
    jsonschema.validate(cert, CERTIFICATE_SCHEMA, cls=jsonschema.Draft202012Validator)
    return cert


def _setup(pytester: pytest.Pytester, body: str = CASES, name: str = "test_demo.py") -> None:
    cases = pytester.mkdir("cases")
    (cases / name).write_text(body)


def _all_report_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_verdicts_outcomes_and_certificate(pytester: pytest.Pytester):
    _setup(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep", "-rs", "cases")
    result.assert_outcomes(passed=2, failed=2, skipped=2, errors=1, warnings=1)
    out = result.stdout.str()
    assert "UNSUPPORTED: ZDR-NOTHING-PERSISTED requires zdr" in out
    assert "slow: needs --run-slow" in out
    assert "NON-STRICT" in out and "responses-ws-conformance" in out
    assert "WS-SAME-PATH (MUST) in 1 case(s): The WebSocket upgrade is accepted" in out   # clause + requirement
    cert = _cert(pytester)
    verdicts = {c["nodeid"].split("::")[-1]: c["verdict"] for c in cert["cases"]}
    assert verdicts == {"test_pass": "PASS", "test_must_fail": "FAIL", "test_should_fail": "NON-STRICT",
                        "test_unsupported": "UNSUPPORTED", "test_harness_error": "ERROR",
                        "test_slow": "SKIPPED", "test_monitor_finding_fails": "FAIL"}
    clauses = {r["id"]: r for r in cert["clauses"]}
    assert clauses["TURN-TEXT"]["verdict"] == "PASS"
    # what the run spent: three cases each sent one response.create (one on a second server)
    spent = {c["nodeid"].split("::")[-1]: c["usage"] for c in cert["cases"]}
    assert spent["test_pass"]["creates"] == 1 and spent["test_pass"]["output_tokens"] > 0
    assert spent["test_should_fail"]["creates"] == 0
    assert cert["usage"]["creates"] == 3
    assert cert["usage"]["input_tokens"] == sum(u.get("input_tokens", 0) for u in spent.values())
    assert clauses["WS-SAME-PATH"]["verdict"] == "FAIL"
    assert clauses["ERR-STATUS-PRESENT"]["verdict"] == "NON-STRICT"
    assert clauses["ZDR-NOTHING-PERSISTED"]["verdict"] == "UNSUPPORTED"
    assert clauses["WS-NO-SSE-FRAMING"]["verdict"] == "FAIL" and clauses["WS-NO-SSE-FRAMING"]["findings"]
    assert clauses["ERR-ENVELOPE"]["verdict"] == "UNTESTED"
    assert cert["profile"] == "reference" and cert["overall"] == "FAIL"
    assert cert["target"]["embedded"] is True and cert["target"]["ws_path"] == "/v1/responses"
    assert cert["counts"]["cases"]["total"] == 7
    assert 0 < cert["coverage"]["all"]["with_cases"] < cert["coverage"]["all"]["clauses"]
    for key in ("suite_version", "started", "finished", "clauses", "cases", "coverage", "counts"):
        assert key in cert
    junit = (pytester.path / "rep" / "junit.xml").read_text()
    assert 'name="verdict" value="FAIL"' in junit and 'name="clause" value="WS-SAME-PATH"' in junit
    assert "<system-out>" in junit and "response.create" in junit     # transcript of a failing case
    html = (pytester.path / "rep" / "index.html").read_text()
    assert "<script" not in html and "http" not in html.split("<body>", 1)[1].split("127.0.0.1")[0]
    assert EMBEDDED_KEY not in _all_report_text(pytester.path / "rep")


def test_strict_fails_should_violations(pytester: pytest.Pytester):
    _setup(pytester, CASES.split("@pytest.mark.clause(\"ZDR")[0])
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--strict-conformance", "cases",
                                "-k", "should")
    result.assert_outcomes(failed=1)
    assert "failing under strict" in result.stdout.str()


def test_unreachable_target_is_error_not_failure(pytester: pytest.Pytester):
    """Without the preflight (tests/test_preflight.py ends such a run before any case), a case
    that cannot reach the target is ERROR, never FAIL, and the run exits INCOMPLETE (7)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    _setup(pytester, 'import pytest\n@pytest.mark.clause("TURN-TEXT")\ndef test_pass(connect):\n    connect()\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep", "cases", "--no-preflight",
                                "--target", f"ws://127.0.0.1:{port}/v1/responses", "--api-key", "sk-x-unreach-123456")
    result.assert_outcomes(errors=1)
    assert result.ret == 7
    cert = _cert(pytester)
    assert cert["cases"][0]["verdict"] == "ERROR" and cert["profile"] == "openai"
    assert "TargetUnreachable" in " ".join(cert["cases"][0]["messages"])
    assert "sk-x-unreach-123456" not in _all_report_text(pytester.path / "rep")


def test_unknown_clause_is_a_collection_error(pytester: pytest.Pytester):
    _setup(pytester, 'import pytest\n@pytest.mark.clause("NO-SUCH-CLAUSE")\ndef test_x():\n    pass\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "NO-SUCH-CLAUSE" in result.stderr.str()


def test_case_without_clause_is_a_collection_error(pytester: pytest.Pytester):
    _setup(pytester, "def test_unmarked():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_unmarked" in result.stderr.str() and "clause" in result.stderr.str()


def test_unmarked_tests_outside_cases_are_fine(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "rep").exists()    # no conformance case ran: no report


@pytest.mark.parametrize("content, fragment", [
    ('name = "acme"\nextends = "openai"\n[features]\nlanes = "yes"\n', "features.lanes"),
    ('name = "acme"\n[features\n', "not valid TOML"),
])
def test_bad_target_config_is_a_usage_error(pytester: pytest.Pytester, content, fragment):
    _setup(pytester)
    cfg = pytester.path / "acme.toml"
    cfg.write_text(content)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--target-config", str(cfg), "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "acme.toml" in err and fragment in err and "Traceback" not in err


def test_target_config_changes_capabilities(pytester: pytest.Pytester):
    _setup(pytester, CASES)
    cfg = pytester.path / "acme.toml"
    cfg.write_text('name = "acme"\nextends = "reference"\n[cache]\nzdr = true\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--target-config", str(cfg), "cases",
                                "-k", "unsupported")
    result.assert_outcomes(errors=1)      # now it runs; its body raises RuntimeError: ERROR


def test_bad_target_url_is_a_usage_error(pytester: pytest.Pytester):
    _setup(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--target", "api.openai.com/v1", "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ws:// or wss://" in result.stderr.str()


@pytest.mark.parametrize("args, fragment", [
    (["--reference-option", "omit-everything"], "unknown; known: omit-setup-events"),
    (["--reference-option", "omit-terminal-output=sometimes"], "takes one of empty, null, missing"),
    (["--reference-option", "control-events=yes"], "takes no value"),
    (["--reference-option", "control-events", "--target", "ws://127.0.0.1:9/v1/responses"], "not to --target"),
])
def test_bad_reference_option_is_a_usage_error(pytester: pytest.Pytester, args, fragment):
    _setup(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", *args, "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert fragment in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_reference_options_become_server_config():
    from conformance.options import reference_overrides
    assert reference_overrides(["omit-setup-events", "omit-terminal-output", "control-events"]) == {
        "omit_setup_events": True, "terminal_output": "empty", "control_events": True}
    assert reference_overrides(["omit-terminal-output=missing"]) == {"terminal_output": "missing"}


def test_xdist_workers_merge_into_one_certificate(pytester: pytest.Pytester):
    pytest.importorskip("xdist")
    _setup(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--report-dir", "rep", "cases")
    result.assert_outcomes(passed=2, failed=2, skipped=2, errors=1)
    cert = _cert(pytester)
    assert cert["counts"]["cases"]["total"] == 7
    assert {c["verdict"] for c in cert["cases"]} == {"PASS", "FAIL", "NON-STRICT", "UNSUPPORTED", "ERROR", "SKIPPED"}


def test_nonce_shape():
    for _ in range(50):
        n = new_nonce()
        assert NONCE_RE.fullmatch(n)
    assert new_nonce() != new_nonce()


def test_clause_option_selects_cases(pytester: pytest.Pytester):
    _setup(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--clause", "ERR-STATUS-PRESENT",
                                "--clause", "ZDR-NOTHING-PERSISTED", "cases")
    result.assert_outcomes(passed=1, skipped=1, deselected=5, warnings=1)
    bad = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--clause", "NO-SUCH-CLAUSE", "cases")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown clause id(s) NO-SUCH-CLAUSE" in bad.stderr.str()
    typo = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--clause", "ERR-STATUS-PRESNT", "cases")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    lines = [ln for ln in typo.stderr.str().splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean ERR-STATUS-PRESENT?" in lines[0], lines


BLOCKED_CASES = '''
import pytest
from conformance.client import http_request

@pytest.mark.clause("TURN-TEXT")
@pytest.mark.parametrize("trigger", ["[[misaligned]]", "[[misaligned-mid]]"])
def test_blocked(connect, expect, trigger):
    t = connect().turn(input=f"{trigger} hello", max_output_tokens=200)
    expect("TURN-TEXT", False, t, "must not be reached: the block is ERROR, not FAIL")

@pytest.mark.clause("TURN-TEXT")
def test_blocked_http(target, expect):
    r = http_request(target, "POST", target.http_url("/responses"),
                     {"model": target.model, "input": "[[misaligned]] hi"})
    expect("TURN-TEXT", False, r.status, "must not be reached")
'''


def test_misalignment_block_is_error_and_listed(pytester: pytest.Pytester):
    """§3.10: a misalignment_policy_violation (403 before streaming, an error mid-response, or
    a 403 HTTP body) is ERROR "blocked by the target's safety system", listed in the summary
    and in certificate.json, and never FAIL."""
    _setup(pytester, BLOCKED_CASES)
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep", "cases")
    result.assert_outcomes(errors=3)
    out = result.stdout.str()
    assert "blocked by the target's safety system" in out and "3 case(s)" in out
    cert = _cert(pytester)
    assert {c["verdict"] for c in cert["cases"]} == {"ERROR"} and cert["overall"] == "ERROR"
    assert cert["blocked"] == sorted(c["nodeid"] for c in cert["cases"])
    messages = " ".join(m for c in cert["cases"] for m in c["messages"])
    assert "before streaming" in messages and "mid-response" in messages and "HTTP 403" in messages


def test_misalignment_block_is_never_retried(pytester: pytest.Pytester):
    """§3.10: clients must not retry a safety block on their own; with --retries each blocked
    case still sends its one request (the retry machinery lives in conformance.retry)."""
    pytest.importorskip("conformance.retry")
    _setup(pytester, BLOCKED_CASES)
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep", "--retries", "2", "cases")
    result.assert_outcomes(errors=3)
    cert = _cert(pytester)
    assert len(cert["blocked"]) == 3
    assert cert["usage"]["creates"] == 2 and cert["usage"]["http_requests"] == 1     # one try each


def test_an_unknown_reference_defect_is_a_usage_error_with_a_suggestion(pytester):
    """Bad input gets one line (exit 4), not a run of cases that all ERROR."""
    cases = Path(__file__).resolve().parent.parent / "cases"
    result = pytester.runpytest_subprocess(str(cases), "-p", "no:cacheprovider", "--no-report",
                                           "--reference-defect", "reject-when-bussy")
    assert result.ret == 4
    err = result.stderr.str()
    assert "unknown defect(s) reject-when-bussy" in err and "did you mean reject-when-busy?" in err
    assert "Traceback" not in err + result.stdout.str()
