"""Slow is not stuck: turn deadlines, stalled targets and the run deadline.

Implements the bounded-time rules of §1.5 (docs/spec.md, "Long silences are normal"): a
turn's deadline counts *idle* time since the last frame (``--turn-timeout``) under an overall
cap per turn (``--turn-cap``); a target whose turns keep ending by a deadline is *stalled*
and the rest of the run stops spending deadlines on it; ``--run-timeout`` bounds a whole run.

Rules (one table, read by ``Liveness``):

=====================================  ===============================================
event                                  effect
=====================================  ===============================================
a turn ends by its deadline            ``consecutive`` + 1 (first such case remembered)
a turn ends with a terminal event      ``consecutive`` = 0 (the target finishes responses)
a turn ends with an error or a close   no change (a rejection proves no liveness)
``consecutive`` reaches STALL_AFTER    target stalled since the first of those cases
run deadline passes                    target stalled ("run timeout")
``response.create`` while stalled      ``TargetStalled`` (verdict ERROR, no request sent)
=====================================  ===============================================

The state is one small JSON file in the run's temporary directory (named after the run id
the controller hands to every pytest-xdist worker), updated under an exclusive lock, so the
count is consecutive across workers. No pytest import here.
"""

from __future__ import annotations

import time
from pathlib import Path

from conformance.client import TargetStalled
from conformance.runstate import locked_json, read_json, remove

STALL_AFTER = 3          # consecutive turns ended by a deadline
ENDED = ("completed", "incomplete", "failed")     # turn statuses of a response that ended
TURN_CAP_FACTOR = 5      # default --turn-cap: this many idle deadlines


class Liveness:
    """The run's liveness state: consecutive deadline endings, stall, run deadline."""

    def __init__(self, path: Path, *, run_deadline: float | None = None, stall_after: int = STALL_AFTER):
        self.path = path
        self.run_deadline = run_deadline        # epoch seconds, or None
        self.stall_after = stall_after
        self.case = ""                          # the case running in this process
        self._stalled: dict | None = None       # cached once seen: a stall is final

    def _locked(self):
        return locked_json(self.path, {})

    def _read(self) -> dict:
        return read_json(self.path, {})

    # --- events ----------------------------------------------------------------------------
    def turn_ended(self, status: str) -> None:
        """A full turn wait ended with ``status`` (a ``client.Turn`` status)."""
        if status not in ("timeout",) + ENDED:
            return
        with self._locked() as st:
            if st.get("stalled"):
                return
            if status in ENDED:
                if st.get("consecutive"):
                    st["consecutive"], st["first_case"] = 0, ""
                return
            st["consecutive"] = int(st.get("consecutive", 0)) + 1
            st.setdefault("first_case", "")
            if not st["first_case"]:
                st["first_case"] = self.case
            if st["consecutive"] >= self.stall_after:
                st["stalled"] = {"since": st["first_case"] or self.case, "reason": "stalled",
                                 "at": round(time.time(), 3),
                                 "message": f"{st['consecutive']} turns in a row got no end before their deadline"}

    def _run_timed_out(self) -> None:
        with self._locked() as st:
            if not st.get("stalled"):
                st["stalled"] = {"since": self.case, "reason": "run-timeout", "at": round(time.time(), 3),
                                 "message": "the run deadline (--run-timeout) passed"}

    def stalled(self) -> dict | None:
        """The stall record (``since``, ``reason``, ``at``, ``message``), or None."""
        if self._stalled is None:
            if self.run_deadline is not None and time.time() >= self.run_deadline:
                self._run_timed_out()
            self._stalled = self._read().get("stalled") or None
        return self._stalled

    def recorded(self) -> dict | None:
        """The stall as recorded by any process of the run (no deadline check): for reports."""
        return self._read().get("stalled") or None

    def check(self) -> None:
        """Before a ``response.create``: raise ``TargetStalled`` when the run must stop."""
        st = self.stalled()
        if st:
            raise TargetStalled(describe(st))

    def remaining(self) -> float | None:
        """Seconds left before the run deadline (None: no run deadline)."""
        return None if self.run_deadline is None else max(0.0, self.run_deadline - time.time())

    def cleanup(self) -> None:
        remove(self.path)


def describe(stall: dict) -> str:
    """The ERROR message of a case that did not run because of ``stall``."""
    if stall.get("reason") == "run-timeout":
        return f"run timeout (--run-timeout) passed during {stall.get('since') or 'the run'}"
    return f"target stalled since {stall.get('since') or '?'} ({stall.get('message', '')})"
