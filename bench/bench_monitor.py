#!/usr/bin/env python3
"""Cost of the streaming monitor per frame, as a ratio to ``json.loads`` of the same frames.

The monitor (conformance/monitor/) runs on every received frame, so its cost is measured
the way it is used: ``StreamMonitor.feed`` on the raw text of each frame, including its own
JSON parse and the schema check of conformance.schemas (the real one when importable), for a
realistic mix built from the constructed example streams of the spec (text turns with many
small deltas, function-call turns with argument deltas, a warm-up, two interleaved lanes).
Deltas carry an ``obfuscation`` string as real OpenAI streams do.

Both sides run in the same process, interleaved repetition by repetition; the figure is the
median of the per-repetition ratios. Exit status 1 when it exceeds the target. With
``--against REV`` the monitor of that git revision runs too, in the same repetitions, and
the ratio of the current monitor to it is printed (a refactoring's cost, side by side).
``--retain live`` runs the current monitor as the proxy does (events counted, not kept).

    python bench/bench_monitor.py [--reps N] [--turns N] [--deltas N] [--target 3.0] [--against main]
                                  [--retain live]
"""
from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.monitor import StreamMonitor  # noqa: E402

EXAMPLES = ROOT / "tests" / "data" / "examples"  # the constructed streams (docs/spec.md)

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing".split()


def _load(name: str) -> list[tuple[str, dict]]:
    data = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return [("c" if f["direction"] == "client_to_server" else "s", f["message"]) for f in data["frames"]]


