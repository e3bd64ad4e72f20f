"""The nightly job (scripts/nightly.sh, .github/workflows/nightly.yml): run end to end against
the reference server twice — clean, then with a defect — and the regression is caught; the
workflow parses, calls the script with the key from a secret, and every option passed exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _standalone import KEY, ROOT, standalone_server

SCRIPT = ROOT / "scripts" / "nightly.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def _nightly(env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OPENAI_"))}
    base.update(PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=base, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(400)
def test_clean_then_defect_regression_is_caught(tmp_path: Path):
    common = {"OPENAI_API_KEY": KEY, "PYTEST_ARGS": "-p no:xdist --clause CACHE-MISS-STORE-FALSE --clause TURN-TEXT",
              "MAX_REQUESTS": "40"}
    with standalone_server() as url:
        first = _nightly({**common, "TARGET": url, "REPORT_DIR": str(tmp_path / "night1")})
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    summary1 = (tmp_path / "night1" / "summary.md").read_text()
    assert summary1.startswith("# Nightly conformance: PASS") and "No previous certificate" in summary1
    with standalone_server("renamed-not-found-code") as url:
        second = _nightly({**common, "TARGET": url, "REPORT_DIR": str(tmp_path / "night2"),
                           "PREVIOUS": str(tmp_path / "night1" / "certificate.json")})
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-2000:]
    summary2 = (tmp_path / "night2" / "summary.md").read_text()
    diff = (tmp_path / "night2" / "diff.md").read_text()
    assert diff in summary2
    assert "- clause CACHE-MISS-STORE-FALSE (MUST): PASS → FAIL" in diff
    assert "- new unknown error code response_not_found" in diff
    for out in (first, second):
        assert KEY not in out.stdout + out.stderr
    assert not any(KEY in p.read_text(errors="replace") for p in (tmp_path / "night2").rglob("*") if p.is_file())


def test_missing_target_or_key_is_a_clear_error(tmp_path: Path):
    no_target = _nightly({"OPENAI_API_KEY": KEY, "REPORT_DIR": str(tmp_path / "r")})
    assert no_target.returncode == 2 and "set TARGET" in no_target.stderr
    no_key = _nightly({"TARGET": "ws://127.0.0.1:9/v1/responses", "REPORT_DIR": str(tmp_path / "r")})
    assert no_key.returncode == 2 and "no key" in no_key.stderr


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.get("on", data.get(True))        # YAML 1.1 reads the key `on` as true
    return data


def _steps() -> list[dict]:
    return _workflow()["jobs"]["nightly"]["steps"]


def test_workflow_runs_the_script_nightly_with_the_key_from_a_secret():
    wf = _workflow()
    assert wf["on"]["schedule"][0]["cron"] and "workflow_dispatch" in wf["on"]
    step = next(s for s in _steps() if s.get("run", "").strip() == "scripts/nightly.sh")
    env = step["env"]
    assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", env["OPENAI_API_KEY"])
    script = SCRIPT.read_text()
    unread = [name for name in env if f"${{{name}" not in script]
    assert not unread, f"the workflow sets variables scripts/nightly.sh never reads: {unread}"
    upload = next(s for s in _steps() if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == env["REPORT_DIR"]
    fetch = next(s for s in _steps() if "gh run download" in s.get("run", ""))
    assert f"--name {upload['with']['name']}" in fetch["run"] and env["PREVIOUS"].startswith("previous/")
    summary = next(s for s in _steps() if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert summary["if"] == "always()" and f"{env['REPORT_DIR']}/summary.md" in summary["run"]


def _options(cmd: list[str]) -> set[str]:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))


def test_every_option_passed_exists():
    script = "\n".join(ln for ln in SCRIPT.read_text().splitlines() if not ln.lstrip().startswith("#"))
    runs = "\n".join(s.get("run", "") for s in _steps())
    pytest_opts = _options([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"])
    diff_opts = _options([sys.executable, "-m", "conformance", "diff", "--help"])
    assert {"--target", "--retries", "--max-requests", "--baseline", "--run-timeout"} <= pytest_opts
    passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", script))
    diff_line = next(ln for ln in script.splitlines() if "-m conformance diff" in ln)
    diff_passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", diff_line))
    assert diff_passed <= diff_opts, diff_passed - diff_opts
    missing = passed - diff_passed - pytest_opts
    assert not missing, f"scripts/nightly.sh passes options pytest does not know: {sorted(missing)}"
    # the workflow's own commands: only gh and pip options, none of the suite's
    assert not set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", runs)) & (pytest_opts - {"--help", "--version"})
