"""Command line of the reference server: ``python -m conformance.server`` (also installed as
``responses-ws-reference-server``).  Prints one line ``listening on ws://HOST:PORT/v1/responses``
once it accepts connections, and shuts down cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .app import ReferenceServer
from .config import DEFAULT_MAX_FRAME_BYTES, PROFILES, BusyPolicy, ServerConfig, TerminalOutput
from .defects import DEFECTS, UnknownDefect


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


def _defect(text: str) -> str:
    if text not in DEFECTS:
        raise argparse.ArgumentTypeError(
            f"unknown defect {text!r} (see --list-defects)"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="responses-ws-reference-server",
        description="Reference server for the OpenAI Responses API WebSocket mode "
                         "(WebSocket and HTTP on /v1/responses, deterministic engine, named defects).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765; 0 = ephemeral)")
    parser.add_argument("--api-key", action="append", default=[], metavar="KEY[:TENANT]",
                        help="accepted bearer key (repeatable), optionally with its tenant: keys of one "
                             "tenant share stored responses, a key without one is its own tenant; "
                             "without --api-key any non-empty key is accepted")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="openai",
                        help="server behaviour profile (default openai)")
    parser.add_argument("--lifetime", type=_positive_float, default=None, metavar="SECONDS",
                        help="connection lifetime (default: the profile's, 3600 for openai, 1500 for xai)")
    parser.add_argument("--busy-policy", choices=[b.value for b in BusyPolicy], default=None,
                        help="what a response.create sent while one is in flight gets (default queue)")
    parser.add_argument("--busy-error-code", default="response_already_in_flight",
                        help="error code used with --busy-policy reject")
    parser.add_argument("--zdr", action="store_true", help="zero data retention: persist nothing")
    parser.add_argument("--store-path", default=None, metavar="FILE",
                        help="append store=true responses to this JSON-lines file and load it at start")
    parser.add_argument("--test-controls", action="store_true",
                        help="honour the X-Conformance-Lifetime, X-Conformance-Turn-Delay-Ms and "
                             "X-Conformance-Pause-Ms handshake headers")
    parser.add_argument("--omit-setup-events", action="store_true",
                        help="stream without output_item.added, content_part.added and reasoning_summary_part.added "
                             "(WebSocket only; the official SDK tolerates it)")
    parser.add_argument("--omit-terminal-output", nargs="?", const=TerminalOutput.EMPTY.value, default=None,
                        choices=[t.value for t in TerminalOutput if t is not TerminalOutput.FULL],
                        metavar="empty|null|missing",
                        help="the terminal event's response.output is [] (default), null or missing (WebSocket only)")
    parser.add_argument("--control-events", action="store_true",
                        help="send ping, codex.rate_limits and response.metadata before each response and "
                             "codex.keepalive after it (no response id, no sequence_number); "
                             "response.completed carries end_turn, as from the Codex backend")
    parser.add_argument("--lanes", choices=["on", "off"], default=None,
                        help="stream_id lanes (default: the profile's; on for openai, off for xai and open-responses)")
    parser.add_argument("--steering", action="store_true",
                        help="accept response.steer (P-steer): accepted/pending/failed events and automatic "
                             "successors; without it a steer gets steering_not_supported")
    parser.add_argument("--ttft-ms", type=_non_negative_float, default=0.0, metavar="MS",
                        help="simulated time to first token of a generating response (default 0)")
    parser.add_argument("--tokens-per-second", type=_non_negative_float, default=0.0, metavar="N",
                        help="simulated streaming rate: each delta waits its tokens / N seconds (default 0 = no wait)")
    parser.add_argument("--per-token-us", type=_non_negative_float, default=0.0, metavar="US",
                        help="simulated processing cost per uncached input token before the first output "
                             "(default 0): full-history HTTP turns cost more than cached WebSocket continuations")
    parser.add_argument("--defect", action="append", default=[], type=_defect, metavar="NAME",
                        help="break one behaviour (repeatable; see --list-defects)")
    parser.add_argument("--list-defects", action="store_true", help="list the named defects and exit")
    parser.add_argument("--max-frame-bytes", type=_positive_int, default=DEFAULT_MAX_FRAME_BYTES,
                        help=f"largest client frame; bigger ones close with 1009 (default {DEFAULT_MAX_FRAME_BYTES})")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], type=str.upper,
                        help="logging level (default INFO)")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    cfg = ServerConfig(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_key),
        profile=args.profile,
        test_controls=args.test_controls,
        defects=tuple(args.defect),
        store_path=args.store_path,
        zdr=args.zdr,
        max_frame_bytes=args.max_frame_bytes,
        log_level=args.log_level,
        busy_policy=args.busy_policy,
        busy_error_code=args.busy_error_code,
        omit_setup_events=args.omit_setup_events,
        terminal_output=args.omit_terminal_output or TerminalOutput.FULL.value,
        control_events=args.control_events,
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        per_token_us=args.per_token_us,
        steering=args.steering,
        lanes=None if args.lanes is None else args.lanes == "on",
    )
    cfg.lifetime_s = args.lifetime    # None: the profile's
    return cfg


async def _serve(config: ServerConfig) -> None:
    server = ReferenceServer(config)
    await server.start()
    print(f"listening on {server.ws_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
            pass
    try:
        await stop.wait()
    finally:
        await server.stop()


def _list_defects() -> int:
    width = max(len(n) for n in DEFECTS)
    try:
        for d in DEFECTS.values():
            print(f"{d.name:<{width}}  {d.level:<6}  {d.clause:<30}  {d.summary}")
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader stopped early (``| head``): that is fine; point stdout at devnull so the
        # interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_defects:
        return _list_defects()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        config.resolve()
    except (UnknownDefect, ValueError) as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        print(f"responses-ws-reference-server: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
