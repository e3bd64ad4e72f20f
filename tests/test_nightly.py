"""The nightly job (scripts/nightly.sh, .github/workflows/nightly.yml): run end to end against
the reference server twice — clean, then with a defect — and the regression is caught; with
nothing listening after a clean night it is red; the exit-code table of conformance.nightly,
row by row; the workflow parses, calls the script with the key from a secret, explains every
exit code, and every option passed exists."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from websockets.sync.server import serve as ws_serve

from _standalone import KEY, ROOT, standalone_server
from conformance.server import ServerThread

SCRIPT = ROOT / "scripts" / "nightly.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def _nightly(env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OPENAI_"))}
    base.update(PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=base, capture_output=True, text=True, timeout=timeout)


COMMON = {"OPENAI_API_KEY": KEY, "PYTEST_ARGS": "-p no:xdist --clause CACHE-MISS-STORE-FALSE --clause TURN-TEXT",
          "MAX_REQUESTS": "40"}


@pytest.fixture(scope="module")
def clean_night(tmp_path_factory) -> Path:
    """The report directory of a clean first night against a standalone reference server."""
    night = tmp_path_factory.mktemp("nights") / "night1"
    with standalone_server() as url:
        first = _nightly({**COMMON, "TARGET": url, "REPORT_DIR": str(night)})
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert KEY not in first.stdout + first.stderr
    assert "nightly: GREEN (exit 0): conformant (overall PASS); no PREVIOUS" in first.stdout
    return night


@pytest.mark.timeout(400)
def test_clean_then_defect_regression_is_caught(clean_night: Path, tmp_path: Path):
    summary1 = (clean_night / "summary.md").read_text()
    assert summary1.startswith("# Nightly conformance: PASS") and "No previous certificate" in summary1
    assert "**Night: GREEN (exit 0)**" in summary1
    with standalone_server("renamed-not-found-code") as url:
        second = _nightly({**COMMON, "TARGET": url, "REPORT_DIR": str(tmp_path / "night2"),
                           "PREVIOUS": str(clean_night / "certificate.json")})
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-2000:]
    assert "nightly: RED (exit 1): worse than PREVIOUS" in second.stdout
    summary2 = (tmp_path / "night2" / "summary.md").read_text()
    diff = (tmp_path / "night2" / "diff.md").read_text()
    assert diff in summary2
    assert "- clause CACHE-MISS-STORE-FALSE (MUST): PASS → FAIL" in diff
    assert "- new unknown error code response_not_found" in diff
    assert KEY not in second.stdout + second.stderr
    assert not any(KEY in p.read_text(errors="replace") for p in (tmp_path / "night2").rglob("*") if p.is_file())


@contextmanager
def _unusable(kind: str):
    """A target the suite cannot test (issue 15 "Done when"); yields (ws URL, key)."""
    if kind == "nothing listening":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()                        # nothing listens there now
        yield f"ws://127.0.0.1:{port}/v1/responses", KEY
    elif kind in ("wrong key", "wrong path"):
        srv = ServerThread(api_keys=(KEY,)).start()
        try:
            if kind == "wrong key":
                yield srv.ws_url, "sk-selftest-wrong-key-0000"
            else:
                yield srv.ws_url.replace("/v1/responses", "/v2/nothing-here"), KEY
        finally:
            srv.stop()
    elif kind == "plain HTTP server":
        class Plain(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = b"<html>hello</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_POST = do_GET

            def log_message(self, *args):
                pass
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        try:
            yield f"ws://127.0.0.1:{httpd.server_address[1]}/v1/responses", KEY
        finally:
            httpd.shutdown()
            httpd.server_close()
    else:                                # closes right after the upgrade with 1008
        def handler(ws):
            ws.close(1008, "policy violation")
        with ws_serve(handler, "127.0.0.1", 0) as server:
            t = threading.Thread(target=server.serve_forever, daemon=True)
            t.start()
            try:
                yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/v1/responses", KEY
            finally:
                server.shutdown()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["nothing listening", "wrong key", "wrong path", "plain HTTP server",
                                  "closes with 1008"])
def test_an_unusable_target_after_a_clean_night_is_red(clean_night: Path, tmp_path: Path, kind: str):
    """Issue 15 item 1: with nothing listening (or a wrong key…) and a clean PREVIOUS the night
    was green ("Regressions: None", exit 0). It is red with one line whatever PREVIOUS says:
    exit 6 (not usable: the suite's preflight, or no clause checked) or 7 (cases ERROR)."""
    with _unusable(kind) as (url, key):
        out = _nightly({**COMMON, "OPENAI_API_KEY": key, "TARGET": url, "REPORT_DIR": str(tmp_path / "night"),
                        "PREVIOUS": str(clean_night / "certificate.json")}, timeout=100)
    # before the suite's preflight, a server closing with 1008 FAILs the cases (exit 1, red,
    # "worse than PREVIOUS"); with it, every kind is exit 6
    allowed = (1, 6, 7) if kind == "closes with 1008" else (6, 7)
    assert out.returncode in allowed, out.stdout[-3000:] + out.stderr[-2000:]
    verdict = [ln for ln in out.stdout.splitlines() if ln.startswith("nightly: ")]
    assert len(verdict) == 1 and verdict[0].startswith(f"nightly: RED (exit {out.returncode}): "), verdict
    summary = (tmp_path / "night" / "summary.md").read_text()
    assert f"**Night: RED (exit {out.returncode})**" in summary
    assert "## Regressions\n\nNone." not in summary and "GREEN" not in summary
    assert (tmp_path / "night" / "verdict.txt").read_text().startswith(f"exit {out.returncode}: ")
    assert key not in out.stdout + out.stderr


def test_a_bad_option_is_a_usage_error_in_one_line(tmp_path: Path):
    out = _nightly({**COMMON, "TARGET": "ftp://nowhere.example/v1", "REPORT_DIR": str(tmp_path / "night")},
                   timeout=60)
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]
    assert "nightly: RED (exit 4): usage error (suite exit 4): --target 'ftp://nowhere.example/v1': expected" \
        in out.stdout


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
    step = next(s for s in _steps() if "scripts/nightly.sh" in s.get("run", ""))
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
    diff_opts = _options([sys.executable, "-m", "conformance.nightly", "--help"])
    assert {"--target", "--retries", "--max-requests", "--baseline", "--run-timeout"} <= pytest_opts
    passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", script))
    diff_line = "\n".join(ln for ln in script.splitlines() if "-m conformance.nightly" in ln or "prev=(" in ln)
    diff_passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", diff_line))
    assert diff_passed <= diff_opts, diff_passed - diff_opts
    missing = passed - diff_passed - pytest_opts
    assert not missing, f"scripts/nightly.sh passes options pytest does not know: {sorted(missing)}"
    # the workflow's own commands: only gh and pip options, none of the suite's
    assert not set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", runs)) & (pytest_opts - {"--help", "--version"})


