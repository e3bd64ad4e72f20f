"""The sandwich's port race (conformance/clientmode/listenport.py, docs/clients.md "Gateways"):
the port the suite picks for the gateway may be taken by another process before the gateway
binds it. The run then gives that port up, starts the gateway on a new one, says so in one
line and in the certificate's ``gateway`` block, and runs against the port the gateway really
listens on; when every port it tries is taken, the run is NOT-USABLE in one line, in bounded
time. The thief is tests/clients/port_thief.py, a plugin in the suite's own process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import verdicts
from conformance.clientmode import listenport, sandwich
from conformance.vocabulary import NOT_USABLE

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = "python tests/clients/broken_gateway.py port-taken"
QUICK = ("--clause", "CLIENT-KEY-IN-HEADER", "--clause", "TURN-TEXT")     # a few cases are enough
RUN_DEADLINE_S = 120


def _run(tmp_path: Path, mode: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests" / "clients"), env.get("PYTHONPATH")]))
    env["CONFORMANCE_TEST_PORT_THIEF"] = mode
    cmd = [sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider", "-p", "port_thief", "--gateway-command", GATEWAY, "--report-dir", str(tmp_path / "report"),
           "--target-config", "examples/gateway_relay.toml", *extra]
    if "-n" not in extra:
        cmd[5:5] = ["-p", "no:xdist"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    cert_path = tmp_path / "report" / "certificate.json"
    assert cert_path.exists(), f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return proc, json.loads(cert_path.read_text())


# under xdist the workers must get the port the gateway listens on, not the one given up
@pytest.mark.parametrize("mode, workers", [("before", ()), ("race", ("-n", "2"))])
def test_a_taken_port_is_given_up_and_the_run_uses_the_gateways_port(mode, workers, tmp_path):
    (tmp_path / "thief").mkdir()
    proc, cert = _run(tmp_path, mode if mode == "before" else f"race:{tmp_path / 'thief'}", *QUICK, *workers)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert cert["overall"] == verdicts.PASS
    gateway = cert["gateway"]
    (given_up,) = gateway["ports_given_up"]
    assert gateway["listen"] != given_up
    assert cert["target"]["ws_host"] == gateway["listen"]
    said = [line for line in proc.stdout.splitlines() if line.startswith("gateway sandwich: " + given_up)]
    assert len(said) == 1, proc.stdout[-3000:]
    assert re.search(rf"was taken .*\(pid \d+: .*pytest.*\); trying {gateway['listen']} \(attempt 2 of 3\)",
                     said[0]), said[0]
    assert gateway["upstream"]["connections"] > 0       # the cases reached the gateway, not the thief


def test_when_every_port_is_taken_the_run_is_not_usable_in_one_line(tmp_path):
    (tmp_path / "thief").mkdir()
    started = time.monotonic()
    proc, cert = _run(tmp_path, f"always:{tmp_path / 'thief'}", *QUICK)
    assert time.monotonic() - started < 60
    assert proc.returncode == 6, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "GATEWAY NOT USABLE" in line]
    assert len(lines) == 1 and "was taken" in lines[0] and "3 ports tried" in lines[0], proc.stdout
    assert cert["overall"] == NOT_USABLE and cert["preflight"]["usable"] is False


def test_a_gateway_that_never_listens_is_not_retried_on_other_ports(tmp_path):
    """Another port would not help a gateway that ignores its address: one line, one timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--gateway-command", "python tests/clients/broken_gateway.py never-listens",
                           "--gateway-start-timeout", "2", "--report-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    assert time.monotonic() - started < 30
    assert proc.returncode == 6, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "GATEWAY NOT USABLE" in line or line.startswith("gateway sandwich")]
    assert len(lines) == 1 and "nothing listened within 2 s" in lines[0] and "trying" not in proc.stdout, lines


# --- the questions listenport answers, without a suite run ----------------------------------------

def test_the_listener_of_a_port_is_found_and_placed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert listenport.accepts(port, 1.0)
        found = listenport.listeners(port)
        if found is None:
            pytest.skip("no /proc/net/tcp here")
        assert os.getpid() in [x.pid for x in found]
        mine = listenport.started(os.getpid())
        assert listenport.owner(port, os.getpgid(0), mine)[0] == listenport.OURS
        assert listenport.owner(port, -1, mine + 1)[0] == listenport.STRANGER     # we existed before it
        assert listenport.owner(port, -1, mine)[0] == listenport.UNKNOWN
    assert not listenport.accepts(port, 0.5)


def test_a_gateway_that_exits_on_a_free_port_is_not_retried(tmp_path):
    """Exiting is the gateway's own failure when nothing else listens on its port: no new port."""
    gateway = sandwich.Gateway("python -c 'raise SystemExit(3)'", listenport.free_port(), "sk-test", 5.0)
    sand = sandwich.Sandwich(gateway)

    class Upstream:
        base_url, ws_url = "http://127.0.0.1:9/v1", "ws://127.0.0.1:9/v1/responses"

        def stop(self):
            pass

    said: list[str] = []
    line = sand.start(lambda **config: Upstream(), say=said.append)
    assert line is not None and "exited 3 before listening" in line and not said and sand.retries == []
