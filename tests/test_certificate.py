"""Self-tests of the certificate format (issue 10 items 3 and 4): every certificate the suite
writes validates against ``schemas/certificate.json`` (a run with every verdict kind, an
xdist run, certificates with the FLAKY and KNOWN verdicts), and every report directory has a
``badge.svg`` that index.html links to and that states the overall verdict and MUST n/m."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import conformance
from conformance import release
from conformance import verdicts as V
from conformance.report import CERTIFICATE_VERSION, build_certificate
from conformance.target import REDACTED, redact
from conformance.report.badge import badge_text, must_counts, render_badge

# see tests/test_plugin.py: import what the inner runs use before they run
import conformance.server  # noqa: E402,F401
import conformance.monitor  # noqa: E402,F401
import conformance.schemas  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "certificate.json"
KEY = "sk-selftest-certificate-key-0001"

# one case per case verdict: PASS, FAIL, NON-STRICT, INFO, UNSUPPORTED, ERROR, SKIPPED
EVERY_VERDICT = '''
import pytest
from conformance.client import HarnessError

@pytest.mark.clause("TURN-TEXT")
def test_pass(connect, expect):
    t = connect().turn(input="hello", max_output_tokens=200)
    expect("TURN-TEXT", t.status == "completed", t)

@pytest.mark.clause("WS-SAME-PATH", "ERR-STATUS-PRESENT")
def test_fail_early(expect):
    expect("WS-SAME-PATH", False, {"status": 404}, "forced failure")
    expect("ERR-STATUS-PRESENT", True)

@pytest.mark.clause("SEQ-FROM-ZERO-BY-ONE")
def test_non_strict(expect):
    expect("SEQ-FROM-ZERO-BY-ONE", False, None, "forced should")

@pytest.mark.clause("EXT-UNKNOWN-TOLERATED")
def test_info(verdict):
    verdict.info("an observation", "EXT-UNKNOWN-TOLERATED")

@pytest.mark.clause("ZDR-NOTHING-PERSISTED")
def test_unsupported():
    raise RuntimeError("must not run")

@pytest.mark.clause("LANE-FIFO")
def test_error():
    raise HarnessError("budget exhausted")

@pytest.mark.slow
@pytest.mark.clause("LIFETIME-LIMIT-ERROR")
def test_slow():
    raise RuntimeError("must not run")
'''


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, cert: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(cert)]


def _run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> Path:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_every.py").write_text(EVERY_VERDICT)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    run("-p", "no:cacheprovider", "--report-dir", "rep", "cases", *args)
    return pytester.path / "rep"


def _check_badge(rep: Path, cert: dict) -> None:
    svg = (rep / "badge.svg").read_text(encoding="utf-8")
    root = ET.fromstring(svg)                                  # well-formed XML
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    passed, claimed = must_counts(cert)
    assert f"MUST {passed}/{claimed}" in badge_text(cert)
    assert badge_text(cert) in texts and "conformance" in texts
    html = (rep / "index.html").read_text(encoding="utf-8")
    assert '<a href="badge.svg"><img src="badge.svg"' in html
    # every area of the certificate has its row, lanes and steering among them, in spec order
    areas = {r["area"] for r in cert["clauses"]}
    assert {"Lanes (stream_id, P-lanes)", "§4.9 Steering"} <= areas
    rows = [a for a in re.findall(r'<div class="area"><span class="name">([^<]+)</span>', html) if a in areas]
    assert sorted(rows) == sorted(areas) and rows.index("§4.4 Concurrency and queueing") + 1 == \
        rows.index("Lanes (stream_id, P-lanes)")


def test_every_verdict_kind_validates(pytester: pytest.Pytester, validator):
    rep = _run(pytester)
    cert = json.loads((rep / "certificate.json").read_text())
    assert _errors(validator, cert) == []
    verdicts = {c["nodeid"].split("::")[-1]: c["verdict"] for c in cert["cases"]}
    assert verdicts == {"test_pass": "PASS", "test_fail_early": "FAIL", "test_non_strict": "NON-STRICT",
                        "test_info": "INFO", "test_unsupported": "UNSUPPORTED", "test_error": "ERROR",
                        "test_slow": "SKIPPED"}
    assert cert["certificate_version"] == CERTIFICATE_VERSION
    assert cert["spec_profiles"] == ["P-lanes", "P-legacy", "P-steer"]
    registry = V.ClauseRegistry.load(V.default_clauses_path())
    assert cert["clause_registry"]["sha256"] == registry.digest()
    # the case stopped at WS-SAME-PATH: ERR-STATUS-PRESENT was not reached, so it is not PASS
    rows = {r["id"]: r for r in cert["clauses"]}
    assert rows["ERR-STATUS-PRESENT"]["verdict"] == "NOT-REACHED"
    assert [c["not_reached"] for c in cert["cases"] if c["verdict"] == "FAIL"] == [["ERR-STATUS-PRESENT"]]
    assert rows["LANE-FIFO"]["verdict"] == "ERROR"        # its only case could not judge
    assert rows["LANE-FIFO"]["reason"].startswith("cannot judge: test_error ended ERROR")
    assert cert["counts"]["clauses"]["NOT-REACHED"] == 1 and cert["counts"]["clauses"]["ERROR"] == 1
    _check_badge(rep, cert)
    assert "FAIL · MUST" in badge_text(cert)
    # not certified, and the reasons say why
    certif = cert["certification"]
    assert certif["certified"] is False and certif["reasons"][0] == "overall verdict is FAIL"
    assert any("ERROR: " in r and "LANE-FIFO" in r for r in certif["reasons"])
    assert not rows["ZDR-NOTHING-PERSISTED"]["claimed"] and rows["TURN-TEXT"]["claimed"]
    assert (certif["must_pass"], certif["must_claimed"]) == must_counts(cert)


def test_xdist_certificate_validates(pytester: pytest.Pytester, validator):
    pytest.importorskip("xdist")
    rep = _run(pytester, "-n", "2", subprocess=True)
    cert = json.loads((rep / "certificate.json").read_text())
    assert _errors(validator, cert) == []
    assert cert["counts"]["cases"]["total"] == 7
    _check_badge(rep, cert)


def _record(nodeid: str, clause: str, verdict: str) -> dict:
    level = "MUST"
    obs = [V.Observation(clause, level, verdict == V.PASS, "expect", "").as_dict()]
    return {"nodeid": nodeid, "clauses": [clause], "verdict": verdict, "messages": [], "observations": obs,
            "duration_s": 0.1, "usage": {"creates": 1}, "reached": [clause]}


_FINGERPRINT = {"ws_host": "h", "ws_path": "/v1/responses", "profile": "openai", "profile_source": "built-in:openai",
                "profile_sha256": "0" * 64, "model": "m", "embedded": False, "auth_header": "Authorization",
                "capabilities": []}


def test_flaky_and_known_verdicts_validate_and_the_schema_rejects_what_it_does_not_describe(validator):
    registry = V.ClauseRegistry.load(V.default_clauses_path())
    records = [_record("c::a", "TURN-TEXT", V.PASS), _record("c::b", "WS-SAME-PATH", "FLAKY"),
               _record("c::c", "LANE-FIFO", "KNOWN")]
    cert = build_certificate(registry=registry, records=records, profile="openai",
                             fingerprint={"ws_host": "h", "ws_path": "/v1/responses", "profile": "openai",
                                          "profile_source": "built-in:openai", "profile_sha256": "0" * 64, "model": "m", "embedded": False,
                                          "auth_header": "Authorization", "capabilities": []},
                             started=0.0, finished=1.0, strict=False, run_id="20260101-000000-abcdef",
                             spec_profiles=("P-legacy",))
    assert _errors(validator, cert) == []
    certif = cert["certification"]
    assert not certif["certified"] and any("FLAKY case(s): c::b" in r for r in certif["reasons"])
    for mutate, where in [
        (lambda c: c.pop("certificate_version"), ""),
        (lambda c: c.update(surprise=1), ""),
        (lambda c: c["cases"][0].update(verdict="GREAT"), "cases/0/verdict"),
        (lambda c: c["clauses"][0].update(verdict="MAYBE"), "clauses/0/verdict"),
        (lambda c: c["clause_registry"].update(sha256="xyz"), "clause_registry/sha256"),
        (lambda c: c["target"].update(api_key="sk-x"), "target"),
    ]:
        bad = copy.deepcopy(cert)
        mutate(bad)
        errors = _errors(validator, bad)
        assert errors and errors[0].startswith(where), errors


def test_the_client_block_names_the_own_tests_scenario_only_with_a_test_command(validator):
    registry = V.ClauseRegistry.load(V.default_clauses_path()).side(V.CLIENT)
    cert = build_certificate(registry=registry, records=[_record("c::own", "CLIENT-EVICTION-RECOVERY", V.PASS)],
                             profile="openai",
                             fingerprint={"ws_host": "h", "ws_path": "/v1/responses", "profile": "openai",
                                          "profile_source": "built-in:openai", "profile_sha256": "0" * 64,
                                          "model": "m", "embedded": True, "auth_header": "Authorization",
                                          "capabilities": []},
                             started=0.0, finished=1.0, strict=False, run_id="20260101-000000-abcdef",
                             spec_profiles=("P-legacy",))
    cert["client"] = {"test_command": "npm test", "test_scenario": "eviction"}
    assert _errors(validator, cert) == []
    for client, where in [({"test_scenario": "eviction"}, "client"), ({"command": "c", "test_scenario": "eviction"},
                                                                         "client"),
                          ({"test_command": "t", "test_scenario": "Eviction!"}, "client/test_scenario")]:
        bad = copy.deepcopy(cert)
        bad["client"] = client
        errors = _errors(validator, bad)
        assert errors and errors[0].startswith(where), errors


def test_certified_when_every_claimed_must_clause_passes():
    registry = V.ClauseRegistry([V.Clause("A-ONE", "MUST", "r", "§4.1"), V.Clause("A-TWO", "MUST", "r", "§4.1",
                                                                           requires=("lanes",)),
                                 V.Clause("A-THREE", "SHOULD", "r", "§4.1")])
    fp = {"capabilities": []}
    cert = build_certificate(registry=registry, records=[_record("c::a", "A-ONE", V.PASS)], profile="p",
                             fingerprint=fp, started=0.0, finished=1.0, strict=False, run_id="r")
    assert cert["overall"] == "PASS" and cert["certification"] == {
        "certified": True, "reasons": [], "must_claimed": 1, "must_pass": 1}
    fp = {"capabilities": ["lanes"]}            # now A-TWO is claimed, and no case checked it
    cert = build_certificate(registry=registry, records=[_record("c::a", "A-ONE", V.PASS)], profile="p",
                             fingerprint=fp, started=0.0, finished=1.0, strict=False, run_id="r")
    assert cert["overall"] == "PASS" and cert["certification"]["certified"] is False
    assert cert["certification"]["reasons"] == ["1 claimed MUST clause(s) UNTESTED: A-TWO"]


def test_badge_counts_claimed_must_clauses():
    cert = {"overall": "PASS", "clauses": [
        {"level": "MUST", "verdict": "PASS", "claimed": True}, {"level": "MUST", "verdict": "NOT-REACHED", "claimed": True},
        {"level": "MUST", "verdict": "UNSUPPORTED", "claimed": False},
        {"level": "MUST", "verdict": "RETIRED", "claimed": False}, {"level": "SHOULD", "verdict": "PASS", "claimed": True}]}
    assert must_counts(cert) == (1, 2)
    svg = render_badge(cert)
    # overall PASS but a claimed MUST clause NOT-REACHED: not certified, and the badge says so
    assert "not certified · MUST 1/2" in svg and ET.fromstring(svg) is not None
    narrow = render_badge(dict(cert, overall="NOT-USABLE"))
    assert int(ET.fromstring(narrow).get("width")) < int(ET.fromstring(svg).get("width"))


# --- what pins the run: suite release and commit, command line, options (issue 15 item 9) -------

def test_the_certificate_records_the_command_line_and_the_options_that_shape_verdicts(pytester, validator):
    baseline = pytester.path / "known.toml"
    baseline.write_text('[[known]]\nclause = "SEQ-FROM-ZERO-BY-ONE"\nreason = "ticket 1"\n')
    rep = _run(pytester, f"--api-key={KEY}", "--retries", "2", "--turn-timeout", "7", "--max-requests", "500",
               f"--baseline={baseline}", "--strict-conformance")
    text = (rep / "certificate.json").read_text()
    cert = json.loads(text)
    assert _errors(validator, cert) == []
    assert KEY not in text and KEY[:12] not in text
    run = cert["run"]
    assert run["command"].startswith("pytest ") and f"'--api-key={REDACTED}'" in run["command"]
    assert "--retries 2 --turn-timeout 7 --max-requests 500" in run["command"]
    opts = run["options"]
    assert (opts["retries"], opts["turn_timeout_s"], opts["turn_cap_s"], opts["max_requests"]) == (2, 7.0, 35.0, 500)
    assert (opts["strict"], opts["run_slow"], opts["run_timeout_s"], opts["clauses"]) == (True, False, None, [])
    import hashlib
    assert opts["baseline"] == {"file": "known.toml", "sha256": hashlib.sha256(baseline.read_bytes()).hexdigest()}
    assert opts["profile"] == {"name": cert["target"]["profile"], "source": cert["target"]["profile_source"],
                               "sha256": cert["target"]["profile_sha256"]}
    assert cert["suite_version"] == conformance.__version__


def test_the_key_is_redacted_from_the_command_line_in_every_form():
    args = ["--target", f"wss://h.example/v1/responses?key={KEY}", "--api-key", KEY, f"--api-key={KEY}",
            "--api-key", "short", "-n", "2"]
    line = release.command_line(args, lambda t: redact(t, KEY))
    assert KEY not in line and "short" not in line
    assert line == (f"pytest --target 'wss://h.example/v1/responses?key={REDACTED}' --api-key '{REDACTED}' "
                    f"'--api-key={REDACTED}' --api-key '{REDACTED}' -n 2")


def test_the_commit_is_recorded_from_a_checkout_and_absent_without_one(validator, tmp_path, monkeypatch):
    release.suite_git.cache_clear()
    try:
        git = release.suite_git()
        if (ROOT / ".git").exists() and git is not None:
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
            assert git["commit"] == head and isinstance(git["dirty"], bool)
        assert release.suite_git(tmp_path) is None                 # not a checkout
        release.suite_git.cache_clear()
        monkeypatch.setenv("PATH", str(tmp_path))                   # no git at all: absent, no crash
        assert release.suite_git() is None
        cert = build_certificate(registry=V.ClauseRegistry.load(V.default_clauses_path()), records=[],
                                 profile="openai", fingerprint=_FINGERPRINT, started=0.0, finished=1.0,
                                 strict=False, run_id="20260101-000000-abcdef")
        assert "suite_git" not in cert and _errors(validator, cert) == []
    finally:
        release.suite_git.cache_clear()


def test_the_version_is_the_changelogs_latest_release_and_the_packages():
    import tomllib
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert releases and releases[0] == conformance.__version__, releases[:3]
    assert release.suite_version() == conformance.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "conformance.__version__"}


def test_a_client_certificate_records_the_claims_and_claims_their_clauses(validator):
    """--client-claims: the ``client`` block lists the claims, and a claim's capability in the
    fingerprint makes its clauses ``claimed``; a claim the schema does not know is refused."""
    registry = V.ClauseRegistry.load(V.default_clauses_path()).side(V.CLIENT)
    records = [_record("cases/client/test_scenarios.py::test_client_scenario[lanes]", "CLIENT-LANE-NAMES", V.PASS)]
    cert = build_certificate(registry=registry, records=records, profile="openai",
                             fingerprint=_FINGERPRINT | {"capabilities": ["client_lanes"]}, started=0.0, finished=1.0,
                             strict=False, run_id="20260101-000000-abcdef", mode="client",
                             extra={"client": {"command": "python c.py", "claims": ["lanes"]}})
    assert _errors(validator, cert) == []
    rows = {r["id"]: r for r in cert["clauses"]}
    assert rows["CLIENT-LANE-NAMES"]["claimed"] and rows["CLIENT-LANE-NAMES"]["verdict"] == V.PASS
    assert not rows["CLIENT-STEERS-ACTIVE-RESPONSE"]["claimed"]
    bad = copy.deepcopy(cert)
    bad["client"]["claims"] = ["teleport"]
    errors = _errors(validator, bad)
    assert errors and errors[0].startswith("client/claims/0"), errors