def test_workflow_explains_every_exit_code_of_the_script():
    step = next(s for s in _steps() if "Say why" in s.get("name", ""))
    assert step["if"] == "failure()" and "steps.night.outputs.status" in step["run"]
    run = next(s for s in _steps() if "scripts/nightly.sh" in s.get("run", ""))
    assert run["id"] == "night" and 'echo "status=$status" >> "$GITHUB_OUTPUT"' in run["run"]
    codes = {int(c) for c in re.findall(r"^\s*(\d)\) what=", step["run"], re.M)}
    assert codes == {1, 2, 4, 6, 7}
    for code in (0, 1, 2, 4, 6, 7):        # and the docs list them all
        assert re.search(rf"^\| {code} +\|", (ROOT / "docs" / "nightly.md").read_text(), re.M), code
    fetch = next(s for s in _steps() if "gh run download" in s.get("run", ""))
    assert '"NOT-USABLE", "ERROR"' in fetch["run"]       # the previous night is a usable one


# --- the table of conformance.nightly, row by row ---------------------------------------------

def _cert(overall: str = "PASS", verdicts: dict | None = None, cases: dict | None = None, **extra) -> dict:
    verdicts = {"A": "PASS", "B": "PASS"} if verdicts is None else verdicts
    return {"format": "responses-ws-conformance/certificate", "overall": overall,
            "certification": {"certified": overall == "PASS", "reasons": []},
            "clauses": [{"id": k, "level": "MUST", "verdict": v} for k, v in verdicts.items()],
            "cases": [{"nodeid": k, "verdict": v} for k, v in (cases or {"c::a": "PASS"}).items()], **extra}


