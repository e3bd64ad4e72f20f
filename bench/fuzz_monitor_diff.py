#!/usr/bin/env python3
"""Differential fuzz of the streaming monitor: the monitor at a git revision against the
working tree's, on mutated example streams (tests/data/examples/stream-*.json).

Each stream is mutated deterministically (drop, duplicate, swap or move frames; change,
delete or retype fields; renumber sequence numbers; change ids and lanes; binary, SSE and
non-JSON frames) and fed to both monitors, with the grammar alone and with the real schemas.
Findings, request states and attribution (which frame went to which request) must be equal.
Exit status 1 on the first difference (printed with the stream that shows it).

    python bench/fuzz_monitor_diff.py [--rev main] [--streams 3000] [--seed 1]
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import conformance.monitor as current  # noqa: E402
from monitor_at import load_monitor_at  # noqa: E402

EXAMPLES = ROOT / "tests" / "data" / "examples"

# values a mutated field may take: other types, edge numbers, ids and lanes seen elsewhere
VALUES = [None, True, 0, 1, -1, 2, 7, 1.5, "", "x", "resp_other", "msg_other", "lane-b", "a" * 257,
          [], [1], {}, {"id": "resp_x"}, "response.completed", "in_progress"]
LANES = [None, "", "lane-a", "lane-b", "bad lane!", 5]


def load_streams() -> list[list[tuple[str, object]]]:
    paths = sorted(EXAMPLES.glob("stream-*.json"))
    if not paths:
        raise SystemExit(f"no example streams in {EXAMPLES}")
    out = []
    for p in paths:
        data = json.loads(p.read_text(encoding="utf-8"))
        out.append([("c" if f["direction"] == "client_to_server" else "s", f["message"]) for f in data["frames"]])
    return out


def _server(frames) -> list[int]:
    return [i for i, (d, m) in enumerate(frames) if d == "s" and isinstance(m, dict)]


def mutate(frames: list, rng: random.Random) -> list:
    """One to four random mutations of a stream (a deep copy)."""
    frames = copy.deepcopy(frames)
    for _ in range(rng.randint(1, 4)):
        srv = _server(frames)
        if not srv:
            break
        i = rng.choice(srv)
        msg = frames[i][1]
        op = rng.randrange(14)
        if op == 0:
            del frames[i]
        elif op == 1:
            frames.insert(i, (frames[i][0], copy.deepcopy(msg)))
        elif op == 2 and i + 1 < len(frames):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        elif op == 3:
            frames.insert(rng.randrange(len(frames) + 1), frames.pop(i))
        elif op == 4 and msg:
            msg[rng.choice(sorted(msg))] = rng.choice(VALUES)
        elif op == 5 and msg:
            del msg[rng.choice(sorted(msg))]
        elif op == 6:
            seq = msg.get("sequence_number")
            msg["sequence_number"] = (seq if type(seq) is int else 0) + rng.choice((-2, -1, 1, 2, 5))
        elif op == 7:
            lane = rng.choice(LANES)
            if lane is None:
                msg.pop("stream_id", None)
            else:
                msg["stream_id"] = lane
        elif op == 8:
            obj = msg.get("response") or msg.get("item") or msg.get("part") or msg
            if isinstance(obj, dict) and obj:
                obj[rng.choice(sorted(obj))] = rng.choice(VALUES)
        elif op == 9:
            for key in ("item_id", "output_index", "content_index", "summary_index"):
                if key in msg:
                    msg[key] = rng.choice(VALUES)
                    break
        elif op == 10:
            frames[i] = ("raw", rng.choice((json.dumps(msg).encode(), b"\xff\xfe",
                                            "data: " + json.dumps(msg) + "\n\n", "data: [DONE]", "[DONE]",
                                            "not json", json.dumps([msg]), json.dumps({"type": 3}))))
        elif op == 11:
            c = [j for j, (d, _) in enumerate(frames) if d == "c"]
            if c:
                j = rng.choice(c)
                create = frames[j][1]
                if isinstance(create, dict):
                    lane = rng.choice(LANES)
                    if lane is None:
                        create.pop("stream_id", None)
                    else:
                        create["stream_id"] = lane
        elif op == 12:
            frames.insert(i, ("s", {"type": rng.choice(("response.done", "codex.rate_limits", "x.unknown")),
                                    "sequence_number": msg.get("sequence_number")}))
        else:
            msg["type"] = rng.choice(("error", "response.created", "response.in_progress", "response.completed",
                                      "response.output_item.done", "response.output_text.delta"))
    return frames


def outcome(mod, frames, schemas) -> dict:
    """Everything the monitor says about a stream, as comparable data."""
    m = mod.StreamMonitor(schemas)
    obs = []
    for d, msg in frames:
        if d == "c":
            m.sent(msg)
        elif d == "s":
            obs.append(m.feed(json.dumps(msg)))
        else:
            obs.append(m.feed(msg))
    m.finish()

    def fs(lst):
        return [(f.clause, f.message, f.kind, f.frame_index, f.response_id, f.pointer) for f in lst]

    return {
        "findings": fs(m.findings),
        "frames": [(o.index, o.request, o.message, fs(o.findings)) for o in obs],
        "requests": [(r.index, r.create, r.lane, r.response_id, str(r.state), r.terminal_type, r.origin,
                      r.error, r.response, r.created, r.events, fs(r.findings)) for r in m.requests],
        "connection_errors": m.connection_errors,
        "unattributed": m.unattributed,
        "notes": m.notes,
        "internal_errors": m.internal_errors,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="main", help="git revision of the old monitor (default: main)")
    ap.add_argument("--streams", type=int, default=3000, help="mutated streams per schema mode")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    old = load_monitor_at(args.rev)
    from conformance.schemas import get_schemas

    bases = load_streams()
    compared = findings = 0
    for schemas, label in ((False, "grammar only"), (get_schemas(), "real schemas")):
        rng = random.Random(args.seed)
        streams = [b for b in bases] + [mutate(rng.choice(bases), rng) for _ in range(args.streams)]
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
