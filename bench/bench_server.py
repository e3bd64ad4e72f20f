"""Benchmark of the reference server: turns per second and turn latency with 1, 10 and 100
concurrent WebSocket connections, and the memory of 1,000 idle connections.

The server runs from its CLI in a subprocess on 127.0.0.1; this script is the client (a
separate process, aiohttp). A "turn" is one ``response.create`` (default text reply, ~13
frames) from send to its terminal event. Run:

    python bench/bench_server.py            # ~1 minute
    python bench/bench_server.py --quick    # shorter measurement windows

Targets on a 2-core machine: >= 1,500 turns/s at 10 connections, p99 < 50 ms at 100
connections, < 150 MB for 1,000 idle connections. Exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp
import psutil

TURN = json.dumps({"type": "response.create", "model": "bench", "input": "Benchmark turn, please answer.",
                   "store": False})
TERMINAL_PREFIXES = ('{"type":"response.completed"', '{"type":"response.incomplete"',
                     '{"type":"response.failed"', '{"type":"error"')
KEY = "sk-bench"


def raise_fd_limit(n: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard) if hard != resource.RLIM_INFINITY else max(soft, n)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def start_server(*options: str, key: str = KEY) -> tuple[subprocess.Popen, str]:
    """The server CLI on an ephemeral port (plus ``options``): (process, its ws:// URL)."""
    # stderr goes to a file: a pipe nobody reads would stall a server that logs a lot
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.server", "--port", "0", "--log-level", "WARNING",
         "--api-key", key, *options],
        stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=raise_fd_limit,
    )
    deadline = time.monotonic() + 20
    while (left := deadline - time.monotonic()) > 0 and select.select([proc.stdout], [], [], left)[0]:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    log.seek(0)
    raise SystemExit(f"server did not start: {log.read()}")


async def one_turn(ws) -> float:
    t0 = time.perf_counter()
    await ws.send_str(TURN)
    await until_terminal(ws)
    return time.perf_counter() - t0


async def until_terminal(ws) -> None:
    """Read frames up to the turn's terminal event (or error)."""
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"unexpected frame {msg.type}")
        if msg.data.startswith(TERMINAL_PREFIXES):
            return


async def open_sockets(session: aiohttp.ClientSession, url: str, conns: int) -> list:
    """``conns`` WebSocket connections to ``url`` with the bench key, one after the other."""
    return [await session.ws_connect(url, headers={"Authorization": f"Bearer {KEY}"}, compress=0, max_msg_size=0)
            for _ in range(conns)]


async def load(url: str, conns: int, seconds: float, warmup: float) -> tuple[int, list[float], float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await open_sockets(session, url, conns)
        latencies: list[float] = []
        measuring = False
        count = 0
        stop = False

        async def worker(ws):
            nonlocal count
            while not stop:
                lat = await one_turn(ws)
                if measuring:
                    latencies.append(lat)
                    count += 1

        tasks = [asyncio.create_task(worker(ws)) for ws in sockets]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - t0
        stop = True
        await asyncio.wait(tasks, timeout=15)
        for ws in sockets:
            await ws.close()
        return count, latencies, elapsed


async def idle_memory(url: str, proc: psutil.Process, n: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # one turn first so that lazily imported code and caches are in the baseline
        ws = await session.ws_connect(url, headers=headers, compress=0)
        await one_turn(ws)
        await ws.close()
        await asyncio.sleep(0.5)
        base = proc.memory_info().rss
        sockets = []
        for i in range(0, n, 50):
            sockets += await asyncio.gather(*[session.ws_connect(url, headers=headers, compress=0)
                                              for _ in range(min(50, n - i))])
        await asyncio.sleep(1.0)
        used = proc.memory_info().rss - base
        # the idle connections still work
        await one_turn(sockets[-1])
        await asyncio.gather(*[ws.close() for ws in sockets])
        return used / (1024 * 1024)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter measurement windows")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections for the memory figure")
    args = ap.parse_args()
    raise_fd_limit()
    seconds, warmup = (2.0, 0.5) if args.quick else (5.0, 1.0)
    proc, url = start_server()
    ps = psutil.Process(proc.pid)
    misses = 0
    try:
        print(f"reference server {url} (pid {proc.pid}); client: this process (pid {os.getpid()}), "
              f"{psutil.cpu_count()} CPUs")
        me = psutil.Process()
        for conns in (1, 10, 100):
            ps.cpu_percent(None)
            me.cpu_percent(None)
            count, lats, elapsed = asyncio.run(load(url, conns, seconds, warmup))
            cpu = f"cpu server {ps.cpu_percent(None):3.0f}% client {me.cpu_percent(None):3.0f}%"
            rate = count / elapsed
            lats.sort()
            p50 = statistics.median(lats) * 1000
            p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))] * 1000
            line = (f"{conns:>3} connections: {rate:8.0f} turns/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
                    f"   ({cpu})")
            if conns == 10:
                ok = rate >= 1500
                misses += not ok
                line += f"   [target >= 1500 turns/s: {verdict(ok)}]"
            if conns == 100:
                ok = p99 < 50
                misses += not ok
                line += f"   [target p99 < 50 ms: {verdict(ok)}]"
            print(line, flush=True)
        mb = asyncio.run(idle_memory(url, ps, args.idle))
        ok = mb < 150
        misses += not ok
        print(f"{args.idle} idle connections: {mb:6.1f} MB RSS over baseline   "
              f"[target < 150 MB: {verdict(ok)}]")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
