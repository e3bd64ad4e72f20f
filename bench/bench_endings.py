"""Bounded time whatever the target does (issue 21): a default run (``pytest cases --target
URL --api-key KEY``, nothing else: 60 s idle deadline, --retries 1) against a standalone
reference server behind each adversarial ending of tests/_endings.py, printing how long each
run took beside the bound, and the verdict of the clause the ending breaks.

    python bench/bench_endings.py                 # all five endings (about 5 minutes)
    python bench/bench_endings.py drop delay      # some of them

Target: every run under 300 s with FAIL on its clause. Exit status 1 when one is missed.
tests/test_endings.py runs the same endings with a 1 s idle deadline in the self-tests.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from _endings import ending_relay  # noqa: E402
from _standalone import KEY, clause_verdicts, run_cases, standalone_server  # noqa: E402
from test_endings import BROKEN  # noqa: E402

BOUND_S = 300.0
DELAY_S = 70.0          # past the 60 s idle deadline, so past every deadline that applies


def main(names: list[str]) -> int:
    names = names or list(BROKEN)
    unknown = [n for n in names if n not in BROKEN]
    if unknown:
        print(f"unknown ending(s) {', '.join(unknown)}: one of {', '.join(BROKEN)}")
        return 2
    missed = 0
    print(f"{'ending':<12} {'seconds':>8} {'bound':>6}  clause verdict")
    for name in names:
        with TemporaryDirectory() as tmp, standalone_server() as url, \
                ending_relay(url, name, delay_s=DELAY_S) as relay:
            t0 = time.monotonic()
            proc, cert, _ = run_cases(["--target", relay.url, "--api-key", KEY], Path(tmp) / "rep",
                                      timeout=BOUND_S * 3)
            took = time.monotonic() - t0
        verdict = clause_verdicts(cert).get(BROKEN[name], "?") if cert else "no certificate"
        ok = took < BOUND_S and verdict == "FAIL"
        missed += not ok
        stalled = (cert or {}).get("stalled") or {}
        print(f"{name:<12} {took:8.1f} {BOUND_S:6.0f}  {BROKEN[name]} {verdict}"
              + (f"; stalled ({stalled.get('kind')})" if stalled else "") + ("" if ok else "  MISSED"),
              flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
