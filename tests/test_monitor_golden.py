"""Golden regression of the monitor: its findings (clause, kind, frame, response, pointer, and
a hash of their texts), request states and frame attribution on the example streams and 300
deterministic mutations of them (tests/monitor_mutations.py), grammar only, equal to those
the monitor gave before it became a package (tests/data/monitor_golden.json).

A deliberate change of the monitor's verdicts updates the file, after review of the diff:
``python bench/fuzz_monitor_diff.py --rev HEAD --write-golden tests/data/monitor_golden.json``
(with HEAD the commit carrying the change).
"""
from __future__ import annotations

import json
from pathlib import Path

import conformance.monitor as monitor
from monitor_mutations import GOLDEN_SEED, golden

GOLDEN = Path(__file__).resolve().parent / "data" / "monitor_golden.json"


def test_monitor_matches_the_golden_findings():
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert want["seed"] == GOLDEN_SEED
    got = golden(monitor)
    assert len(got["streams"]) == len(want["streams"]) > 300
    for n, (g, w) in enumerate(zip(got["streams"], want["streams"])):
        assert g == w, f"stream {n} of the golden set: {json.dumps(g)[:800]} != {json.dumps(w)[:800]}"
