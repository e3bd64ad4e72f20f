#!/usr/bin/env python3
"""What the observing proxy (``python -m conformance proxy``, docs/proxy.md) costs a client:
turns per second and p99 turn latency at 10 and 100 connections, through the proxy and
directly to the same reference server, side by side in one run.

The reference server and the proxy run from their CLIs in subprocesses on 127.0.0.1; this
script is the client (aiohttp, as bench_server.py). Direct and proxied windows alternate
(direct, proxied, direct, proxied, ...) so that both see the same machine; each figure is the
median over the rounds. Goals (issue 19), against the instant reference server (no simulated
latency), where the proxy's CPU cost shows in full:

| goal | measured how |
|---|---|
| at least 70 % of the direct turns/s | saturated: every connection starts its next turn as soon as one ends |
| at most 2 ms added to p99 | the same load offered to both paths, half the proxied capacity, open loop |

At saturation p99 is about connections / turns/s (Little's law) and only restates the ratio, so
it is printed as information. The same figures against a paced server (100 ms to the first
token, 500 tokens/s, nearer to a real upstream) follow as information, with no goal.
Exit status 1 when a goal is missed.

    python bench/bench_proxy.py            # ~2.5 minutes
    python bench/bench_proxy.py --quick    # shorter windows, fewer rounds (~50 s)
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

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import TURN, load, open_sockets, raise_fd_limit, start_server, until_terminal, verdict  # noqa: E402

GOAL_RATE_RATIO = 0.70
GOAL_P99_ADDED_MS = 2.0
# the p99 goal is judged at this share of the proxied path's capacity, offered to both paths: at
# saturation a turn's latency is about connections / turns/s (Little's law), so p99 there only
# restates the throughput ratio (100 connections at 0.70 of the direct rate add ~40 % to p99)
OFFERED_SHARE = 0.5


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
    rate = count / elapsed
    turns = max(1.0, rate * (elapsed + warmup))
    cpu = {name: (after[name] - before[name]) / turns * 1e6 for name in procs}
    return rate, p99(lats), cpu


async def paced_load(url: str, conns: int, rate: float, seconds: float, warmup: float) -> list[float]:
    """Open-loop load at ``rate`` turns/s in all over ``conns`` connections: each connection
    starts a turn every conns/rate seconds (the connections' phases spread over that interval).
    A turn due while the connection's previous turn still runs starts late, and its latency
    counts from when it was due, so a slow path is not hidden by sending less. Latencies of the
    turns due after the warm-up, in seconds."""
    interval = conns / rate
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await open_sockets(session, url, conns)
        start = time.perf_counter() + 0.05
        measure_from, end = start + warmup, start + warmup + seconds

        async def worker(ws, phase: float) -> None:
            due, behind = start + phase, False
            while due < end:
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                sent = time.perf_counter()
                # late because the previous turn ran past this one's time: the wait is latency;
                # late because the sleep overslept: it is the client's, not the path's
                began = due if behind else sent
                await ws.send_str(TURN)
                await until_terminal(ws)
                done = time.perf_counter()
                if due >= measure_from:
                    latencies.append(done - began)
                due += interval
                behind = done > due

        await asyncio.gather(*(worker(ws, interval * i / conns) for i, ws in enumerate(sockets)))
        for ws in sockets:
            await ws.close()
    return latencies


def p99(latencies: list[float]) -> float:
    """The 99th percentile of ``latencies`` (seconds), in milliseconds."""
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


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
            sat_p99 = {side: statistics.median(p for _, p, _ in runs) for side, runs in figures.items()}
            cpu = {name: statistics.median(c[name] for _, _, c in figures["proxied"]) for name in procs}
            ratio = rate["proxied"] / rate["direct"]
            rate_ok = ratio >= GOAL_RATE_RATIO
            line = (f"{conns:>5} connections, saturated: direct {rate['direct']:7.0f} turns/s | "
                    f"proxied {rate['proxied']:7.0f} turns/s | ratio {ratio:4.2f}")
            if judged:
                misses += not rate_ok
                line += f"  [goal >= {GOAL_RATE_RATIO:.2f}: {verdict(rate_ok)}]"
            print(line, flush=True)
            print(f"{'':>18} p99 direct {sat_p99['direct']:.2f} ms, proxied {sat_p99['proxied']:.2f} ms "
                  f"({sat_p99['proxied'] - sat_p99['direct']:+.2f} ms; saturated, so about connections / turns/s: "
                  f"information)", flush=True)
            if judged:
                offered = OFFERED_SHARE * rate["proxied"]
                paced_p99: dict[str, list[float]] = {"direct": [], "proxied": []}
                for _ in range(rounds):
                    for side, url in (("direct", direct), ("proxied", proxied)):
                        paced_p99[side].append(p99(asyncio.run(paced_load(url, conns, offered, seconds, warmup))))
                at = {side: statistics.median(v) for side, v in paced_p99.items()}
                added = at["proxied"] - at["direct"]
                p99_ok = added <= GOAL_P99_ADDED_MS
                misses += not p99_ok
                print(f"{'':>18} at {offered:.0f} turns/s offered ({OFFERED_SHARE:.0%} of the proxied capacity): "
                      f"p99 direct {at['direct']:.2f} ms, proxied {at['proxied']:.2f} ms, added {added:+.2f} ms  "
                      f"[goal <= {GOAL_P99_ADDED_MS:g} ms: {verdict(p99_ok)}]", flush=True)
            print(f"{'':>18} CPU per proxied turn: client {cpu['client']:4.0f} us, server {cpu['server']:4.0f} us, "
                  f"proxy {cpu['proxy']:4.0f} us (load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stop(proxy)
        stop(server)
    return misses


if __name__ == "__main__":
    sys.exit(main())
