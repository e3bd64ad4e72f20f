"""End of a session: what the controller (or the only process) makes of the case records.

The certificate's extra facts (``run_facts``: stall, retries, baseline review, budget, the
``run`` block), the exit code (conformance/exitcodes.py), --write-baseline, and the
conformance section of the terminal summary (docs/design.md "Reports", "Exit codes").
``conformance.plugin`` calls these from its session-finish and terminal-summary hooks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from conformance import baseline as BL
from conformance import drift as D
from conformance import exitcodes as X
from conformance import retry as R
from conformance import verdicts as V
from conformance.liveness import describe as describe_stall
from conformance.session import ConformanceSession


def finish_baseline(session: pytest.Session, sess: ConformanceSession) -> None:
    """--write-baseline writes this run's deviations (a STALE entry fails the run: _set_exit_code)."""
    s = sess.settings
    if s.write_baseline is not None and sess.records:
        try:
            s.write_baseline.write_text(sess.redact(BL.render(sess.records, by=s.write_baseline_by)), encoding="utf-8")
        except OSError as exc:
            sess.report_error = f"could not write the baseline {s.write_baseline}: {exc}"


def set_exit_code(session: pytest.Session, sess: ConformanceSession) -> None:
    """The run's exit code (conformance/exitcodes.py) from the case verdicts, the baseline and the preflight."""
    stale = 0
    if sess.settings.baseline is not None and sess.records:
        stale = run_facts(sess)["baseline"]["stale"]
    session.exitstatus = X.exit_code((r["verdict"] for r in sess.records), stale=stale, strict=sess.settings.strict,
                                     usable=not sess.not_usable, pytest_status=session.exitstatus)


def run_facts(sess: ConformanceSession) -> dict:
    """Certificate fields beyond the clause and case tables."""
    skipped = sum(1 for r in sess.records if r["verdict"] == V.SKIPPED
                  and any(m.startswith("budget:") for m in r.get("messages", [])))
    baseline = None
    bl = sess.settings.baseline
    if bl is not None:
        from conformance.report import clause_rows
        entries = bl.review(sess.records, clause_rows(sess.settings.registry, sess.records))
        baseline = {"file": os.path.basename(bl.path), "known": sum(1 for r in sess.records if r["verdict"] == BL.KNOWN),
                    "stale": sum(1 for e in entries if e["status"] == BL.STALE), "entries": entries}
    return {"stalled": sess.liveness.recorded(), "retries": R.summary(sess.records), "baseline": baseline,
            "surface": D.merge(r.get("surface") for r in sess.records),
            "budget": {"max_requests": sess.settings.max_requests, "plan": sess.plan or "",
                       "skipped": skipped}, "run": run_block(sess)} \
        | {"perf": r["perf"] for r in sess.records if r.get("perf")} \
        | ({"preflight": sess.preflight} if sess.preflight else {}) \
        | ({"client": {"command": sess.redact(sess.settings.client_command)}} if sess.settings.client_mode else {})


def run_block(sess: ConformanceSession) -> dict:
    """The certificate's ``run``: the command line (key redacted) and the options that shape
    verdicts (``conformance.release``)."""
    from conformance.release import run_block as release_run_block
    s, opt = sess.settings, sess.config.getoption
    options = {"turn_timeout_s": s.turn_timeout, "turn_cap_s": s.turn_cap, "run_timeout_s": s.run_timeout,
               "retries": s.retries, "max_requests": s.max_requests, "generated_budget": s.generated_budget,
               "max_output_tokens": s.max_output_tokens, "strict": s.strict, "run_slow": s.run_slow,
               "perf": bool(opt("perf")), "clauses": list(opt("select_clauses") or []),
               "reference_defects": list(s.defects), "reference_options": list(opt("reference_option") or [])}
    return release_run_block(args=sess.config.invocation_params.args, redact=sess.redact, options=options,
                     baseline=s.baseline.path if s.baseline is not None else None,
                     profile=s.profile.identity())


def conformance_summary(tr: Any, sess: ConformanceSession) -> None:
    from conformance.report import summary_lines
    from conformance.report import terminal as T
    tr.section("responses-ws-conformance")
    if sess.not_usable:     # one line, the report path, nothing else (exit code 6)
        tr.write_line(sess.preflight_line, red=True)
        report_path_lines(tr, sess)
        return
    stall = sess.liveness.recorded()
    if stall:
        tr.write_line(f"RUN STOPPED EARLY: {describe_stall(stall)}; later cases that needed a turn are ERROR",
                      red=True)
    for line in summary_lines(sess.records, sess.settings.registry, sess.settings.profile.name):
        tr.write_line(line)
    facts = run_facts(sess)
    budget = facts["budget"]
    if budget["max_requests"] is not None:
        tr.write_line(f"budget: --max-requests {budget['max_requests']}; {budget['skipped']} case(s) SKIPPED (budget)")
    if facts["baseline"] is not None:
        bl = facts["baseline"]
        tr.write_line(f"baseline {bl['file']}: {bl['known']} case(s) KNOWN, {bl['stale']} entry(ies) STALE")
        for e in bl["entries"]:
            if e["status"] == BL.STALE:
                what = f"clause {e['clause']}" if e["clause"] else f"case {e['case']}"
                tr.write_line(f"  STALE known #{e['index']} ({what}): it passes now; remove this entry from "
                              f"{bl['file']}", red=True)
    if sess.settings.write_baseline is not None and not getattr(sess, "report_error", None):
        tr.write_line(f"baseline written: {sess.settings.write_baseline}")
    report_path_lines(tr, sess)


def report_path_lines(tr: Any, sess: ConformanceSession) -> None:
    from conformance.report import terminal as T
    paths = getattr(sess, "report_paths", None)
    cert = terminal_certificate(sess, paths)
    for line, markup in T.findings_lines(cert, report_dir=paths and paths["dir"], strict=sess.settings.strict):
        tr.write_line(line, **markup)
    if getattr(sess, "report_error", None):
        tr.write_line(sess.report_error, red=True)
    for line, markup in T.verdict_lines(cert, paths):
        tr.write_line(line, **markup)


def terminal_certificate(sess: ConformanceSession, paths: dict | None) -> dict:
    """The certificate the run wrote, else (--no-report, or it could not be written) the same built here."""
    if paths:
        try:
            return json.loads(Path(paths["certificate"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    from conformance.report import build_certificate
    return build_certificate(**report_args(sess))


def report_args(sess: ConformanceSession) -> dict:
    """What the certificate is built from (written at session finish, shown in the terminal)."""
    from conformance.report import CLIENT, SUITE
    s = sess.settings
    return dict(registry=s.registry, records=sess.records, profile=s.profile.name, fingerprint=sess.fingerprint(),
                mode=CLIENT if s.client_mode else SUITE,
                started=sess.started, finished=time.time(), strict=s.strict, run_id=s.run_id,
                spec_profiles=sorted(s.profile.spec_profiles), extra=run_facts(sess))
