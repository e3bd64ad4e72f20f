"""The run context: what every request to a target answers to, carried by the ``Target``.

A ``RunContext`` holds the run's request budget (``conformance.budget.Budget``, charged before
each ``response.create`` and HTTP request), its liveness (``conformance.liveness.Liveness``,
asked before each ``response.create`` and told how each full turn ended; set only while a
conformance case runs) and its usage meter (``conformance.usage.UsageMeter``). The session
makes one per run and gives it to the targets it builds (docs/design.md "Plugin"); a target
built elsewhere (a self-test, a tool) gets an empty one: no budget, no liveness, its own meter.
Replaces the module globals ``client.METER``, ``LIVENESS`` and ``BUDGET`` (issue 16 item 2).
No I/O of its own; the budget and liveness keep their state in the run's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.usage import UsageMeter


@dataclass(eq=False)
class RunContext:
    """The run's budget, liveness and usage meter (budget and liveness None: not limited)."""

    budget: Any = None          # conformance.budget.Budget (its module imports the client)
    liveness: Any = None        # conformance.liveness.Liveness, only while a case runs
    meter: UsageMeter = field(default_factory=UsageMeter)

    def before_create(self) -> None:
        """A ``response.create`` is about to go out: refused on a stalled target
        (``TargetStalled``), charged to the budget."""
        if self.liveness is not None:
            self.liveness.check()
        self.charge("creates")

    def charge(self, kind: str) -> None:
        """Charge one request (``creates`` or ``http``) to the budget."""
        if self.budget is not None:
            self.budget.take(kind)

    def response_started(self) -> None:
        """A response started: on a target stalled with unfinished responses, stop now."""
        if self.liveness is not None:
            self.liveness.started_while_stalled()

    def turn_ended(self, status: str, *, started: bool) -> None:
        """A full turn ended with ``status`` (the liveness counts deadline endings)."""
        if self.liveness is not None:
            self.liveness.turn_ended(status, started=started)

    @property
    def idle_limit(self) -> float | None:
        """A retry's shorter idle deadline (``retry.retry_idle``), or None."""
        return getattr(self.liveness, "idle_limit", None)

    def remaining(self) -> float | None:
        """Seconds left before the run deadline, or None without one."""
        return self.liveness.remaining() if self.liveness is not None else None
