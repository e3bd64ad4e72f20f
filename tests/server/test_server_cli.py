"""The command line: python -m conformance.server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from srv_helpers import WS

from conformance.server import DEFECTS

pytestmark = pytest.mark.timeout(30)
PY = sys.executable


def run(*args, timeout=15):
    return subprocess.run([PY, "-m", "conformance.server", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_list_defects():
    r = run("--list-defects")
    assert r.returncode == 0
    for name in DEFECTS:
        assert name in r.stdout


def test_list_defects_into_a_closed_pipe():
    """``--list-defects | head``: a reader that stops early is no error and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)              # every write now fails with EPIPE, as after head exits
    try:
        r = subprocess.run([PY, "-m", "conformance.server", "--list-defects"], stdout=write_end,
                           stderr=subprocess.PIPE, text=True, timeout=15)
    finally:
        os.close(write_end)
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.parametrize("args", [["--defect", "nope"], ["--port", "abc"], ["--profile", "azure"],
                                  ["--lifetime", "-1"], ["--busy-policy", "drop"], ["--max-frame-bytes", "0"],
                                  ["--bogus"], ["--omit-terminal-output", "sometimes"], ["--ttft-ms", "-5"],
                                  ["--tokens-per-second", "fast"], ["--lanes", "maybe"]])
def test_bad_arguments_exit_2(args):
    r = run(*args)
    assert r.returncode == 2
    assert "error:" in r.stderr


def start(*args):
    proc = subprocess.Popen([PY, "-m", "conformance.server", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on ") or not line:
            break
    assert line.startswith("listening on "), (line, proc.poll())
    return proc, line.split()[-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_shuts_down_cleanly(sig):
    proc, url = start("--api-key", "k1", "--api-key", "k2", "--defect", "sequence-gaps", "--test-controls",
                      "--log-level", "warning")
    try:
        assert url.startswith("ws://127.0.0.1:")
        with WS(url, key="k2") as ws:
            t = ws.turn(input="hi")
        assert t.status == "completed"
        assert t.events[1]["sequence_number"] == 2  # the defect is on
        ws2 = WS(url, key="k1")  # an open connection does not block shutdown
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        ws2.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in proc.stderr.read()


def test_port_in_use_is_a_clear_error():
    proc, url = start()
    try:
        port = url.split(":")[2].split("/")[0]
        r = run("--port", port)
        assert r.returncode == 1 and "cannot listen" in r.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_console_script_entry_point_is_main():
    from conformance.server.__main__ import main

    assert callable(main)
    assert os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", "conformance", "server",
                                       "__main__.py"))


def test_streaming_and_latency_options_reach_the_config():
    from conformance.server.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(["--omit-setup-events", "--omit-terminal-output", "--control-events",
                                      "--ttft-ms", "400", "--tokens-per-second", "50"])
    cfg = config_from_args(args)
    assert (cfg.omit_setup_events, cfg.terminal_output, cfg.control_events) == (True, "empty", True)
    assert (cfg.ttft_ms, cfg.tokens_per_second) == (400.0, 50.0)
    assert config_from_args(build_parser().parse_args(["--omit-terminal-output", "null"])).terminal_output == "null"
    plain = config_from_args(build_parser().parse_args([]))
    assert (plain.omit_setup_events, plain.terminal_output, plain.control_events) == (False, "full", False)
    s = cfg.resolve()
    assert s.ttft_s == 0.4 and s.tokens_per_second == 50.0
    assert s.lanes is True and config_from_args(build_parser().parse_args(["--profile", "xai"])).resolve().lanes is False
    off = config_from_args(build_parser().parse_args(["--lanes", "off", "--steering"])).resolve()
    assert off.lanes is False and off.steering is True