NOT_USABLE_CERT = _cert("NOT-USABLE", {"A": "UNTESTED", "B": "UNTESTED"}, {},
                        preflight={"message": "auth refused: HTTP 401 (check the key)"})


@pytest.mark.parametrize("suite_exit, cert, previous, status, fragment", [
    (4, None, _cert(), 4, "usage error (suite exit 4): --target bad"),
    (6, NOT_USABLE_CERT, _cert(), 6, "could not be tested (suite exit 6, NOT-USABLE): auth refused: HTTP 401"),
    (6, None, None, 6, "could not be tested (suite exit 6, NOT-USABLE): see pytest.log"),
    (0, NOT_USABLE_CERT, None, 6, "NOT-USABLE"),                       # the certificate is believed too
    (1, _cert("ERROR", {"A": "NOT-REACHED", "B": "UNTESTED"}, {"c::a": "ERROR"}), _cert(), 6, "checked no clause"),
    (7, _cert("ERROR", {"A": "PASS", "B": "NOT-REACHED"}, {"c::a": "ERROR"}), _cert(), 7, "1 case(s) could not be judged"),
    (1, _cert("ERROR", {"A": "PASS", "B": "NOT-REACHED"}, {"c::a": "ERROR"}), None, 7, "incomplete (suite exit 1"),
    (5, _cert(), _cert(), 2, "exit 5 (no tests collected)"),
    (3, None, None, 2, "exit 3 (internal error)"),
    (0, None, None, 2, "wrote no certificate"),
    (0, _cert(), "unreadable", 2, "PREVIOUS is unusable"),
    (0, _cert(), None, 0, "conformant (overall PASS); no PREVIOUS"),
    (1, _cert("FAIL", {"A": "PASS", "B": "FAIL"}), None, 1, "nonconformant (suite exit 1, overall FAIL)"),
    (1, _cert("FAIL", {"A": "PASS", "B": "FAIL"}), _cert("FAIL", {"A": "PASS", "B": "FAIL"}), 0,
     "no worse than PREVIOUS (still nonconformant"),
    (1, _cert("FAIL", {"A": "PASS", "B": "FAIL"}), _cert(), 1, "clause B (MUST): PASS → FAIL"),
    (0, _cert("PASS", {"A": "PASS", "B": "UNTESTED"}), _cert(), 1, "1 no longer checked: B (PASS → UNTESTED)"),
    (0, _cert(), _cert(), 0, "conformant (overall PASS) and no worse than PREVIOUS"),
])
def test_the_night_table(suite_exit, cert, previous, status, fragment):
    from conformance import nightly as N
    err = "old.json: not JSON" if previous == "unreadable" else ""
    night = N.decide(suite_exit, cert, None if err else previous, previous_error=err,
                     log="collected 0 items\nERROR: --target bad\n")
    assert (night.status, fragment in night.reason) == (status, True), night
    text = N.summary(cert, night, None if err else previous)
    assert f"**Night: {'GREEN' if status == 0 else 'RED'} (exit {status})**" in text
