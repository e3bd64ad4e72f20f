"""What the plugin knows about one running case: its recorder, connections, tries and verdict
(docs/design.md "Plugin"). Plain data with no hooks; ``conformance.plugin`` fills it in and the
reports and the allure integration read it through :func:`case_state`. ``Verdict`` is the
case's handle on it (the ``verdict``/``expect`` fixture)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance import verdicts
from conformance.client import Connection

CASE_KEY = pytest.StashKey["CaseState"]()


@dataclass
class CaseState:
    recorder: verdicts.CaseRecorder
    clauses: tuple[str, ...]
    connections: list[Connection] = field(default_factory=list)
    spent_before: dict = field(default_factory=dict)   # the run meter's snapshot at its start
    verdict: str | None = None
    messages: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    collected: bool = False             # this try's monitor findings are in the recorder
    judged: bool = False                # this try has its verdict
    flaky: bool = False
    tries: list[dict] = field(default_factory=list)     # earlier tries (with --retries)
    declared: Any = None                # its max_requests (conformance.budget.Declared)
    known: dict | None = None           # the baseline entries that made it KNOWN
    blocked: bool = False                # the target's safety system refused a turn (§3.10)
    perf: dict | None = None     # the perf case's figures (conformance/perf.py), for the certificate

    def transcripts(self, limit: int = 400) -> str:
        return "\n\n".join(c.transcript_text(limit) for c in self.connections)

    def keep_try(self, exc: BaseException | None, **retry: Any) -> None:
        """Remember the try that just ended (verdict, messages, failed clauses, transcript;
        ``retry``: its transient reason and the backoff after it, conformance.retry)."""
        rec = self.recorder
        self.tries.append({k: v for k, v in retry.items() if v is not None} | {
            "exc": exc, "recorder": rec, "connections": self.connections, "own_messages": self.messages,
            "verdict": self.verdict or verdicts.PASS,
            "messages": [rec.redact(m) for m in dict.fromkeys(self.messages + rec.errors)][:20],
            "failed_clauses": sorted({o.clause for o in rec.failures(verdicts.NON_STRICT)}),
            "observations": [o.as_dict() for o in rec.observations][:200],
            "transcript": rec.redact(self.transcripts())[-100_000:],
        })

    def restore(self, kept: dict) -> None:
        """Make an earlier try the case's outcome again."""
        self.recorder, self.connections, self.messages = kept["recorder"], kept["connections"], kept["own_messages"]
        self.verdict, self.collected, self.judged = kept["verdict"], True, True

    def next_try(self, exc: BaseException | None, **retry: Any) -> None:
        """Keep the try that ended and start another on fresh connections."""
        self.keep_try(exc, **retry)
        for conn in self.connections:
            conn.close()
        rec = self.recorder
        self.recorder = verdicts.CaseRecorder(rec.registry, rec.clauses, rec.redact)
        self.connections, self.messages = [], []
        self.verdict, self.collected, self.judged = None, False, False


def case_state(item: pytest.Item) -> CaseState | None:
    """The conformance state of a case (None for an item that is not a case)."""
    return item.stash.get(CASE_KEY, None)


class Verdict:
    """The case's verdict handle: ``verdict.expect(...)``, ``verdict.unsupported(reason)``,
    ``verdict.info(message)``. Calling it is ``expect``."""

    def __init__(self, state: CaseState):
        self._state = state

    def __call__(self, clause_id: str, condition: Any, evidence: Any = None, message: str = "") -> bool:
        __tracebackhide__ = True
        return self._state.recorder.expect(clause_id, condition, evidence, message)

    expect = __call__

    def unsupported(self, reason: str) -> None:
        """The target answered that it does not support the feature: UNSUPPORTED (skip)."""
        pytest.skip(f"UNSUPPORTED: {self._state.recorder.redact(reason)}")

    def info(self, message: str, clause_id: str = "") -> None:
        self._state.recorder.info(message, clause_id)
