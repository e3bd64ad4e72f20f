"""``python -m conformance proxy``: options, the run until a signal (or ``--duration``), the
report directory on exit. Exit status: 0, 1 when a MUST was violated, 2 on bad options."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time
from pathlib import Path

from conformance import verdicts as V
from conformance.proxy.observe import DEFAULT_STALL_S, DEFAULT_TRANSCRIPT_CAP, Observer
from conformance.proxy.relay import Relay
from conformance.report import summary_lines
from conformance.target import ProfileError, load_profile


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upstream", required=True, metavar="URL",
                   help="the target's socket URL, e.g. wss://api.openai.com/v1/responses")
    p.add_argument("--listen", default="127.0.0.1:8766", metavar="HOST:PORT",
                   help="where clients connect (default 127.0.0.1:8766; port 0 picks a free one)")
    p.add_argument("--report-dir", default=None, metavar="DIR", help="default reports/<run-id>")
    p.add_argument("--profile", default="openai", help="target profile the clauses are read against (default openai)")
    p.add_argument("--transcript-cap", type=int, default=DEFAULT_TRANSCRIPT_CAP, metavar="N",
                   help=f"frames kept per connection for its transcript (default {DEFAULT_TRANSCRIPT_CAP})")
    p.add_argument("--stall", type=float, default=DEFAULT_STALL_S, metavar="S",
                   help="a client that closes after S seconds of upstream silence leaves responses the "
                        f"upstream never ended: STREAM-ONE-TERMINAL (default {DEFAULT_STALL_S:g})")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _log(line: str) -> None:
    print(f"proxy: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        host, port = _listen(args.listen)
        profile = load_profile(args.profile)
        registry = V.ClauseRegistry.load(V.default_clauses_path(Path.cwd()))
        if args.transcript_cap < 1:
            raise ValueError("--transcript-cap must be at least 1")
        if not args.stall >= 0:
            raise ValueError("--stall must be a non-negative number of seconds")
        if args.duration is not None and not args.duration > 0:
            raise ValueError("--duration must be a positive number of seconds")
    except (ValueError, ProfileError, V.RegistryError, TypeError) as exc:
        _log(f"error: {exc}")
        return 2
    observer = Observer(registry=registry, upstream=args.upstream, listen=args.listen, profile=profile,
                        transcript_cap=args.transcript_cap, stall_s=args.stall, log=_log)
    try:
        relay = Relay(args.upstream, observer, host, port)
    except ValueError as exc:
        _log(f"error: {exc}")
        return 2
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    report_dir = Path(args.report_dir) if args.report_dir else Path.cwd() / "reports" / run_id
    try:
        asyncio.run(_serve(relay, args.duration))
    except OSError as exc:
        _log(f"error: cannot listen on {args.listen}: {exc}")
        return 2
    try:
        paths = observer.write(report_dir, run_id)
    except OSError as exc:
        _log(f"error: cannot write the report to {report_dir}: {exc}")
        return 2
    records = observer.records()
    for line in summary_lines(records, registry, profile.name)[:2]:
        _log(line)
    _log(f"observed-traffic report: {paths['html']}")
    return 1 if any(r["verdict"] == V.FAIL for r in records) else 0


async def _serve(relay: Relay, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            pass
    await relay.start()
    _log(f"listening on {relay.url} -> {relay.upstream} (Ctrl-C writes the report)")
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        pass
    await relay.stop()
