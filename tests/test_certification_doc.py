"""docs/certification.md followed literally (issue 15, "Done when"): the page's marked command
blocks (``<!-- certification-selftest: NAME -->`` before a fenced block) are run as written
against a standalone reference server with a model-like latency and a short lifetime; only
the port (an ephemeral one) and the report directory (a temporary one) are substituted, and
``python``/``pytest`` are this interpreter. The clean server is certified; the same server
with one MUST defect is not, and the reasons name its clause. Both runs go at once (about a
minute, mostly the lifetime case idling)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "certification.md"
SCHEMA = ROOT / "schemas" / "certificate.json"
BLOCK = re.compile(r"<!-- certification-selftest: (\w+) -->\s*\n```sh\n(.*?)\n```", re.S)
DOC_PORT = "8765"
DOC_REPORT = "reports/rehearsal"
# a MUST defect whose clause only the in-flight mechanics can reach on a target without test
# controls (the busy create is rejected instead of queued)
DEFECT, DEFECT_CLAUSE = "reject-when-busy", "QUEUE-FIFO"
# what the rehearsal must have checked, not just passed: the clauses the path used to miss
CHECKED = ("LIFETIME-LIMIT-ERROR", "LIFETIME-NO-TURN-AFTER-LIMIT", "QUEUE-FIFO", "LANE-FIFO", "LANE-CONCURRENT")
RUN_TIMEOUT_S = 300
START_TIMEOUT_S = 20
# the doc's commands name `python` and `pytest`: bind both to this interpreter
PRELUDE = 'python() { "$CERT_PY" "$@"; }\npytest() { "$CERT_PY" -m pytest "$@"; }\nset -e\n'


def _blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        assert name not in found, f"two blocks marked {name!r} in {DOC.name}"
        found[name] = body
    return found


def _one_line(block: str) -> str:
    """A shell block's lines with continuations joined and comments dropped."""
    return block.replace("\\\n", " ")


def _options(command: str) -> list[str]:
    """The pytest command's words without the values a user substitutes (target, profile, report)."""
    words = shlex.split(_one_line(command).split("\n")[-1], comments=True)
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        name = w.split("=", 1)[0]
        if name in ("--target", "--target-config", "--report-dir"):
            skip = "=" not in w
            out.append(name)
            continue
        out.append(w)
    return out


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "OPENAI_API_KEY"}
    env["CERT_PY"] = sys.executable
    return env


