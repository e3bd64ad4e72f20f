"""``python -m conformance proxy``: options, the start-up check of the upstream, the run until
a signal (or ``--duration``), the report directory on exit (docs/proxy.md).

====  ==========================================================================================
exit  when
====  ==========================================================================================
0     some client connection was relayed to the upstream, and no MUST clause was violated
1     a MUST clause was violated in the observed traffic
2     bad options or an unusable file (``--target-config``), one line
6     no client connection ever reached the upstream (none came, or every handshake was
      refused or found the upstream unreachable): nothing was observed
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import signal
import sys
import time
from pathlib import Path

from conformance import caserecord
from conformance import verdicts
from conformance.proxy.observe import DEFAULT_STALL_S, DEFAULT_TRANSCRIPT_CAP, Observer
from conformance.proxy.relay import UPSTREAM_CHECK_TIMEOUT, Relay, check_upstream, socket_url
from conformance.report import summary_lines
from conformance.target import ProfileError, load_profile

OK, VIOLATED, BAD_OPTIONS, NOTHING_RELAYED = 0, 1, 2, 6
GC_YOUNG_THRESHOLD = 20_000     # allocations between young-generation collections (Python's default: 700)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", "--target", dest="upstream", required=True, metavar="URL",
                        help="the target, in any form the suite's --target takes: a ws(s):// socket URL "
                             "(wss://api.openai.com/v1/responses) or an http(s):// API base (https://api.openai.com/v1)")
    parser.add_argument("--listen", default="127.0.0.1:8766", metavar="HOST:PORT",
                        help="where clients connect (default 127.0.0.1:8766; port 0 picks a free one)")
    parser.add_argument("--report-dir", default=None, metavar="DIR", help="default reports/<run-id>")
    parser.add_argument("--profile", default="openai", help="target profile the clauses are read against (default openai)")
    parser.add_argument("--target-config", default=None, metavar="FILE",
                        help="a profile TOML file, as the suite's --target-config; overrides --profile")
    parser.add_argument("--transcript-cap", type=int, default=DEFAULT_TRANSCRIPT_CAP, metavar="N",
                        help=f"frames kept per connection for its transcript (default {DEFAULT_TRANSCRIPT_CAP})")
    parser.add_argument("--stall", type=float, default=DEFAULT_STALL_S, metavar="S",
                        help="a client that closes after S seconds of upstream silence leaves responses the "
                             f"upstream never ended: STREAM-ONE-TERMINAL (default {DEFAULT_STALL_S:g})")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")


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
        upstream = socket_url(args.upstream)
        if args.target_config:
            profile = load_profile(Path(args.target_config))
        else:
            profile = load_profile(args.profile)
        registry = verdicts.ClauseRegistry.load(verdicts.default_clauses_path(Path.cwd()))
        if args.transcript_cap < 1:
            raise ValueError("--transcript-cap must be at least 1")
        if not args.stall >= 0:
            raise ValueError("--stall must be a non-negative number of seconds")
        if args.duration is not None and not args.duration > 0:
            raise ValueError("--duration must be a positive number of seconds")
    except ProfileError as exc:
        _log(f"error: profile: {exc}")
        return BAD_OPTIONS
    except (ValueError, verdicts.RegistryError, TypeError) as exc:
        _log(f"error: {exc}")
        return BAD_OPTIONS
    observer = Observer(registry=registry, upstream=upstream, listen=args.listen, profile=profile,
                        transcript_cap=args.transcript_cap, stall_s=args.stall, log=_log)
    try:
        relay = Relay(upstream, observer, host, port)
    except ValueError as exc:
        _log(f"error: {exc}")
        return BAD_OPTIONS
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    # the monitor makes many short-lived objects per frame: collect the young generation less
    # often, and leave what start-up loaded out of every collection (bench/bench_proxy.py)
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    report_dir = Path(args.report_dir) if args.report_dir else Path.cwd() / "reports" / run_id
    try:
        asyncio.run(_serve(relay, args.duration))
    except OSError as exc:
        _log(f"error: cannot listen on {args.listen}: {exc}")
        return BAD_OPTIONS
    try:
        paths = observer.write(report_dir, run_id)
    except OSError as exc:
        _log(f"error: cannot write the report to {report_dir}: {exc}")
        return BAD_OPTIONS
    records = observer.records()
    for line in summary_lines(records, registry, profile.name)[:2]:
        _log(line)
    _log(f"observed-traffic report: {paths['html']}")
    nothing = observer.nothing_relayed()
    if nothing is not None:
        _log(f"nothing observed: no connection reached the upstream {upstream} ({nothing}); exit {NOTHING_RELAYED}")
        return NOTHING_RELAYED
    return VIOLATED if any(record.verdict == verdicts.FAIL for record in caserecord.all_of(records)) else OK


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
    check = asyncio.create_task(_warn_if_down(relay.upstream))
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        pass
    check.cancel()
    await asyncio.gather(check, return_exceptions=True)
    await relay.stop()


async def _warn_if_down(upstream: str) -> None:
    """One line when the upstream cannot be reached now; the proxy serves on (it may come up)."""
    problem = await check_upstream(upstream, UPSTREAM_CHECK_TIMEOUT)
    if problem is not None:
        _log(f"warning: upstream down? {problem}; clients get HTTP 502 until it answers")
