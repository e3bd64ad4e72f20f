#!/usr/bin/env python3
"""What the observing proxy (``python -m conformance proxy``, docs/proxy.md) costs a client:
turns per second and p99 turn latency at 10 and 100 connections, through the proxy and
directly to the same reference server, side by side in one run.

The reference server and the proxy run from their CLIs in subprocesses on 127.0.0.1; this
script is the client (aiohttp, as bench_server.py). Direct and proxied windows alternate
(direct, proxied, direct, proxied, ...) so that both see the same machine; each figure is the
median over the rounds. Goals (issue 19): through the proxy at least 70 % of the direct turns/s,
and at most 2 ms added to p99, against the instant reference server (no simulated latency),
where the proxy's CPU cost shows in full. The same figures against a paced server (100 ms to
the first token, 500 tokens/s, nearer to a real upstream) follow as information, with no goal.
Exit status 1 when a goal is missed.

    python bench/bench_proxy.py            # ~1 minute
    python bench/bench_proxy.py --quick    # shorter windows, fewer rounds
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import load, raise_fd_limit, start_server, verdict  # noqa: E402

GOAL_RATE_RATIO = 0.70
GOAL_P99_ADDED_MS = 2.0


def start_proxy(upstream: str, report_dir: str) -> tuple[subprocess.Popen, str]:
    """The proxy CLI on an ephemeral port in front of ``upstream``: (process, its ws:// URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance", "proxy", "--upstream", upstream, "--listen", "127.0.0.1:0",
         "--report-dir", report_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=raise_fd_limit)
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:            # read stderr to the end: an unread pipe would stall the proxy
        for line in proc.stderr:
            if not found and "listening on " in line:
                found.append(line.split("listening on ", 1)[1].split()[0])
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(20) or not found:
        proc.kill()
        proc.wait()
        raise SystemExit("proxy did not start")
    return proc, found[0]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        times = proc.cpu_times()
        out[name] = times.user + times.system
    return out


def window(url: str, conns: int, seconds: float, warmup: float,
           procs: dict[str, psutil.Process]) -> tuple[float, float, dict[str, float]]:
    """One measurement window: (turns/s, p99 ms, CPU microseconds per turn of each process).
    The CPU figures count the warm-up too, so they are per turn of the whole window (turns
    estimated at the measured rate): a load-independent view of what each process spends."""
    before = cpu_seconds(procs)
    count, lats, elapsed = asyncio.run(load(url, conns, seconds, warmup))
    after = cpu_seconds(procs)
    lats.sort()
    rate = count / elapsed
    turns = max(1.0, rate * (elapsed + warmup))
    cpu = {name: (after[name] - before[name]) / turns * 1e6 for name in procs}
    return rate, lats[min(len(lats) - 1, int(len(lats) * 0.99))] * 1000, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter windows, fewer rounds")
    ap.add_argument("--rounds", type=int, default=None, help="direct/proxied pairs per connection count")
    args = ap.parse_args()
    raise_fd_limit()
    seconds, warmup, rounds = (1.5, 0.3, 2) if args.quick else (3.0, 0.5, 3)
    rounds = args.rounds or rounds
    misses = 0
    print(f"{psutil.cpu_count()} CPUs; {rounds} rounds of {seconds:g} s per side")
    for label, options in (("instant upstream", ()), ("paced upstream (info, no goal)", PACED)):
        misses += compare(label, options, rounds, seconds, warmup, judged=not options)
    return 1 if misses else 0


PACED = ("--ttft-ms", "100", "--tokens-per-second", "500")


def compare(label: str, options: tuple[str, ...], rounds: int, seconds: float, warmup: float,
            judged: bool) -> int:
    """Direct and proxied windows against one server; the number of goals missed."""
    server, direct = start_server(*options)
    report_dir = tempfile.mkdtemp(prefix="bench-proxy-")
    proxy, proxied = start_proxy(direct, report_dir)
    misses = 0
    try:
        print(f"{label}: reference server {direct} {' '.join(options)}; proxy {proxied} (report {report_dir})")
        procs = {"client": psutil.Process(), "server": psutil.Process(server.pid), "proxy": psutil.Process(proxy.pid)}
        for conns in (10, 100):
            figures: dict[str, list[tuple[float, float, dict]]] = {"direct": [], "proxied": []}
            for _ in range(rounds):
                figures["direct"].append(window(direct, conns, seconds, warmup, procs))
                figures["proxied"].append(window(proxied, conns, seconds, warmup, procs))
            rate = {side: statistics.median(r for r, _, _ in runs) for side, runs in figures.items()}
            p99 = {side: statistics.median(p for _, p, _ in runs) for side, runs in figures.items()}
            cpu = {name: statistics.median(c[name] for _, _, c in figures["proxied"]) for name in procs}
            ratio = rate["proxied"] / rate["direct"]
            added = p99["proxied"] - p99["direct"]
            rate_ok, p99_ok = ratio >= GOAL_RATE_RATIO, added <= GOAL_P99_ADDED_MS
            line = (f"{conns:>5} connections: direct {rate['direct']:7.0f} turns/s p99 {p99['direct']:7.2f} ms | "
                    f"proxied {rate['proxied']:7.0f} turns/s p99 {p99['proxied']:7.2f} ms | "
                    f"ratio {ratio:4.2f}  p99 added {added:+7.2f} ms")
            if judged:
                misses += (not rate_ok) + (not p99_ok)
                line += (f"  [goal ratio >= {GOAL_RATE_RATIO:.2f}: {verdict(rate_ok)}; "
                         f"p99 added <= {GOAL_P99_ADDED_MS:g} ms: {verdict(p99_ok)}]")
            print(line, flush=True)
            print(f"{'':>18} CPU per proxied turn: client {cpu['client']:4.0f} us, server {cpu['server']:4.0f} us, "
                  f"proxy {cpu['proxy']:4.0f} us (load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stop(proxy)
        stop(server)
    return misses


if __name__ == "__main__":
    sys.exit(main())
