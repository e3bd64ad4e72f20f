"""Self-test helpers: a standalone reference server (``python -m conformance.server``) in a
subprocess, used as a ``--target``, and a conformance run against it in another subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-selftest-standalone-0001"


@contextmanager
def standalone_server(*defects: str, start_timeout: float = 20.0, args: tuple[str, ...] = ()) -> Iterator[str]:
    """Start the reference server on an ephemeral loopback port (plus server ``args``); yields its ws:// URL."""
    cmd = [sys.executable, "-m", "conformance.server", "--port", "0", "--api-key", KEY, "--log-level", "WARNING",
           *args]
    for d in defects:
        cmd += ["--defect", d]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + start_timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on (ws://\S+)", line)
            url = m.group(1) if m else None
        assert url, f"the standalone server did not start (exit {proc.poll()})"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_cases(args: list[str], report_dir: Path, *, timeout: float = 600,
              cases: Path = ROOT / "cases") -> tuple[subprocess.CompletedProcess, dict | None, float]:
    """``pytest CASES ARGS --report-dir DIR`` in a subprocess: (process, certificate, seconds)."""
    cmd = [sys.executable, "-m", "pytest", str(cases), "-q", "-p", "no:cacheprovider",
           "--report-dir", str(report_dir), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    t0 = time.monotonic()
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=timeout)
    took = time.monotonic() - t0
    cert_path = report_dir / "certificate.json"
    cert = json.loads(cert_path.read_text()) if cert_path.exists() else None
    return proc, cert, took


def clause_verdicts(cert: dict) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in cert["clauses"]}