def _stretch(frames: list[tuple[str, dict]], n_deltas: int, tag: str) -> list[tuple[str, dict]]:
    """Rewrite one example stream: every delta run becomes ``n_deltas`` small deltas whose
    concatenation is the new .done value everywhere it appears; ids get ``tag``; sequence
    numbers are renumbered per response so the stream stays conforming."""
    out: list[tuple[str, dict]] = []
    # new values per (item_id, family): built from the first delta run seen
    pieces_by_key: dict = {}
    text = json.dumps([m for _, m in frames])
    text = text.replace("resp_example_", f"resp_{tag}_").replace("msg_example_", f"msg_{tag}_")
    text = text.replace("fc_example_", f"fc_{tag}_")
    frames = [(d, m) for (d, _), m in zip(frames, json.loads(text))]
    finals: dict = {}
    for direction, msg in frames:
        t = msg.get("type", "")
        if t.endswith(".delta") and "item_id" in msg:
            key = (msg["item_id"], t[:-6], msg.get("content_index", msg.get("summary_index", -1)))
            if key in pieces_by_key:
                continue  # the run was already expanded
            if "arguments" in t:
                body = ",".join(f'"k{i}":"{WORDS[i % len(WORDS)]}"' for i in range(n_deltas - 2))
                whole = "{" + body + "}"
                size = max(1, len(whole) // n_deltas)
                pieces = [whole[i:i + size] for i in range(0, len(whole), size)]
            else:
                pieces = [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(n_deltas)]
            pieces_by_key[key] = pieces
            finals[(msg["item_id"], t[:-6])] = "".join(pieces)
            for p in pieces:
                d = copy.copy(msg)
                d["delta"] = p
                d["obfuscation"] = "xQ3"[: 1 + len(p) % 3]
                out.append((direction, d))
            continue
        out.append((direction, msg))
    # fix the .done values, parts, items and terminal outputs
    for direction, msg in out:
        t = msg.get("type", "")
        if t.endswith(".done") and "item_id" in msg:
            v = finals.get((msg["item_id"], t[:-5]))
            if v is not None:
                msg["arguments" if "arguments" in t else "text"] = v
        for item in _items(msg):
            for (iid, fam), v in finals.items():
                if item.get("id") != iid:
                    continue
                if "arguments" in fam:
                    item["arguments"] = v
                else:
                    for part in item.get("content", []):
                        part["text"] = v
        if t == "response.content_part.done":
            v = finals.get((msg["item_id"], "response.output_text"))
            if v is not None:
                msg["part"]["text"] = v
    # renumber per response (lane): sequence numbers restart at response.created
    seq: dict = {}
    for direction, msg in out:
        if direction != "s" or "sequence_number" not in msg:
            continue
        lane = msg.get("stream_id")
        if msg["type"] == "response.created":
            seq[lane] = 0
        msg["sequence_number"] = seq.get(lane, 0)
        seq[lane] = seq.get(lane, 0) + 1
    return out


def _items(msg: dict):
    if "item" in msg and isinstance(msg["item"], dict):
        yield msg["item"]
    resp = msg.get("response")
    if isinstance(resp, dict):
        yield from resp.get("output", [])


def build_connections(turns: int, n_deltas: int) -> list[list[tuple[str, object]]]:
    """Connections as lists of ("c", event) / ("s", raw text) in wire order."""
    templates = [
        _load("stream-text-turn.json"),
        _load("stream-function-call-turn.json"),
        _load("stream-generate-false-warmup.json"),
        _load("stream-two-lanes-interleaved.json"),
    ]
    conns = []
    for c in range(max(1, turns // 6)):
        conn: list[tuple[str, object]] = []
        for k, tpl in enumerate(templates):
            for direction, msg in _stretch(tpl, n_deltas, f"c{c}t{k}"):
                conn.append((direction, msg if direction == "c" else json.dumps(msg)))
        conns.append(conn)
    return conns


def run_json(conns) -> float:
    loads = json.loads
    t0 = time.perf_counter()
    for conn in conns:
        for direction, data in conn:
            if direction == "s":
                loads(data)
    return time.perf_counter() - t0


def run_monitor(conns, schemas, monitor=StreamMonitor) -> tuple[float, int]:
    n_findings = 0
    t0 = time.perf_counter()
    for conn in conns:
        m = monitor(schemas)
        feed, sent = m.feed, m.sent
        for direction, data in conn:
            if direction == "s":
                feed(data)
            else:
                sent(data)
        n_findings += len(m.findings)
    return time.perf_counter() - t0, n_findings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--turns", type=int, default=60, help="responses per repetition (approx.)")
    ap.add_argument("--deltas", type=int, default=40, help="deltas per streamed value")
    ap.add_argument("--target", type=float, default=3.0)
    ap.add_argument("--against", metavar="REV", help="also run the monitor of this git revision, side by side")
    ap.add_argument("--retain", choices=("all", "live"), default="all",
                    help="the current monitor's retain mode (live: the proxy's)")
    args = ap.parse_args(argv)
    current = StreamMonitor if args.retain == "all" else functools.partial(StreamMonitor, retain=args.retain)
    old = None
    if args.against:
        from monitor_at import load_monitor_at

        old = load_monitor_at(args.against).StreamMonitor

    try:
        from conformance.schemas import get_schemas

        schemas = get_schemas()
        schema_note = "real conformance.schemas"
    except Exception as exc:  # pragma: no cover - depends on the checkout
        schemas = False
        schema_note = f"NO schema checks ({exc.__class__.__name__}: conformance.schemas unavailable)"

    conns = build_connections(args.turns, args.deltas)
    n_frames = sum(1 for conn in conns for d, _ in conn if d == "s")
    n_bytes = sum(len(x) for conn in conns for d, x in conn if d == "s")
    # warm-up and sanity: the mix is conforming, so the monitor must find nothing
    _, n_findings = run_monitor(conns, schemas, current)
    if n_findings:
        m = StreamMonitor(schemas)
        for d, x in conns[0]:
            m.feed(x) if d == "s" else m.sent(x)
        print("the benchmark mix is not conforming:", [(f.clause, f.message) for f in m.findings[:5]])
        return 2
    if old is not None and run_monitor(conns, schemas, old)[1]:
        print(f"the benchmark mix is not conforming for the monitor of {args.against}")
        return 2
    run_json(conns)

    ratios, t_json, t_mon, t_old = [], [], [], []
    gc_was = gc.isenabled()
    for rep in range(args.reps):
        gc.collect()
        gc.disable()
        try:
            tj = run_json(conns)
            if old is not None and rep % 2:  # alternate which monitor runs first
                t_old.append(run_monitor(conns, schemas, old)[0])
            tm, _ = run_monitor(conns, schemas, current)
            if old is not None and not rep % 2:
                t_old.append(run_monitor(conns, schemas, old)[0])
        finally:
            if gc_was:
                gc.enable()
        t_json.append(tj)
        t_mon.append(tm)
        ratios.append(tm / tj)
    ratio = statistics.median(ratios)
    per_json = statistics.median(t_json) / n_frames * 1e6
    per_mon = statistics.median(t_mon) / n_frames * 1e6
    print(f"frames per repetition: {n_frames} ({n_bytes / n_frames:.0f} bytes/frame avg), "
          f"{args.reps} repetitions, {schema_note}, retain={args.retain}")
    print(f"json.loads: {per_json:.2f} us/frame; monitor.feed: {per_mon:.2f} us/frame "
          f"(min ratio {min(ratios):.2f}x, max {max(ratios):.2f}x)")
    print(f"monitor/json.loads = {ratio:.1f}x (target <= {args.target:.1f}x)")
    if old is not None:
        per_old = statistics.median(t_old) / n_frames * 1e6
        vs = statistics.median(m / o for m, o in zip(t_mon, t_old))
        print(f"monitor of {args.against}: {per_old:.2f} us/frame "
              f"({statistics.median(o / j for o, j in zip(t_old, t_json)):.1f}x json.loads); "
              f"current/{args.against} = {vs:.3f} (median of per-repetition ratios)")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
