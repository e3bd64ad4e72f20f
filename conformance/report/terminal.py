"""The end of a run in the terminal, for a person to read (issue 15 item 8).

By default a conformance case that did not pass gets one line — verdict, case, clause, the
reason in a sentence, its transcript's path — and a deviation seen in many cases is said once,
under its clause, with the cases it touched (``conformance.report.findings``). pytest's own
FAILURES/ERRORS entries of these cases (tracebacks of the suite's code, transcripts of every
try) are held back while pytest writes its summary (``held_back``); ``-v`` or
``--long-failures`` shows them as before. The summary ends with whether the target is
certified and where the report is.

Input: the certificate dict (``docs/certificate.md``). No pytest import: the plugin wires
these to ``pytest_terminal_summary``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from conformance import caserecord
from conformance.report import findings
from conformance.vocabulary import MARKUP, NON_STRICT

CASES_PER_GROUP = 6           # case names shown under a grouped clause; the rest are counted
NON_STRICT_WARNING = "ConformanceWarning: NON-STRICT"    # the warning each NON-STRICT case emits


def _where(path: str, cwd: str) -> str:
    """``path`` relative to the current directory when it lies below it, else absolute."""
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


def _short_id(nodeid: str) -> str:
    return nodeid.split("/")[-1]


def findings_lines(cert: dict, *, report_dir: str | None = None, cwd: str | None = None,
                   strict: bool = False) -> list[tuple[str, dict]]:
    """(text, markup) lines: each failing clause once with the cases it touched, then one line
    per case that did not pass."""
    cwd = cwd or os.getcwd()
    groups = findings.group_by_clause(cert)
    out: list[tuple[str, dict]] = []
    if groups:
        out.append((f"findings by clause ({len(groups)} clause(s)):", {"bold": True}))
    for group in groups:
        count = len(group.cases)
        requirement = findings.sentence(group.requirement, 200)
        out.append((f"  {group.verdict:<10} {group.clause} ({group.level}) in {count} case(s): {requirement}",
                    MARKUP.get(group.verdict, {})))
        more = f"  (+{len(group.messages) - 1} other message(s))" if len(group.messages) > 1 else ""
        out.append((f"             {findings.sentence(group.headline)}{more}", {}))
        shown = ", ".join(_short_id(c) for c in group.cases[:CASES_PER_GROUP])
        if count > CASES_PER_GROUP:
            shown += f", … +{count - CASES_PER_GROUP} more (index.html)"
        out.append((f"             cases: {shown}", {}))
    by_clause = {group.clause: group for group in groups}
    records = caserecord.all_of(cert.get("cases", []))
    cases = [case for verdict in findings.NOT_PASSING for case in records if case.verdict == verdict]
    if cases:
        out.append((f"cases not passing ({len(cases)}): verdict, case, clause: reason → transcript "
                    "(tracebacks: --long-failures)", {"bold": True}))
    for case in cases:
        clause, reason = findings.case_reason(case, by_clause)
        verdict = case.verdict
        if verdict == NON_STRICT and strict:
            verdict += " (failing under strict)"
        line = f"  {verdict:<10} {case.nodeid}  " + (f"{clause}: " if clause else "") + reason
        if case.transcript_path and report_dir:
            line += f"  → {_where(os.path.join(report_dir, case.transcript_path), cwd)}"
        out.append((line, MARKUP.get(case.verdict, {})))
    return out


def verdict_lines(cert: dict, report_paths: dict | None, *, cwd: str | None = None) -> list[tuple[str, dict]]:
    """The last lines: certified or not (with the reasons), and the report's path."""
    cwd = cwd or os.getcwd()
    certification = cert.get("certification") or {}
    if certification.get("certified"):
        out = [(f"Certified: yes (MUST {certification.get('must_pass')}/{certification.get('must_claimed')} "
                "claimed clauses PASS)",
                {"green": True, "bold": True})]
    else:
        reasons = "; ".join(certification.get("reasons") or [f"overall verdict is {cert.get('overall')}"])
        out = [(f"Certified: no — {reasons}", {"red": True, "bold": True})]
    if report_paths:
        out.append((f"report: {_where(report_paths['dir'], cwd)}{os.sep}index.html  "
                    "(certificate.json, junit.xml, badge.svg, transcripts/)", {}))
    return out


@contextmanager
def held_back(stats: dict, nodeids: set[str]) -> Iterator[None]:
    """Take the reports of these cases out of pytest's ``failed``/``error`` lists, and the
    NON-STRICT warnings out of its ``warnings`` list, while pytest writes its summary; put
    them back after (its closing counts still include them)."""
    kept: dict[str, list] = {}
    for key in ("failed", "error"):
        reports = stats.get(key)
        if reports:
            kept[key] = reports
            stats[key] = [r for r in reports if getattr(r, "nodeid", None) not in nodeids]
    warnings = stats.get("warnings")
    if warnings:
        kept["warnings"] = warnings
        stats["warnings"] = [w for w in warnings if NON_STRICT_WARNING not in str(getattr(w, "message", ""))]
    try:
        yield
    finally:
        for key, reports in kept.items():
            # pytest may have added reports meanwhile (teardown warnings): keep those too
            old = {id(r) for r in reports}
            added = [r for r in stats.get(key, []) if id(r) not in old]
            stats[key] = reports + added
