#!/usr/bin/env python3
"""Differential fuzz of the streaming monitor: the monitor at a git revision against the
working tree's, on mutated example streams (tests/data/examples/stream-*.json).

Each stream is mutated deterministically (drop, duplicate, swap or move frames; change,
delete or retype fields; renumber sequence numbers; change ids and lanes; binary, SSE and
non-JSON frames; values JSON parsers disagree on) and fed to both monitors, with the grammar
alone and with the real schemas.
Findings, request states and attribution (which frame went to which request) must be equal.
Exit status 1 on the first difference (printed with the stream that shows it).

    python bench/fuzz_monitor_diff.py [--rev main] [--streams 3000] [--seed 1]
    python bench/fuzz_monitor_diff.py --rev main --write-golden tests/data/monitor_golden.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import conformance.monitor as current  # noqa: E402
from monitor_at import load_monitor_at  # noqa: E402
from tests.monitor_mutations import EXOTIC, VALUES, golden, load_streams, mutate, outcome  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="main", help="git revision of the old monitor (default: main)")
    ap.add_argument("--streams", type=int, default=3000, help="mutated streams per schema mode")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write-golden", metavar="FILE",
                    help="instead: write the --rev monitor's findings on the golden streams to FILE "
                         "(tests/data/monitor_golden.json)")
    args = ap.parse_args(argv)
    old = load_monitor_at(args.rev)
    if args.write_golden:
        data = golden(old)
        Path(args.write_golden).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{len(data['streams'])} streams written to {args.write_golden} (monitor of {args.rev})")
        return 0
    from conformance.schemas import get_schemas

    bases = load_streams()
    compared = findings = 0
    for schemas, label in ((False, "grammar only"), (get_schemas(), "real schemas")):
        rng = random.Random(args.seed)
        values = VALUES + EXOTIC
        streams = [b for b in bases] + [mutate(rng.choice(bases), rng, values) for _ in range(args.streams)]
        for n, frames in enumerate(streams):
            a, b = outcome(old, frames, schemas), outcome(current, frames, schemas)
            if a != b:
                diff = [k for k in a if a[k] != b[k]]
                print(f"DIFFERENT ({label}, stream {n}): {diff}")
                for k in diff:
                    print(f"  {args.rev}: {str(a[k])[:600]}\n  working tree: {str(b[k])[:600]}")
                print("stream:", json.dumps([(d, m if not isinstance(m, bytes) else repr(m)) for d, m in frames])[:3000])
                return 1
            compared += 1
            findings += len(a["findings"])
    print(f"{compared} streams compared ({args.streams} mutated + {len(bases)} examples, x2 schema modes), "
          f"{findings} findings: identical findings, states and attribution to {args.rev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
