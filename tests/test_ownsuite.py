"""A client's own tests run unchanged (``--client-test-command``, docs/clients.md "A client's
own tests"): tests/clients/own_tests.py (the official SDK) passes the seven any-traffic client
clauses and leaves the others UNTESTED; each broken variant fails its clause only; tests that
fail against the reference server end the case ERROR (exit 7); the key is in no report file.
Under ``--client-test-scenario`` tests that survive the scenario pass its clause, tests that
break under it fail it, and a failure the scenario cannot explain ends ERROR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conformance import verdicts
from conformance.clientmode.anytraffic import ANY_TRAFFIC
from conformance.clientmode import scenarios
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
OWN = "python tests/clients/own_tests.py"
RUN_DEADLINE_S = 120


def _run(report: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--report-dir", str(report), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=RUN_DEADLINE_S)
    cert_path = report / "certificate.json"
    assert cert_path.exists(), f"exit {proc.returncode}, no certificate\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    for path in report.rglob("*"):
        if path.is_file():
            assert "sk-conformance-client-" not in path.read_text(errors="replace"), f"key in {path}"
    return proc, json.loads(cert_path.read_text())


def _rows(cert: dict) -> dict:
    return {r["id"]: r["verdict"] for r in cert["clauses"]}


def test_own_sdk_tests_pass_what_any_traffic_shows(tmp_path):
    proc, cert = _run(tmp_path, "--client-test-command", OWN)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = _rows(cert)
    assert {cid for cid, verdict in rows.items() if verdict == verdicts.PASS} == set(ANY_TRAFFIC)
    assert {cid for cid, verdict in rows.items() if verdict != verdicts.PASS} \
        == set(scenarios.client_clauses()) - set(ANY_TRAFFIC)
    assert set(rows.values()) == {verdicts.PASS, verdicts.UNTESTED}       # a clause needing a scenario never reads PASS
    assert [c["nodeid"] for c in cert["cases"]] == ["cases/client/test_own_tests.py::test_own_tests"]
    assert cert["mode"] == "client" and cert["client"] == {"test_command": OWN}
    assert cert["certification"]["certified"] is False


@pytest.mark.parametrize("variant, clause, verdict, code", [
    ("full-history", scenarios.NEW_INPUT_ONLY, verdicts.NON_STRICT, 0),
    ("key-in-url", scenarios.KEY_IN_HEADER, verdicts.FAIL, 1),
])
def test_a_broken_variant_fails_its_clause_only(variant, clause, verdict, code, tmp_path):
    proc, cert = _run(tmp_path, "--client-test-command", f"{OWN} {variant}")
    rows = _rows(cert)
    assert rows[clause] == verdict, rows
    assert {cid for cid, v in rows.items() if v in (verdicts.FAIL, verdicts.NON_STRICT)} == {clause}
    assert proc.returncode == code, proc.stdout[-2000:]


def test_tests_that_fail_on_a_conformant_server_cannot_vouch(tmp_path):
    proc, cert = _run(tmp_path, "--client-test-command", f"{OWN} failing")
    assert proc.returncode == 7, proc.stdout[-2000:]
    assert cert["overall"] == verdicts.ERROR
    (case,) = cert["cases"]
    assert case["verdict"] == verdicts.ERROR and any("exited 1" in m for m in case["messages"]), case["messages"]
    assert verdicts.PASS not in set(_rows(cert).values())
    transcript = (tmp_path / case["transcript"]).read_text()
    assert "FAILED test_one_answer" in transcript       # the tests' own output is the evidence


def test_a_hung_test_command_ends_at_the_deadline(tmp_path):
    proc, cert = _run(tmp_path, "--client-test-command", "python -c 'import time; time.sleep(60)'",
                      "--client-deadline", "1")
    assert proc.returncode == 7
    assert "deadline" in " ".join(cert["cases"][0]["messages"])


def test_scenarios_and_own_tests_in_one_run(tmp_path):
    proc, cert = _run(tmp_path, "--client-command", "python tests/clients/broken.py correct",
                      "--client-test-command", OWN, "-k", "tool-loop or own_tests")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(cert["cases"]) == 2 and set(cert["client"]) == {"command", "claims", "test_command"}


# --- --client-test-scenario: the reference server plays a scenario while the tests run -----------

def test_own_tests_that_survive_the_scenario_pass_its_clause(tmp_path):
    proc, cert = _run(tmp_path, "--client-test-command", f"{OWN} recovers", "--client-test-scenario", "eviction")
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = _rows(cert)
    assert {cid for cid, verdict in rows.items() if verdict == verdicts.PASS} == set(ANY_TRAFFIC) | {scenarios.EVICTION}
    assert set(rows.values()) == {verdicts.PASS, verdicts.UNTESTED}
    assert cert["client"] == {"test_command": f"{OWN} recovers", "test_scenario": "eviction"}
    schema = json.loads((ROOT / "schemas" / "certificate.json").read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(cert))
    (case,) = cert["cases"]
    assert case["nodeid"] == "cases/client/test_own_tests.py::test_own_tests"
    assert scenarios.EVICTION in case["clauses"]


@pytest.mark.parametrize("scenario, clauses", [
    ("eviction", {scenarios.EVICTION}),
    ("lifetime", {scenarios.RECONNECTS, scenarios.NO_LOST_REQUEST}),
])
def test_own_tests_that_break_under_the_scenario_fail_its_clause(scenario, clauses, tmp_path):
    """``ok`` continues its tool call on the evicted chain (or the closed socket) and its test
    fails: the scenario's clause FAILs (the case FAILs, not ERROR: the scenario explains it)."""
    proc, cert = _run(tmp_path, "--client-test-command", OWN, "--client-test-scenario", scenario)
    assert proc.returncode == 1, proc.stdout[-3000:]
    rows = _rows(cert)
    assert {cid for cid, verdict in rows.items() if verdict == verdicts.FAIL} == clauses, rows
    (case,) = cert["cases"]
    assert case["verdict"] == verdicts.FAIL and "exit 1" in " ".join(case["messages"]), case["messages"]
    assert cert["client"]["test_scenario"] == scenario
    transcript = (tmp_path / case["transcript"]).read_text()
    # the tests ran twice: first with the server behaving normally (they passed), then the scenario
    assert transcript.index("# scenario own-tests") < transcript.index(f"# scenario {scenario}")
    assert "3 passed, 0 failed" in transcript and "2 passed, 1 failed" in transcript