def _start_server(block: str, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    argv = shlex.split(_one_line(block))
    assert argv[:3] == ["python", "-m", "conformance.server"], argv
    assert argv[argv.index("--port") + 1] == DOC_PORT, "the doc's server command names the port the run uses"
    argv[argv.index("--port") + 1] = "0"
    argv[0] = sys.executable
    out = log.open("w")
    proc = subprocess.Popen([*argv, *extra], cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"listening on ws://([\d.]+:\d+)/", log.read_text())
        if m:
            return proc, m.group(1)
        time.sleep(0.1)
    _stop(proc)
    raise AssertionError(f"the doc's server did not start: {log.read_text()[-1000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _shell(block: str, hostport: str, report: Path) -> subprocess.CompletedProcess:
    script = block.replace(f"127.0.0.1:{DOC_PORT}", hostport).replace(DOC_REPORT, str(report))
    return subprocess.run(["bash", "-c", PRELUDE + script], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)


def _follow(blocks: dict[str, str], tmp: Path, *server_extra: str) -> dict:
    """Start the doc's server, run the doc's run and check blocks: what came out."""
    tmp.mkdir()
    report = tmp / "report"     # does not exist yet: the run creates it
    proc, hostport = _start_server(blocks["server"], tmp / "server.log", *server_extra)
    try:
        t0 = time.monotonic()
        run = _shell(blocks["run"], hostport, report)
        took = time.monotonic() - t0
        check = _shell(blocks["check"], hostport, report)
    finally:
        _stop(proc)
    cert_path = report / "certificate.json"
    text = cert_path.read_text() if cert_path.exists() else None
    return {"run": run, "check": check, "cert": json.loads(text) if text else None, "text": text or "",
            "seconds": took}


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    found = _blocks()
    assert set(found) >= {"command", "server", "run", "check"}, f"marked blocks in {DOC.name}: {sorted(found)}"
    return found


@pytest.fixture(scope="module")
def followed(blocks, tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("certification-doc")
    with ThreadPoolExecutor(max_workers=2) as pool:
        clean = pool.submit(_follow, blocks, root / "clean")
        broken = pool.submit(_follow, blocks, root / "defect", "--defect", DEFECT)
        return {"clean": clean.result(), "defect": broken.result()}


def _valid_and_keyless(result: dict, blocks: dict[str, str]) -> None:
    """The certificate validates, records the doc's run, and holds no trace of the doc's key."""
    cert = result["cert"]
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert [e.message for e in validator.iter_errors(cert)] == []
    key = re.search(r"OPENAI_API_KEY=(\S+)", blocks["run"]).group(1)
    assert key not in result["text"]
    assert cert["run"]["options"]["run_slow"] is True and "-n 2 --run-slow" in cert["run"]["command"]


def _diagnosis(result: dict) -> str:
    return (f"run exit {result['run'].returncode} after {result['seconds']:.0f}s\n"
            f"{result['run'].stdout[-3000:]}\n{result['run'].stderr[-1500:]}\ncheck: {result['check'].stdout}")


def test_the_rehearsal_runs_the_certification_command(blocks):
    # the rehearsal is step 2's command with other values, not a command of its own
    assert _options(blocks["run"]) == _options(blocks["command"])
    assert "--run-slow" in _options(blocks["command"]) and "-n" in _options(blocks["command"])


@pytest.mark.heavy      # the documented commands, whole suite runs with --run-slow (CI: make selftest-heavy)
@pytest.mark.timeout(600)
def test_the_documented_path_certifies_a_conformant_server(followed, blocks):
    result = followed["clean"]
    cert = result["cert"]
    assert cert is not None, _diagnosis(result)
    _valid_and_keyless(result, blocks)
    assert cert["certification"]["certified"] is True, cert["certification"]["reasons"]
    assert result["run"].returncode == 0, _diagnosis(result)
    verdicts = {r["id"]: r["verdict"] for r in cert["clauses"]}
    assert {c: verdicts.get(c) for c in CHECKED} == {c: "PASS" for c in CHECKED}
    assert "certified: True" in result["check"].stdout, result["check"].stdout + result["check"].stderr


@pytest.mark.heavy      # the documented commands, whole suite runs with --run-slow (CI: make selftest-heavy)
@pytest.mark.timeout(600)
def test_the_documented_path_does_not_certify_a_defect(followed, blocks):
    result = followed["defect"]
    cert = result["cert"]
    assert cert is not None, _diagnosis(result)
    _valid_and_keyless(result, blocks)
    assert cert["certification"]["certified"] is False
    reasons = cert["certification"]["reasons"]
    assert any(DEFECT_CLAUSE in r and "FAIL" in r for r in reasons), reasons
    assert {r["id"]: r["verdict"] for r in cert["clauses"]}[DEFECT_CLAUSE] == "FAIL"
    assert result["run"].returncode == 1, _diagnosis(result)
    out = result["check"].stdout
    assert "certified: False" in out and DEFECT_CLAUSE in out, out + result["check"].stderr


def test_the_example_profile_loads(tmp_path):
    from conformance.target import load_profile
    text = re.search(r"```toml\n(# acme\.toml\n.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    (tmp_path / "acme.toml").write_text(text, encoding="utf-8")
    profile = load_profile(tmp_path / "acme.toml")
    assert profile.name == "acme" and profile.get("connection.lifetime_seconds") == 1800
