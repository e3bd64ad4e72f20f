#!/usr/bin/env python3
"""What the monitor says about real recorded api.openai.com streams (tests/data/recorded/).

Each recorded stream (HTTP SSE; its event payloads are the WebSocket payloads, spec §3.2 in
docs/spec.md) is replayed through one ``StreamMonitor`` with the real schema set and the
leniencies of a profile's ``[stream]`` keys (``--profile``, default ``openai``): one
``response.create`` is sent first (model, ``background`` and ``previous_response_id`` taken
from the stream's own ``response.created``), then every recorded event as one text frame,
then ``finish()``. The report lists, per stream, the findings by clause and kind, and a
summary: which clauses real production traffic triggers and in how many streams. These are
the deviations of production from our rules (§4.3 items 11, 16b; §3 field tables) that the
monitor must learn to tolerate or report at the right level; see tests/data/recorded/README.md.

    python bench/corpus_report.py [--dir DIR] [--profile NAME] [--messages] [--json]

Exit status 0 (a report, not a gate); 2 when the corpus cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.monitor import StreamMonitor  # noqa: E402
from conformance.schemas import get_schemas  # noqa: E402
from conformance.target import ProfileError, load_profile  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "recorded"


def load_corpus(directory: Path = CORPUS) -> list[tuple[str, dict]]:
    """(stem, document) of every recorded stream, sorted by name."""
    return [(p.stem, json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(directory.glob("*.json"))]


def replay_create(events: list) -> dict:
    """The ``response.create`` the recorded stream answers, as far as the stream tells it."""
    created = next((e.get("response") for e in events
                    if e.get("type") == "response.created" and isinstance(e.get("response"), dict)), {})
    create = {"type": "response.create", "model": created.get("model") or "unknown",
              "input": "(recorded stream)"}
    for key in ("background", "previous_response_id"):
        if created.get(key):
            create[key] = created[key]
    return create


def replay(doc: dict, schemas, **leniencies: str) -> StreamMonitor:
    """A monitor that has seen one create and the recorded events of ``doc``."""
    mon = StreamMonitor(schemas=schemas, **leniencies)
    mon.sent(replay_create(doc["events"]))
    for ev in doc["events"]:
        mon.feed(json.dumps(ev))
    mon.finish()
    return mon


def tally(mon: StreamMonitor) -> Counter:
    """Findings counted by (clause, kind)."""
    return Counter((f.clause, f.kind) for f in mon.findings)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=CORPUS, help="corpus directory (default: %(default)s)")
    ap.add_argument("--profile", default="openai", help="profile whose [stream] leniencies apply (default openai)")
    ap.add_argument("--messages", action="store_true", help="print the first message of each clause")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    try:
        corpus = load_corpus(args.dir)
    except (OSError, ValueError) as exc:
        print(f"corpus_report: cannot read {args.dir}: {exc}", file=sys.stderr)
        return 2
    if not corpus:
        print(f"corpus_report: no *.json streams in {args.dir}", file=sys.stderr)
        return 2
    try:
        leniencies = load_profile(args.profile).monitor_options()
    except ProfileError as exc:
        print(f"corpus_report: {exc}", file=sys.stderr)
        return 2
    schemas = get_schemas()
    per_stream: dict[str, Counter] = {}
    firsts: dict[str, dict[str, str]] = {}
    internal: dict[str, list] = {}
    for name, doc in corpus:
        mon = replay(doc, schemas, **leniencies)
        per_stream[name] = tally(mon)
        firsts[name] = {}
        for f in mon.findings:
            firsts[name].setdefault(f.clause, f.message)
        if mon.internal_errors:
            internal[name] = mon.internal_errors
    if args.json:
        print(json.dumps({n: [{"clause": c, "kind": k, "count": v} for (c, k), v in sorted(t.items())]
                          for n, t in per_stream.items()}, indent=1))
        return 0
    width = max(len(n) for n in per_stream)
    for name, t in per_stream.items():
        violations = sum(v for (c, k), v in t.items() if k == "violation")
        print(f"{name:<{width}}  {violations:4d} violation finding(s)")
        for (clause, kind), count in sorted(t.items()):
            line = f"    {clause:<34} {kind:<10} {count:4d}"
            if args.messages:
                line += f"  {firsts[name][clause][:110]}"
            print(line)
        for err in internal.get(name, []):
            print(f"    INTERNAL ERROR {err}")
    summary: dict[tuple, list] = {}
    for name, t in per_stream.items():
        for (clause, kind), count in t.items():
            summary.setdefault((clause, kind), []).append(count)
    clean = sum(1 for t in per_stream.values() if not any(k == "violation" for (_, k) in t))
    print(f"\nsummary: {len(per_stream)} recorded streams, {clean} without a violation finding")
    print(f"{'clause':<34} {'kind':<10} {'streams':>7} {'findings':>8}")
    for (clause, kind), counts in sorted(summary.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"{clause:<34} {kind:<10} {len(counts):7d} {sum(counts):8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
