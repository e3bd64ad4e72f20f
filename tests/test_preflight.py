"""The preflight (conformance/preflight.py) and the run's exit codes (conformance/exitcodes.py):
the rule table and the exit-code function as units, then the suite as a subprocess against
targets that cannot be tested (wrong key, nothing listening, a plain HTTP server, a wrong
path, a server that closes with 1008 right after the upgrade): each ends within 30 s, exit
code 6, one diagnosis line, a NOT-USABLE certificate with only UNTESTED clauses. A malformed
--target is a usage error (4); a clean embedded run still exits 0."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import jsonschema
import pytest
from websockets.sync.server import serve

from _standalone import KEY, ROOT, run_cases, standalone_server
from conformance import preflight as PF
from conformance.exitcodes import ExitCode, exit_code
from conformance.preflight import Context, Outcome, Problem, Step, classify

WRONG_KEY = "sk-selftest-wrong-key-9876543210"
SCHEMA = json.loads((ROOT / "schemas" / "certificate.json").read_text())


# --- the rule table (sans-I/O) -------------------------------------------------------------------

UP = Step("handshake", Outcome.UPGRADED, status=101)


@pytest.mark.parametrize("steps, problem, words", [
    ([Step("handshake", Outcome.CONNECTION_REFUSED)], Problem.NOTHING_LISTENING, "nothing listening"),
    ([Step("handshake", Outcome.DNS_FAILURE, detail="Name or service not known")], Problem.NOTHING_LISTENING,
     "host name not found"),
    ([Step("handshake", Outcome.TIMEOUT)], Problem.NOTHING_LISTENING, "within 10s"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=401)], Problem.AUTH_REFUSED, "HTTP 401"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=403)], Problem.AUTH_REFUSED, "HTTP 403"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=404)], Problem.WRONG_PATH, "path /v1/responses"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=429)], Problem.RATE_LIMITED, "HTTP 429"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=200)], Problem.NOT_WEBSOCKET, "plain HTTP answer"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=301, detail="Location: wss://x/v1/responses")],
     Problem.NOT_WEBSOCKET, "Location: wss://x"),
    ([Step("handshake", Outcome.HTTP_STATUS, status=503)], Problem.UPGRADE_REFUSED, "HTTP 503"),
    ([Step("handshake", Outcome.NOT_HTTP, detail="garbage")], Problem.NOT_WEBSOCKET, "no HTTP response"),
    ([Step("handshake", Outcome.TLS_FAILURE)], Problem.NOT_WEBSOCKET, "TLS"),
    ([UP, Step("turn", Outcome.CLOSED, close_code=1008)], Problem.CLOSED_AT_ONCE, "close code 1008"),
    ([UP, Step("listen", Outcome.CLOSED, close_code=1008)], Problem.CLOSED_AT_ONCE, "right after the upgrade"),
    ([UP, Step("turn", Outcome.ERROR_EVENT, status=401, code="invalid_api_key")], Problem.AUTH_REFUSED,
     "invalid_api_key"),
    ([UP, Step("turn", Outcome.ERROR_EVENT, code="rate_limit_exceeded")], Problem.RATE_LIMITED, "rate-limited"),
    ([UP, Step("turn", Outcome.ERROR_EVENT, status=429, code="something")], Problem.RATE_LIMITED, "rate-limited"),
    ([UP, Step("turn", Outcome.ERROR_EVENT, status=400, code="model_not_found")], Problem.MODEL_REFUSED, "gpt-x"),
])
def test_rules_name_the_problem(steps, problem, words):
    d = classify(steps, Context(url="ws://h:1/v1/responses", timeout=10, model="gpt-x"))
    assert d.problem is problem and not d.usable
    assert words in d.what + d.check
    line = d.line("ws://h:1/v1/responses")
    assert "\n" not in line and line.startswith("TARGET NOT USABLE") and "; check " in line


@pytest.mark.parametrize("steps", [
    [UP, Step("turn", Outcome.ANSWERED, frames=3)],
    [UP, Step("turn", Outcome.NO_ANSWER)],              # silence is the cases' to judge (CREATE-ANSWERED)
    [UP, Step("turn", Outcome.CLOSED, close_code=1011, frames=2)],      # closed after answering
    [UP, Step("turn", Outcome.ERROR_EVENT, status=400, code="invalid_request_error")],
    [UP, Step("listen", Outcome.QUIET)],
])
def test_a_target_that_answers_is_usable(steps):
    assert classify(steps).usable


def test_a_missing_key_is_named():
    d = classify([Step("handshake", Outcome.HTTP_STATUS, status=401)], Context(key_sent=False, auth_header="api-key"))
    assert "no key was sent" in d.check and "--auth-header api-key" in d.check


def test_the_minimal_turn_follows_the_profile():
    warm, how = PF.minimal_create("m", True, 16)
    assert warm["generate"] is False and how == "generate:false"
    tiny, how = PF.minimal_create("m", False, 0)
    assert "generate" not in tiny and tiny["max_output_tokens"] == 16 and how == "max_output_tokens=16"


# --- the exit-code function ----------------------------------------------------------------------

@pytest.mark.parametrize("verdicts, kw, code", [
    (["PASS", "PASS", "UNSUPPORTED"], {}, ExitCode.CONFORMANT),
    (["PASS", "KNOWN", "NON-STRICT", "SKIPPED", "INFO"], {}, ExitCode.CONFORMANT),
    (["PASS", "FAIL", "ERROR"], {"pytest_status": 1}, ExitCode.NONCONFORMANT),
    (["PASS", "FLAKY"], {"pytest_status": 1}, ExitCode.NONCONFORMANT),
    (["PASS"], {"stale": 1}, ExitCode.NONCONFORMANT),
    (["PASS", "NON-STRICT"], {"strict": True, "pytest_status": 1}, ExitCode.NONCONFORMANT),
    (["PASS", "ERROR"], {"pytest_status": 1}, ExitCode.INCOMPLETE),
    (["SKIPPED", "UNSUPPORTED"], {}, ExitCode.INCOMPLETE),       # nothing was tested: never green
    (["PASS"], {"pytest_status": 1}, ExitCode.NONCONFORMANT),    # a non-case test failed
    ([], {"usable": False, "pytest_status": 5}, ExitCode.NOT_USABLE),
    (["FAIL"], {"usable": False}, ExitCode.NOT_USABLE),
    ([], {"pytest_status": 0}, 0),                               # no conformance case: pytest decides
    ([], {"pytest_status": 5}, 5),
    (["FAIL"], {"pytest_status": 2}, 2),                         # interrupted stays interrupted
    (["PASS"], {"pytest_status": 3}, 3),
])
def test_exit_code(verdicts, kw, code):
    assert exit_code(verdicts, **kw) == code


def test_exit_codes_are_the_contract():
    assert {c.name: int(c) for c in ExitCode} == {"CONFORMANT": 0, "NONCONFORMANT": 1, "USAGE_ERROR": 4,
                                                  "NOT_USABLE": 6, "INCOMPLETE": 7}
    assert int(ExitCode.USAGE_ERROR) == pytest.ExitCode.USAGE_ERROR


# --- targets that cannot be tested, end to end ---------------------------------------------------

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def plain_http_server() -> Iterator[int]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html><body>a web page</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def closing_ws_server(code: int = 1008) -> Iterator[int]:
    """Upgrades, then closes at once with ``code``."""
    def handler(ws):
        ws.close(code, "policy violation")

    with serve(handler, "127.0.0.1", 0) as srv:
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            yield srv.socket.getsockname()[1]
        finally:
            srv.shutdown()


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    with standalone_server() as url:
        yield url


def _not_usable(tmp_path: Path, target: str, key: str, *extra: str):
    proc, cert, took = run_cases(["--target", target, "--api-key", key, *extra], tmp_path / "rep", timeout=60)
    out = proc.stdout + proc.stderr
    assert took < 30, f"took {took:.1f}s"
    assert proc.returncode == ExitCode.NOT_USABLE, out[-3000:]
    lines = [ln for ln in out.splitlines() if "TARGET NOT USABLE" in ln]
    assert len(lines) == 1, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert len(out.splitlines()) < 25, out
    assert cert is not None and cert["overall"] == "NOT-USABLE"
    assert {r["verdict"] for r in cert["clauses"]} <= {"UNTESTED", "RETIRED"}
    assert cert["certification"]["certified"] is False and cert["cases"] == []
    jsonschema.validate(cert, SCHEMA)
    assert cert["preflight"]["usable"] is False and cert["preflight"]["message"] in lines[0]
    assert not any(key in p.read_text(errors="replace") for p in (tmp_path / "rep").rglob("*") if p.is_file())
    assert key not in out
    return lines[0], cert["preflight"]


@pytest.mark.timeout(90)
def test_wrong_key(tmp_path, reference_url):
    line, pf = _not_usable(tmp_path, reference_url, WRONG_KEY)
    assert pf["diagnosis"] == "auth-refused" and "authentication refused at the upgrade (HTTP 401)" in line
    assert "--api-key" in line


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [["-p", "no:xdist"], ["-n", "2"]], ids=["single", "xdist"])
def test_nothing_listening(tmp_path, workers):
    line, pf = _not_usable(tmp_path, f"ws://127.0.0.1:{_closed_port()}/v1/responses", KEY, *workers)
    assert pf["diagnosis"] == "nothing-listening" and "nothing listening (connection refused)" in line


@pytest.mark.timeout(90)
def test_plain_http_server(tmp_path):
    with plain_http_server() as port:
        line, pf = _not_usable(tmp_path, f"http://127.0.0.1:{port}/v1", KEY)
    assert pf["diagnosis"] == "not-a-websocket-endpoint" and "plain HTTP answer (HTTP 200)" in line


@pytest.mark.timeout(90)
def test_wrong_path(tmp_path, reference_url):
    url = reference_url.rsplit("/v1/responses", 1)[0] + "/nope"
    line, pf = _not_usable(tmp_path, url, KEY)
    assert pf["diagnosis"] == "wrong-path" and "HTTP 404" in line and "/nope" in line


@pytest.mark.timeout(90)
@pytest.mark.parametrize("extra", [[], ["--max-requests", "0"]], ids=["turn", "listen"])
def test_closed_right_after_the_upgrade(tmp_path, extra):
    with closing_ws_server(1008) as port:
        line, pf = _not_usable(tmp_path, f"ws://127.0.0.1:{port}/v1/responses", KEY, *extra)
    assert pf["diagnosis"] == "closed-at-once" and "close code 1008" in line
    assert pf["steps"][-1]["step"] == ("listen" if extra else "turn")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target, words", [
    ("ws://127.0.0.1:abc/v1/responses", "port 'abc' is not a number"),
    ("ws://127.0.0.1:70000/v1/responses", "port '70000'"),
    ("ws://:8080/v1/responses", "no host name"),
])
def test_malformed_target_is_a_usage_error(tmp_path, target, words):
    proc, cert, took = run_cases(["--target", target], tmp_path / "rep", timeout=50)
    assert proc.returncode == ExitCode.USAGE_ERROR and cert is None
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and words in err[0] and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.timeout(120)
def test_a_usable_target_runs_and_says_so(tmp_path, reference_url):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--target", reference_url, "--api-key", KEY,
                               "--clause", "TURN-TEXT"], tmp_path / "rep", timeout=100)
    assert proc.returncode == ExitCode.CONFORMANT, proc.stdout[-3000:]
    assert cert["preflight"]["usable"] and [s["step"] for s in cert["preflight"]["steps"]] == ["handshake", "turn"]
    jsonschema.validate(cert, SCHEMA)


# --- embedded runs: 0 and 7 ----------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_clean_embedded_run_exits_0(tmp_path):
    proc, cert, _ = run_cases(["-p", "no:xdist", "--clause", "TURN-TEXT", "--clause", "CACHE-MISS-STORE-FALSE"],
                              tmp_path / "rep", timeout=100)
    assert proc.returncode == ExitCode.CONFORMANT, proc.stdout[-3000:]
    assert cert["overall"] == "PASS" and "preflight" not in cert


@pytest.mark.timeout(120)
def test_a_run_that_cannot_judge_exits_7(tmp_path):
    # the run deadline passes before the first turn: every case ERROR, no FAIL
    proc, cert, _ = run_cases(["-p", "no:xdist", "--clause", "TURN-TEXT", "--run-timeout", "0.001"],
                              tmp_path / "rep", timeout=100)
    assert cert["counts"]["cases"]["ERROR"] >= 1 and cert["counts"]["cases"]["FAIL"] == 0, proc.stdout[-2000:]
    assert proc.returncode == ExitCode.INCOMPLETE, proc.stdout[-3000:]


@pytest.mark.parametrize("rule", PF.RULES, ids=lambda r: f"{r.step}-{r.outcome.value}-{r.problem.value}")
def test_every_rule_reads_as_one_line(rule):
    for step in (Step(rule.step, rule.outcome), Step(rule.step, rule.outcome, status=599, code="c",
                                                         close_code=1008, detail="some detail")):
        what, check = PF.explain(rule, step, Context(url="wss://h/v1/responses"))
        assert "\n" not in what + check and "{" not in what + check
        assert bool(what) == bool(check) == (rule.problem is not Problem.USABLE)


def test_the_key_stays_out_of_the_steps():
    """A server that echoes the auth header in its 401 body: the step keeps only the redacted text."""
    from conformance.target import redact

    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"       # websockets reads the body of an HTTP/1.1 answer

        def do_GET(self):  # noqa: N802
            body = f"bad key {self.headers.get('Authorization')}".encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        steps = PF.probe(f"ws://127.0.0.1:{srv.server_address[1]}/v1/responses",
                         {"Authorization": f"Bearer {WRONG_KEY}"}, create=None, timeout=5,
                         redact=lambda t: redact(t, WRONG_KEY))
    finally:
        srv.shutdown()
        srv.server_close()
    d = classify(steps)
    assert d.problem is Problem.AUTH_REFUSED and "<redacted-key>" in steps[0].detail
    assert WRONG_KEY not in json.dumps([s.as_dict() for s in steps]) + d.what + d.check
