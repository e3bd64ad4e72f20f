"""Slow is not stuck: turn deadlines, stalled targets and the run deadline.

Implements the bounded-time rules of §1.5 (docs/spec.md, "Long silences are normal"): a
turn's deadline counts *idle* time since the last frame (``--turn-timeout``) under an overall
cap per turn (``--turn-cap``); a target whose turns keep ending by a deadline is *stalled*
and the rest of the run stops spending deadlines on it; ``--run-timeout`` bounds a whole run.

Rules (one table, read by ``Liveness``); the count is over the whole run, not only
consecutive turns, since a target that answers errors and handshakes promptly but leaves its
generating responses unfinished would otherwise never be caught:

=====================================  ===============================================
event                                  effect
=====================================  ===============================================
a turn ends by its deadline            ``deadline_turns`` + 1 (the first such case is
                                       remembered; so is whether the response started)
a turn ends otherwise                  no change (passes in between do not reset it)
``deadline_turns`` reaches STALL_AFTER stalled since the first such case: ``unanswered``
                                       when none of those responses started, else
                                       ``unfinished``
stalled ``unfinished``, then a turn    the stall becomes ``unanswered``
that got no answer by its deadline
run deadline passes                    stalled ``run-timeout``
``response.create`` while stalled      ``TargetStalled`` (verdict ERROR, no request
``unanswered`` or ``run-timeout``      sent)
a response starts while stalled        ``TargetStalled`` at once: the case needed a
``unfinished``                         generating turn; cases whose creates are
                                       refused (errors) or that send none still run
=====================================  ===============================================

The state is one small JSON file in the run's temporary directory (named after the run id
the controller hands to every pytest-xdist worker), updated under an exclusive lock, so the
count is shared by the workers. No pytest import here.
"""

from __future__ import annotations

import time
from pathlib import Path

from conformance.client import TargetStalled
from conformance.runstate import locked_json, read_json, remove

STALL_AFTER = 3          # turns ended by a deadline, over the whole run
ENDED = ("completed", "incomplete", "failed")     # turn statuses of a response that ended
TURN_CAP_FACTOR = 5      # default --turn-cap: this many idle deadlines
UNANSWERED, UNFINISHED = "unanswered", "unfinished"   # stall kinds: what no longer gets sent


class Liveness:
    """The run's liveness state: deadline endings over the run, stall, run deadline."""

    def __init__(self, path: Path, *, run_deadline: float | None = None, stall_after: int = STALL_AFTER):
        self.path = path
        self.run_deadline = run_deadline        # epoch seconds, or None
        self.stall_after = stall_after
        self.case = ""                          # the case running in this process
        self._stalled: dict | None = None       # cached once seen: a stall is final
        self.case_deadlines = 0                 # turns of this process ended by a deadline
        self.idle_limit: float | None = None    # a retry's shorter idle deadline (retry.retry_idle)

    def _locked(self):
        return locked_json(self.path, {})

    def _read(self) -> dict:
        return read_json(self.path, {})

    # --- events ----------------------------------------------------------------------------
    def turn_ended(self, status: str, started: bool = False) -> None:
        """A full turn wait ended with ``status`` (a ``client.Turn`` status); ``started``: its
        response had started (any event of it arrived) when a deadline ended it."""
        if status != "timeout":
            return
        self.case_deadlines += 1
        with self._locked() as shared:
            stall = shared.get("stalled")
            if stall:
                if stall.get("kind") == UNFINISHED and not started:
                    stall["kind"] = UNANSWERED
                    stall["message"] += "; then a create got no answer at all"
                return
            shared["deadline_turns"] = turns = int(shared.get("deadline_turns", 0)) + 1
            shared["started"] = int(shared.get("started", 0)) + bool(started)
            if not shared.get("first_case"):
                shared["first_case"] = self.case
            if turns >= self.stall_after:
                kind = UNFINISHED if shared["started"] else UNANSWERED
                what = ("responses that started and never ended" if kind == UNFINISHED
                        else "creates that got no answer")
                shared["stalled"] = {"since": shared["first_case"] or self.case, "reason": "stalled", "kind": kind,
                                     "at": round(time.time(), 3),
                                     "message": f"{turns} turns of the run got no end before their deadline ({what})"}

    def _run_timed_out(self) -> None:
        with self._locked() as shared:
            if not shared.get("stalled") or shared["stalled"].get("kind") == UNFINISHED:
                shared["stalled"] = {"since": self.case, "reason": "run-timeout", "kind": UNANSWERED,
                                     "at": round(time.time(), 3),
                                     "message": "the run deadline (--run-timeout) passed"}

    def stalled(self) -> dict | None:
        """The stall record (``since``, ``reason``, ``kind``, ``at``, ``message``), or None."""
        if self._stalled is None or self._stalled.get("kind") == UNFINISHED:   # it may still harden
            if self.run_deadline is not None and time.time() >= self.run_deadline:
                self._run_timed_out()
            self._stalled = self._read().get("stalled") or None
        return self._stalled

    def recorded(self) -> dict | None:
        """The stall as recorded by any process of the run (no deadline check): for reports."""
        return self._read().get("stalled") or None

    def check(self) -> None:
        """Before a ``response.create``: raise ``TargetStalled`` when no create may be sent."""
        stall = self.stalled()
        if stall and stall.get("kind", UNANSWERED) != UNFINISHED:
            raise TargetStalled(describe(stall))

    def started_while_stalled(self) -> None:
        """A response started: raise ``TargetStalled`` when the target does not finish them."""
        stall = self.stalled()
        if stall:
            raise TargetStalled(describe(stall))

    def remaining(self) -> float | None:
        """Seconds left before the run deadline (None: no run deadline)."""
        return None if self.run_deadline is None else max(0.0, self.run_deadline - time.time())

    def cleanup(self) -> None:
        remove(self.path)


def describe(stall: dict) -> str:
    """The ERROR message of a case that did not run because of ``stall``."""
    if stall.get("reason") == "run-timeout":
        return f"run timeout (--run-timeout) passed during {stall.get('since') or 'the run'}"
    what = "" if stall.get("kind") != UNFINISHED else "; cases that need a generating turn end here"
    return f"target stalled since {stall.get('since') or '?'} ({stall.get('message', '')}{what})"
