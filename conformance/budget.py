"""Request budgets known before the run, and a hard cap across pytest-xdist workers.

Every case declares the most requests it sends with ``@pytest.mark.max_requests(creates=N,
http=M)`` (``generated=True`` for the generated conversations: their share is
``--generated-budget``; ``plus="concurrency.max_active"`` adds a limit the profile states). The plan — the sum over the selected cases, times the tries
``--retries`` allows — is printed before the first request. With ``--max-requests N``:

=========================================  ============================================
when                                       what happens
=========================================  ============================================
a try starts                               it reserves its declared maximum from the
                                           run's shared counter
the reservation would pass N               the case is SKIPPED, reason "budget: ..."
                                           (a retry that does not fit is not run)
a case sends more than it declared         ``BudgetExceeded`` before the extra request
                                           is sent (verdict ERROR): N is never passed
the try ends                               what it did not spend goes back
=========================================  ============================================

The counter is a JSON file in the run's temporary directory, updated under a lock, like
``conformance.liveness``. No pytest import here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.client import HarnessError
from conformance.runstate import locked_json, read_json, remove

DEFAULT_CREATES = 4          # a case that declares nothing (the self-tests require a declaration)
DEFAULT_HTTP = 1
GENERATED_EMBEDDED = 800     # the generated conversations' own size against the embedded server (~560 measured)
_PLAN = "plan.txt"


class BudgetExceeded(HarnessError):
    """A case sent more requests than its ``max_requests`` mark declares (verdict ERROR)."""


@dataclass(frozen=True)
class Declared:
    creates: int
    http: int
    explicit: bool = True

    @property
    def total(self) -> int:
        return self.creates + self.http


def declared(mark: Any, generated_budget: int | None, embedded: bool, generated_default: int,
             perf_turns: int = 0, profile: Any = None) -> Declared:
    """A case's declared maximum from its ``max_requests`` mark (None: the default).
    ``perf=True``: plus ``perf_turns`` (--perf-turns x --perf-repetitions) creates and as many
    HTTP requests, the two halves of the WebSocket-vs-HTTP loop. ``plus="table.key"``: plus
    that profile number of creates (a limit the profile states, e.g. ``concurrency.max_active``)."""
    if mark is None:
        return Declared(DEFAULT_CREATES, DEFAULT_HTTP, explicit=False)
    kwargs = dict(mark.kwargs)
    plus = kwargs.pop("plus", None)
    if plus is not None:
        value = profile.get(plus) if profile is not None and isinstance(plus, str) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"max_requests plus={plus!r}: not a numeric profile key")
        kwargs["creates"] = int(kwargs.get("creates", 0)) + int(value)
    if kwargs.pop("perf", False):
        return Declared(perf_turns + int(kwargs.get("creates", 0)), perf_turns + int(kwargs.get("http", 0)))
    if kwargs.pop("generated", False):
        if generated_budget is not None:
            creates = generated_budget
        else:
            creates = generated_default if embedded else 0
        return Declared(creates + int(kwargs.get("creates", 0)), int(kwargs.get("http", 0)))
    unknown = set(kwargs) - {"creates", "http"}
    if unknown or mark.args:
        raise ValueError(f"max_requests takes creates=, http=, plus=, generated= and perf= only, not {sorted(unknown) or mark.args}")
    return Declared(int(kwargs.get("creates", 0)), int(kwargs.get("http", 0)))


def plan_line(plans: list[Declared], tries: int, cap: int | None) -> str:
    creates = sum(p.creates for p in plans) * tries
    http = sum(p.http for p in plans) * tries
    undeclared = sum(1 for p in plans if not p.explicit)
    line = (f"conformance budget: at most {creates} response.create and {http} HTTP requests "
            f"for {len(plans)} cases" + (f" ({tries} tries each at most)" if tries > 1 else ""))
    if undeclared:
        line += f"; {undeclared} case(s) declare no max_requests (counted as {DEFAULT_CREATES}+{DEFAULT_HTTP})"
    if cap is not None:
        line += f"; --max-requests {cap}: " + ("all fit" if creates + http <= cap else
                                               "cases that no longer fit are SKIPPED (budget)")
    return line


class Budget:
    """The run's request counter (shared by the workers) and this process's current case."""

    def __init__(self, path: Path, cap: int | None):
        self.path = path
        self.cap = cap
        self.allowance: Declared | None = None       # the current try's reservation
        self.used = {"creates": 0, "http": 0}

    def _locked(self):
        return locked_json(self.path, {"reserved": 0, "skipped": 0})

    def reserve(self, want: Declared) -> str | None:
        """Reserve a try's maximum; returns why not (a skip reason) when it does not fit."""
        self.used = {"creates": 0, "http": 0}
        if self.cap is None:
            self.allowance = None
            return None
        with self._locked() as state:
            if state["reserved"] + want.total > self.cap:
                state["skipped"] += 1
                self.allowance = None
                return (f"budget: needs up to {want.total} requests, {self.cap - state['reserved']} of "
                        f"--max-requests {self.cap} left")
            state["reserved"] += want.total
        self.allowance = want
        return None

    def release(self) -> None:
        """The try ended: give back what it reserved and did not spend."""
        if self.allowance is None:
            return
        unused = max(0, self.allowance.total - self.used["creates"] - self.used["http"])
        self.allowance = None
        if unused:
            with self._locked() as state:
                state["reserved"] -= unused

    def take(self, kind: str) -> None:
        """Before one request (``creates`` or ``http``): raise when the try's share is spent."""
        if self.allowance is None:
            return
        limit = self.allowance.creates if kind == "creates" else self.allowance.http
        if self.used[kind] >= limit:
            raise BudgetExceeded(f"the case declares at most {limit} {'response.create' if kind == 'creates' else 'HTTP'} "
                                 f"requests (max_requests mark) and tried to send one more; "
                                 f"--max-requests {self.cap} is never passed")
        self.used[kind] += 1

    def state(self) -> dict:
        return read_json(self.path, {"reserved": 0, "skipped": 0})

    def cleanup(self) -> None:
        remove(self.path)


def write_plan(directory: Path, line: str) -> None:
    """A worker's plan line for the controller (every worker collects the same cases)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{_PLAN}.{os.getpid()}"
    tmp.write_text(line, encoding="utf-8")
    os.replace(tmp, directory / _PLAN)


def read_plan(directory: Path) -> str | None:
    try:
        return (directory / _PLAN).read_text(encoding="utf-8")
    except OSError:
        return None


def remove_plan(directory: Path) -> None:
    try:
        (directory / _PLAN).unlink()
    except OSError:
        pass
