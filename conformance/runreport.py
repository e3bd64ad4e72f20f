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

from conformance import baseline
from conformance import drift
from conformance import exitcodes
from conformance import retry
from conformance import vocabulary
from conformance.liveness import describe as describe_stall
from conformance.session import ConformanceSession


def finish_baseline(session: pytest.Session, sess: ConformanceSession) -> None:
    """--write-baseline writes this run's deviations (a STALE entry fails the run: _set_exit_code)."""
    settings = sess.settings
    if settings.write_baseline is not None and sess.records:
        try:
            text = baseline.render(sess.records, by=settings.write_baseline_by)
            settings.write_baseline.write_text(sess.redact(text), encoding="utf-8")
        except OSError as exc:
            sess.report_error = f"could not write the baseline {settings.write_baseline}: {exc}"


def set_exit_code(session: pytest.Session, sess: ConformanceSession) -> None:
    """The run's exit code (conformance/exitcodes.py) from the case verdicts, the baseline and the preflight."""
    stale = 0
    if sess.settings.baseline is not None and sess.records:
        stale = run_facts(sess)["baseline"]["stale"]
    session.exitstatus = exitcodes.exit_code((r.verdict for r in sess.records), stale=stale,
                                             strict=sess.settings.strict, usable=not sess.not_usable,
                                             pytest_status=session.exitstatus)


def run_facts(sess: ConformanceSession) -> dict:
    """Certificate fields beyond the clause and case tables."""
    skipped = sum(1 for r in sess.records if r.verdict == vocabulary.SKIPPED
                  and any(m.startswith("budget:") for m in r.messages))
    review = None
    known = sess.settings.baseline
    if known is not None:
        from conformance.report import clause_rows
        entries = known.review(sess.records, clause_rows(sess.settings.registry, sess.records))
        review = {"file": os.path.basename(known.path),
                  "known": sum(1 for r in sess.records if r.verdict == vocabulary.KNOWN),
                  "stale": sum(1 for e in entries if e["status"] == vocabulary.STALE), "entries": entries}
    return {"stalled": sess.liveness.recorded(), "retries": retry.summary(sess.records), "baseline": review,
            "surface": drift.merge(r.surface for r in sess.records),
            "budget": {"max_requests": sess.settings.max_requests, "plan": sess.plan or "",
                       "skipped": skipped}, "run": run_block(sess)} \
        | {"perf": r.perf for r in sess.records if r.perf} \
        | ({"preflight": sess.preflight} if sess.preflight else {}) \
        | ({"client": client_block(sess)} if sess.settings.client_mode else {}) \
        | ({"gateway": sess.gateway_block} if sess.gateway_block else {})


def client_block(sess: ConformanceSession) -> dict:
    """The certificate's ``client``: the commands client mode ran (key redacted), with a command
    what the client claims (--client-claims; an empty list: nothing beyond the contract), and the
    scenario the reference server played for the client's own tests."""
    settings = sess.settings
    return ({"command": sess.redact(settings.client_command), "claims": list(settings.client_claims)}
            if settings.client_command else {}) \
        | ({"test_command": sess.redact(settings.client_test_command)} if settings.client_test_command else {}) \
        | ({"test_scenario": settings.client_test_scenario.name} if settings.client_test_scenario else {})


def run_block(sess: ConformanceSession) -> dict:
    """The certificate's ``run``: the command line (key redacted) and the options that shape
    verdicts (``conformance.release``)."""
    from conformance.release import run_block as release_run_block
    settings, opt = sess.settings, sess.config.getoption
    options = {"turn_timeout_s": settings.turn_timeout, "turn_cap_s": settings.turn_cap,
               "run_timeout_s": settings.run_timeout, "retries": settings.retries,
               "max_requests": settings.max_requests, "generated_budget": settings.generated_budget,
               "max_output_tokens": settings.max_output_tokens, "strict": settings.strict,
               "run_slow": settings.run_slow,
               "perf": bool(opt("perf")), "clauses": list(opt("select_clauses") or []),
               "reference_defects": list(settings.defects), "reference_options": list(opt("reference_option") or [])}
    return release_run_block(args=sess.config.invocation_params.args, redact=sess.redact, options=options,
                     baseline=settings.baseline.path if settings.baseline is not None else None,
                     profile=settings.profile.identity())


def conformance_summary(reporter: Any, sess: ConformanceSession) -> None:
    from conformance.report import summary_lines
    reporter.section("responses-ws-conformance")
    if sess.not_usable:     # one line, the report path, nothing else (exit code 6)
        reporter.write_line(sess.preflight_line, red=True)
        report_path_lines(reporter, sess)
        return
    stall = sess.liveness.recorded()
    if stall:
        reporter.write_line(f"RUN STOPPED EARLY: {describe_stall(stall)}; later cases that needed a turn are ERROR",
                      red=True)
    for line in summary_lines(sess.records, sess.settings.registry, sess.settings.profile.name,
                              client=sess.settings.client_mode):
        reporter.write_line(line)
    if sess.gateway_block:      # which clauses judged which side (clientmode.sandwich)
        side = sess.gateway_block["client_side"]
        played = sess.gateway_block.get("upstream_scenario")
        playing = f", the upstream playing scenario {played}" if played else ""
        reporter.write_line(f"gateway sandwich: server clauses judged the gateway as the cases' target; "
                            f"{len(side['clauses'])} client clauses its upstream traffic ({side['case']}{playing}); "
                            f"{len(side['not_judged'])} need a scenario (UNTESTED)")
    facts = run_facts(sess)
    budget = facts["budget"]
    if budget["max_requests"] is not None:
        reporter.write_line(f"budget: --max-requests {budget['max_requests']}; "
                            f"{budget['skipped']} case(s) SKIPPED (budget)")
    if facts["baseline"] is not None:
        review = facts["baseline"]
        reporter.write_line(f"baseline {review['file']}: {review['known']} case(s) KNOWN, "
                      f"{review['stale']} entry(ies) STALE")
        for entry in review["entries"]:
            if entry["status"] == vocabulary.STALE:
                what = f"clause {entry['clause']}" if entry["clause"] else f"case {entry['case']}"
                reporter.write_line(f"  STALE known #{entry['index']} ({what}): it passes now; remove this entry from "
                              f"{review['file']}", red=True)
    if sess.settings.write_baseline is not None and not getattr(sess, "report_error", None):
        reporter.write_line(f"baseline written: {sess.settings.write_baseline}")
    report_path_lines(reporter, sess)


def report_path_lines(reporter: Any, sess: ConformanceSession) -> None:
    from conformance.report import terminal
    paths = getattr(sess, "report_paths", None)
    cert = terminal_certificate(sess, paths)
    for line, markup in terminal.findings_lines(cert, report_dir=paths and paths["dir"], strict=sess.settings.strict):
        reporter.write_line(line, **markup)
    if getattr(sess, "report_error", None):
        reporter.write_line(sess.report_error, red=True)
    for line, markup in terminal.verdict_lines(cert, paths):
        reporter.write_line(line, **markup)


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
    settings = sess.settings
    return dict(registry=settings.registry, records=sess.records, profile=settings.profile.name,
                fingerprint=sess.fingerprint(), mode=CLIENT if settings.client_mode else SUITE,
                started=sess.started, finished=time.time(), strict=settings.strict, run_id=settings.run_id,
                spec_profiles=sorted(settings.profile.spec_profiles), extra=run_facts(sess))
