"""What a case's pytest reports carry: its verdict after each phase, its transcripts on a
non-pass, and at teardown its record (the dict the certificate, baseline, JUnit, allure and
diff read; docs/design.md "Reports", docs/certificate.md). ``conformance.plugin`` calls
:func:`annotate` from ``pytest_runtest_makereport``; the records travel to the controller on
the teardown reports (pytest-xdist).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conformance import drift
from conformance import judging
from conformance import retry
from conformance import verdicts
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
        report.conformance_record = record
        report.conformance_verdict = record["verdict"]
        report.user_properties.append(("conformance_clauses", " ".join(state.clauses)))
        report.user_properties.append(("conformance_verdict", record["verdict"]))


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


def case_record(nodeid: str, state: CaseState, run: RunContext) -> dict:
    """The case's record: verdict, clauses, messages, observations, usage (its share of
    ``run.meter``), tries, transcript on a non-pass."""
    rec = state.recorder
    verdict = state.verdict or verdicts.PASS
    if verdict == verdicts.PASS and rec.observations:
        verdict = rec.verdict()
    messages = list(state.messages)
    for o in rec.failures(verdicts.NON_STRICT):
        messages.append(f"{o.verdict} {o.clause}: {o.message}" + (f" [{o.evidence}]" if o.evidence else ""))
    messages.extend(rec.errors)
    transcript = ""
    if verdict in TRANSCRIPT_VERDICTS and (state.connections or state.tries):
        transcript = all_transcripts(state)[-200_000:]
    conns = {id(c): c for c in [*(c for t in state.tries for c in t["connections"]), *state.connections]}
    record_tries = {"surface": drift.of_connections(conns.values())}
    if state.known:
        record_tries["known"] = state.known
    in_place = [reason for conn in conns.values() for reason in getattr(conn, "retried_in_place", ())]
    if in_place:
        record_tries["retried_in_place"] = in_place      # counted in the certificate's retries block
    if state.tries:
        record_tries["tries"] = [{k: t[k] for k in ("verdict", "messages", "failed_clauses", "transient", "backoff_s")
                                  if k in t} for t in state.tries]
    record = record_tries | {
        "nodeid": nodeid,
        "clauses": list(state.clauses),
        "verdict": verdict,
        "reached": sorted(rec.reached()),
        "messages": [rec.redact(m) for m in dict.fromkeys(messages)][:50],
        "observations": [o.as_dict() for o in rec.observations][:500],
        "connections": len(state.connections),
        "usage": {k: v - state.spent_before.get(k, 0) for k, v in run.meter.snapshot().items()},
        "duration_s": round(time.monotonic() - state.started, 3),
        "transcript": rec.redact(transcript),
        "blocked": state.blocked,
    }
    if state.perf is not None:
        record["perf"] = state.perf
    record["not_reached"] = verdicts.not_reached(record)
    return record


def all_transcripts(state: CaseState) -> str:
    """The transcript of every try, each under its own heading, or the only try's."""
    if not state.tries:
        return state.transcripts()
    return "\n\n".join(f"=== try {n} of {len(state.tries)}: {t['verdict']} ===\n{t['transcript']}"
                       for n, t in enumerate(state.tries, 1))
