"""Deterministic random mutations of the example streams (tests/data/examples/stream-*.json)
for the monitor's differential fuzz (bench/fuzz_monitor_diff.py) and its golden regression
test (tests/test_monitor_golden.py): drop, duplicate, swap or move frames; change, delete or
retype fields; renumber sequence numbers; change ids and lanes; binary, SSE and non-JSON
frames. Changing a mutation changes the golden file: regenerate it (see that test).
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"


# values a mutated field may take: other types, edge numbers, ids and lanes seen elsewhere
VALUES = [None, True, 0, 1, -1, 2, 7, 1.5, "", "x", "resp_other", "msg_other", "lane-b", "a" * 257,
          [], [1], {}, {"id": "resp_x"}, "response.completed", "in_progress"]
# values JSON parsers disagree on (integers past 64 bits, NaN and Infinity, a lone surrogate):
# the differential fuzz adds them (bench/fuzz_monitor_diff.py --exotic); the golden set does not
EXOTIC = [2 ** 64, -(2 ** 63) - 1, 10 ** 30, 2 ** 64 + 1, float("nan"), float("inf"), "\ud800", 1e300]
LANES = [None, "", "lane-a", "lane-b", "bad lane!", 5]


def load_example(name: str) -> list[tuple[str, object]]:
    """An example stream as (direction, message): "c" client, "s" server."""
    data = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return [("c" if f["direction"] == "client_to_server" else "s", f["message"]) for f in data["frames"]]


def stream_names() -> list[str]:
    names = sorted(p.name for p in EXAMPLES.glob("stream-*.json"))
    if not names:
        raise FileNotFoundError(f"no example streams in {EXAMPLES}")
    return names


def load_streams() -> list[list[tuple[str, object]]]:
    return [load_example(name) for name in stream_names()]


def _server(frames) -> list[int]:
    return [i for i, (d, m) in enumerate(frames) if d == "s" and isinstance(m, dict)]


def _set_lane(msg: dict, lane: object) -> None:
    if lane is None:
        msg.pop("stream_id", None)
    else:
        msg["stream_id"] = lane


def mutate(frames: list, rng: random.Random, values: list = VALUES) -> list:
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
            msg[rng.choice(sorted(msg))] = rng.choice(values)
        elif op == 5 and msg:
            del msg[rng.choice(sorted(msg))]
        elif op == 6:
            seq = msg.get("sequence_number")
            msg["sequence_number"] = (seq if type(seq) is int else 0) + rng.choice((-2, -1, 1, 2, 5))
        elif op == 7:
            _set_lane(msg, rng.choice(LANES))
        elif op == 8:
            obj = msg.get("response") or msg.get("item") or msg.get("part") or msg
            if isinstance(obj, dict) and obj:
                obj[rng.choice(sorted(obj))] = rng.choice(values)
        elif op == 9:
            for key in ("item_id", "output_index", "content_index", "summary_index"):
                if key in msg:
                    msg[key] = rng.choice(values)
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
                    _set_lane(create, rng.choice(LANES))
        elif op == 12:
            frames.insert(i, ("s", {"type": rng.choice(("response.done", "codex.rate_limits", "x.unknown")),
                                    "sequence_number": msg.get("sequence_number")}))
        else:
            msg["type"] = rng.choice(("error", "response.created", "response.in_progress", "response.completed",
                                      "response.output_item.done", "response.output_text.delta"))
    return frames




def play(monitor, frames) -> list:
    """Feed ``frames`` ((direction, message) pairs; "c" sent, "s" a server event, else raw text)
    to ``monitor`` and finish it; what each server frame's ``feed`` returned."""
    observed = []
    for direction, msg in frames:
        if direction == "c":
            monitor.sent(msg)
        elif direction == "s":
            observed.append(monitor.feed(json.dumps(msg)))
        else:
            observed.append(monitor.feed(msg))
    monitor.finish()
    return observed


def outcome(mod, frames, schemas) -> dict:
    """Everything the monitor says about a stream, as comparable data."""
    m = mod.StreamMonitor(schemas)
    obs = play(m, frames)

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


GOLDEN_SEED = 7
GOLDEN_STREAMS = 300


def golden_streams() -> list:
    """The example streams and GOLDEN_STREAMS mutations of them (seed GOLDEN_SEED)."""
    bases = load_streams()
    rng = random.Random(GOLDEN_SEED)
    return bases + [mutate(rng.choice(bases), rng) for _ in range(GOLDEN_STREAMS)]


def golden(mod: Any) -> dict:
    """What ``mod`` (a monitor module) says about the golden streams, grammar only, compactly:
    findings without their text (a hash of all texts per stream instead), each request's
    state, and the request of every frame."""
    streams = []
    for frames in golden_streams():
        o = outcome(mod, frames, False)
        texts = "\n".join(f[1] for f in o["findings"]) + "\n" + "\n".join(o["notes"])
        streams.append({
            "findings": [[c, k, i, r, p] for c, _m, k, i, r, p in o["findings"]],
            "texts": hashlib.sha256(texts.encode()).hexdigest()[:12],
            "requests": [[r[3], r[4], r[5], r[6], len(r[10])] for r in o["requests"]],
            "frames": [f[1] for f in o["frames"]],
            "connection_errors": len(o["connection_errors"]),
            "unattributed": len(o["unattributed"]),
        })
    return {"seed": GOLDEN_SEED, "streams": streams}