def test_tests_that_fail_anyway_show_nothing_about_the_scenario(tmp_path):
    """``failing`` fails with the server behaving normally: the scenario is not played (its
    clause would blame it for an unrelated failure); the case cannot vouch (ERROR, exit 7)."""
    proc, cert = _run(tmp_path, "--client-test-command", f"{OWN} failing", "--client-test-scenario",
                      "unknown-events")
    assert proc.returncode == 7, proc.stdout[-3000:]
    (case,) = cert["cases"]
    assert case["verdict"] == verdicts.ERROR
    assert any("behaving normally" in m for m in case["messages"]), case["messages"]
    assert _rows(cert)[scenarios.UNKNOWN_EVENTS] == verdicts.ERROR        # marked, never judged
    assert "# scenario unknown-events" not in (tmp_path / case["transcript"]).read_text()


def test_a_failure_under_the_scenario_its_clauses_do_not_judge_cannot_vouch(tmp_path):
    """``ok`` sends store=true, so store-false-reconnect's clause has nothing to judge, yet the
    idle close breaks its continuation: ERROR (exit 7), not a FAIL of that clause."""
    proc, cert = _run(tmp_path, "--client-test-command", OWN, "--client-test-scenario", "store-false-reconnect")
    assert proc.returncode == 7, proc.stdout[-3000:]
    (case,) = cert["cases"]
    assert case["verdict"] == verdicts.ERROR
    assert any("playing scenario store-false-reconnect (they passed with the server behaving normally)" in m
               for m in case["messages"]), case["messages"]
    assert verdicts.FAIL not in _rows(cert).values()


def test_the_test_command_and_scenario_from_the_config_file(tmp_path):
    config = tmp_path / "client.toml"
    config.write_text(f'name = "mine"\nextends = "openai"\n[client]\ntest_command = "{OWN} recovers"\n'
                      'test_scenario = "eviction"\n')
    proc, cert = _run(tmp_path / "report", "--target-config", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert cert["client"] == {"test_command": f"{OWN} recovers", "test_scenario": "eviction"}
    assert _rows(cert)[scenarios.EVICTION] == verdicts.PASS


def test_clause_selects_the_own_tests_by_the_scenarios_clause(tmp_path):
    """The scenario's clauses join the case's clause mark before the run (conformance.clienthooks),
    so --clause selects the case by them."""
    proc, cert = _run(tmp_path, "--client-test-command", f"{OWN} recovers", "--client-test-scenario", "eviction",
                      "--clause", scenarios.EVICTION)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [c["nodeid"] for c in cert["cases"]] == ["cases/client/test_own_tests.py::test_own_tests"]
    assert _rows(cert)[scenarios.EVICTION] == verdicts.PASS
