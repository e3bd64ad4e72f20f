"""What a case's pytest reports carry: its verdict after each phase, its transcripts on a
non-pass, and at teardown its record (``conformance.caserecord.CaseRecord``, which the
certificate, baseline, JUnit, allure and diff read; docs/design.md "Reports",
docs/certificate.md). ``conformance.plugin`` calls :func:`annotate` from
``pytest_runtest_makereport``; the records travel to the controller on the teardown reports
(pytest-xdist), as ``CaseRecord.to_dict``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from conformance import drift
from conformance import judging
from conformance import retry
from conformance import verdicts
from conformance.caserecord import CaseRecord, KnownRecord, TryRecord
from conformance.casestate import CaseState
from conformance.runcontext import RunContext

TRANSCRIPT_VERDICTS = (verdicts.FAIL, verdicts.ERROR, verdicts.NON_STRICT, retry.FLAKY)


def annotate(item: pytest.Item, state: CaseState, report: Any, run: RunContext) -> None:
    """Fold one phase's report into the case's state, and give the report the verdict (and,
    at teardown, the case's record)."""
    if report.skipped and report.when in ("setup", "call"):   # slow, unsupported clause, verdict.unsupported
        reason = skip_reason(report)
        state.verdict = verdicts.UNSUPPORTED if reason.startswith(verdicts.UNSUPPORTED) else verdicts.SKIPPED
        state.messages.append(reason)
    if report.when == "setup":
        if report.failed:
            state.verdict = verdicts.ERROR
            state.messages.append("ERROR in setup: " + state.recorder.redact(short(report)))
    elif report.when == "call":
        if report.failed and state.verdict in TRANSCRIPT_VERDICTS:
            if state.connections or state.tries:
                report.sections.append(("conformance transcript", all_transcripts(state)))
        judging.apply_baseline(item, state, report)
        report.conformance_verdict = state.verdict
    elif report.when == "teardown":
        if report.failed and state.verdict != verdicts.FAIL:
            state.verdict = verdicts.ERROR
            state.messages.append("ERROR in teardown: " + state.recorder.redact(short(report)))
        record = case_record(item.nodeid, state, run)
        report.conformance_record = record.to_dict()     # JSON-able: it travels from an xdist worker
        report.conformance_verdict = record.verdict
        report.user_properties.append(("conformance_clauses", " ".join(state.clauses)))
        report.user_properties.append(("conformance_verdict", record.verdict))


def short(report: Any) -> str:
    """The gist of a failed phase: its ``E`` lines, else its last three lines."""
    text = str(getattr(report, "longreprtext", "") or "")
    lines = [line for line in text.splitlines() if line.startswith("E ")] or text.splitlines()[-3:]
    return " ".join(line.strip() for line in lines)[:400]


def skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def case_record(nodeid: str, state: CaseState, run: RunContext) -> CaseRecord:
    """The case's record: verdict, clauses, messages, observations, usage (its share of
    ``run.meter``), tries, transcript on a non-pass."""
    recorder = state.recorder
    verdict = state.verdict or verdicts.PASS
    if verdict == verdicts.PASS and recorder.observations:
        verdict = recorder.verdict()
    messages = list(state.messages)
    for obs in recorder.failures(verdicts.NON_STRICT):
        messages.append(f"{obs.verdict} {obs.clause}: {obs.message}" + (f" [{obs.evidence}]" if obs.evidence else ""))
    messages.extend(recorder.errors)
    transcript = ""
    if verdict in TRANSCRIPT_VERDICTS and (state.connections or state.tries):
        transcript = all_transcripts(state)[-200_000:]
    conns = {id(c): c for c in [*(c for t in state.tries for c in t["connections"]), *state.connections]}
    in_place = [reason for conn in conns.values() for reason in getattr(conn, "retried_in_place", ())]
    record = CaseRecord(
        nodeid=nodeid,
        verdict=verdict,
        clauses=tuple(state.clauses),
        messages=tuple([recorder.redact(m) for m in dict.fromkeys(messages)][:50]),
        duration_s=round(time.monotonic() - state.started, 3),
        usage={k: v - state.spent_before.get(k, 0) for k, v in run.meter.snapshot().items()},
        observations=tuple(obs.as_dict() for obs in recorder.observations[:500]),
        tries=tuple(TryRecord.from_json(attempt) for attempt in state.tries),
        known=KnownRecord.from_json(state.known),
        transcript=recorder.redact(transcript),
        reached=tuple(sorted(recorder.reached())),
        connections=len(state.connections),
        blocked=state.blocked,
        surface=drift.of_connections(conns.values()),
        retried_in_place=tuple(in_place),         # counted in the certificate's retries block
        perf=state.perf,
    )
    return replace(record, not_reached=tuple(verdicts.not_reached(record)))


def all_transcripts(state: CaseState) -> str:
    """The transcript of every try, each under its own heading, or the only try's."""
    if not state.tries:
        return state.transcripts()
    return "\n\n".join(f"=== try {n} of {len(state.tries)}: {t['verdict']} ===\n{t['transcript']}"
                       for n, t in enumerate(state.tries, 1))
