#!/usr/bin/env python3
"""Cost of schema validation per frame, as a ratio to json.loads of the same frames.

The frame mix is built from the constructed streams in tests/data/examples/ (server
frames only, the ones the monitor validates): every text/argument delta is repeated with
fresh text so that each response carries --deltas deltas (real streams are mostly deltas, and
carry an `obfuscation` string), while response.created/in_progress/completed with their full
Response objects, output_item and content_part events appear once per response as in the
examples. Without the examples directory the valid server vectors of schemas/vectors/ are used.

json.loads(text) and SchemaSet.is_valid(parsed) are timed side by side in one run, in
interleaved repetitions; the median of each is compared. Exit status 1 when the ratio is above
the target (default 2.0).

    python bench/bench_schemas.py [--deltas 40] [--reps 21] [--target 2.0]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from conformance.schemas import get_schemas  # noqa: E402

EXAMPLES = REPO / "tests" / "data" / "examples"
WORDS = "the quick brown fox jumps over a lazy dog while streaming tokens arrive one by one".split()


def frames_from_examples(deltas_per_response: int) -> list[dict]:
    out: list[dict] = []
    for path in sorted(EXAMPLES.glob("stream-*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        server = [f["message"] for f in doc["frames"] if f["direction"] == "server_to_client"]
        for msg in server:
            if msg["type"].endswith(".delta"):
                continue  # re-added below, scaled
            out.append(msg)
            if msg["type"] == "response.content_part.added" or (
                    msg["type"] == "response.output_item.added" and msg["item"].get("type") != "message"):
                template = next((m for m in server if m["type"].endswith(".delta")
                                 and m.get("item_id") == msg.get("item_id", msg.get("item", {}).get("id"))), None)
                if template is None:
                    continue
                for i in range(deltas_per_response):
                    d = dict(template, delta=" " + WORDS[i % len(WORDS)], obfuscation="x7Qa" * (1 + i % 3),
                             sequence_number=template["sequence_number"] + i)
                    out.append(d)
    return out


def frames_from_vectors() -> list[dict]:
    out = []
    for path in sorted((REPO / "schemas" / "vectors" / "server").glob("*.json")):
        out += [v["instance"] for v in json.loads(path.read_text(encoding="utf-8")) if v["valid"]]
    return out


def category(t: str) -> str:
    if t.endswith(".delta"):
        return "delta"
    if t in ("response.created", "response.in_progress", "response.completed", "response.failed",
             "response.incomplete", "response.queued"):
        return "response lifecycle (full Response)"
    return "other (items, parts, .done, errors)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deltas", type=int, default=40, help="deltas per streamed content part (default 40)")
    ap.add_argument("--reps", type=int, default=21, help="interleaved repetitions (default 21)")
    ap.add_argument("--target", type=float, default=2.0, help="maximum validation/json.loads ratio (default 2.0)")
    args = ap.parse_args()

    schemas = get_schemas()
    if EXAMPLES.is_dir():
        events, source = frames_from_examples(args.deltas), f"{EXAMPLES} (deltas scaled to {args.deltas} per part)"
    else:
        events, source = frames_from_vectors(), "schemas/vectors (examples directory not found)"
    texts = [json.dumps(e, ensure_ascii=False) for e in events]
    parsed = [json.loads(t) for t in texts]
    bad = [e["type"] for e in parsed if not schemas.is_valid(e)]
    if bad:
        print(f"warning: {len(bad)} frame(s) of the mix are invalid: {sorted(set(bad))}")

    loads, is_valid = json.loads, schemas.is_valid
    n_inner = max(1, 20000 // len(texts))

    def time_loads() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n_inner):
            for t in texts:
                loads(t)
        return (time.perf_counter_ns() - t0) / (n_inner * len(texts))

    def time_valid(subset=parsed) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n_inner):
            for e in subset:
                is_valid(e)
        return (time.perf_counter_ns() - t0) / (n_inner * len(subset))

    time_loads(), time_valid()  # warm-up
    l_ns, v_ns = [], []
    for rep in range(args.reps):
        order = (time_loads, time_valid) if rep % 2 == 0 else (time_valid, time_loads)
        for fn in order:
            gc.collect()
            (l_ns if fn is time_loads else v_ns).append(fn())
    l_med, v_med = statistics.median(l_ns), statistics.median(v_ns)
    ratio = v_med / l_med

    cats: dict[str, list[int]] = {}
    for i, e in enumerate(parsed):
        cats.setdefault(category(e["type"]), []).append(i)
    size = sum(map(len, texts))
    print(f"frames: {len(texts)} from {source}; mean frame {size / len(texts):.0f} bytes")
    for name, idx in sorted(cats.items()):
        sub_texts, sub = [texts[i] for i in idx], [parsed[i] for i in idx]
        t0 = time.perf_counter_ns()
        for _ in range(n_inner):
            for t in sub_texts:
                loads(t)
        lt = (time.perf_counter_ns() - t0) / (n_inner * len(sub))
        vt = time_valid(sub)
        print(f"  {name:38s} {len(idx):5d} frames  json.loads {lt / 1000:7.2f} us  is_valid {vt / 1000:7.2f} us  ({vt / lt:.2f}x)")
    print(f"per frame (median of {args.reps}): json.loads {l_med / 1000:.2f} us, is_valid {v_med / 1000:.2f} us")
    verdict = "OK" if ratio <= args.target else "OVER TARGET"
    print(f"validation/json.loads = {ratio:.2f}x (target <= {args.target:.1f}x) {verdict}")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
