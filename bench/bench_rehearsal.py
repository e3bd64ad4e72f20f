"""A realistic rehearsal of a run against a real target: the whole suite with real-target
budgets against a standalone reference server that simulates model latency (400 ms to first
token, 50 tokens/s), once with ``-n 1`` and once with ``-n 8`` (pytest-xdist), printing both
wall times and their ratio.

This is the README's "Testing a real endpoint" command (``pytest cases --target URL
--profile openai --api-key KEY``) against ``python -m conformance.server --api-key KEY
--ttft-ms 400 --tokens-per-second 50`` (no test controls, like a real target). Run:

    python bench/bench_rehearsal.py          # a few minutes; not part of CI

Target: ``-n 8`` at least 4x faster than ``-n 1``. Exit status 1 when it is missed, or when the
two runs do not reach the same clause verdicts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import bench_server  # the server CLI on an ephemeral port (same directory)

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-rehearsal"
TARGET_RATIO = 4.0


def start_server(ttft_ms: float, tps: float) -> tuple[subprocess.Popen, str]:
    return bench_server.start_server("--ttft-ms", str(ttft_ms), "--tokens-per-second", str(tps), key=KEY)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def suite_env() -> dict:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    # Every xdist worker imports and assertion-rewrites the suite; without bytecode caching
    # each one compiles it all again, which a user's machine does not pay on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def suite_cmd(url: str, workers: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "cases", f"--target={url}", "--profile", "openai",
            "--api-key", KEY, "-n", str(workers), "-q", "-p", "no:cacheprovider", "--no-report", *extra]


def run_suite(url: str, workers: int, timeout: float) -> tuple[float, int, list[str]]:
    """(wall seconds, pytest exit status, the summary lines) of one run of ``cases/``."""
    cmd = suite_cmd(url, workers)
    env = suite_env()
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"-n {workers}: the run did not finish within {timeout:.0f} s") from None
    wall = time.monotonic() - t0
    keep = ("clauses:", "spent:", "coverage:")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(keep)]
    tail = r.stdout.strip().splitlines()[-1:] if r.stdout.strip() else []
    return wall, r.returncode, lines + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ttft-ms", type=float, default=400.0)
    ap.add_argument("--tokens-per-second", type=float, default=50.0)
    ap.add_argument("--timeout", type=float, default=900.0, help="deadline of one suite run (seconds)")
    args = ap.parse_args(argv)
    print(f"rehearsal: reference server with {args.ttft_ms:g} ms to first token, "
          f"{args.tokens_per_second:g} tokens/s; suite with real-target budgets (--profile openai)",
          flush=True)
    # one collection first, so that both timed runs find the bytecode caches written
    subprocess.run(suite_cmd("ws://127.0.0.1:9/v1/responses", 0, "--collect-only"), cwd=ROOT,
                   capture_output=True, env=suite_env(), timeout=args.timeout)
    results = {}
    for workers in (1, 8):
        proc, url = start_server(args.ttft_ms, args.tokens_per_second)  # a fresh server per run
        try:
            wall, status, lines = run_suite(url, workers, args.timeout)
        finally:
            stop(proc)
        results[workers] = (wall, status, lines)
        print(f"-n {workers}: {wall:7.1f} s wall (pytest exit {status})", flush=True)
        for ln in lines:
            print(f"      {ln}")
    ratio = results[1][0] / results[8][0]
    ok = ratio >= TARGET_RATIO
    print(f"-n 1 {results[1][0]:.1f} s  |  -n 8 {results[8][0]:.1f} s  |  ratio {ratio:.2f}x   "
          f"[target >= {TARGET_RATIO:g}x: {'ok' if ok else 'MISSED'}]")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"({os.cpu_count()} CPUs, load average {load:.1f}: xdist starts 8 workers that each import "
          "and collect the suite, so a busy machine lowers the ratio)")
    verdicts = [[ln for ln in results[n][2] if ln.startswith("clauses:")] for n in (1, 8)]
    same = verdicts[0] == verdicts[1]
    if not same:
        print(f"the two runs reached different clause verdicts: {verdicts[0]} vs {verdicts[1]}")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
