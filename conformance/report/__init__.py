"""Reports of a run: ``certificate.json`` (format: ``schemas/certificate.json``,
``docs/certificate.md``), ``junit.xml``, ``index.html``, ``badge.svg`` and the terminal summary.

Implements "Reports" and the clause table / coverage of "Clauses" in ``docs/design.md``.
Input: the case records the plugin collects (``conformance.caserecord.CaseRecord``, one per
case, key already redacted; a dict is read with ``CaseRecord.from_json``) and the clause
registry. No pytest import; every writer is a plain function.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from dataclasses import replace
from typing import Callable, Iterable

from conformance import caserecord
from conformance import retry
from conformance import verdicts
from conformance.caserecord import CaseRecord
from conformance.release import suite_git, suite_version
from conformance.report.allure import clause_area
from conformance.report.badge import render_badge
from conformance.report.html import render_html
from conformance.report.junit import render_junit
from conformance.vocabulary import (CASE_VERDICTS, CLAUSE_VERDICTS, ERROR, FAIL, FLAKY, NON_STRICT, NOT_REACHED,
                                    NOT_USABLE, PASS, RETIRED, STALE, UNTESTED)

# bumped whenever a field changes meaning or goes away (docs/certificate.md)
CERTIFICATE_VERSION = 2
# mode: a suite run judging a server, traffic a proxy watched, or a suite run judging a client
SUITE, OBSERVED, CLIENT = "suite", "observed", "client"
OBSERVED_REASON = "observed traffic: the proxy judged what clients sent, not a full certification run"


def clause_rows(registry: verdicts.ClauseRegistry, records: Iterable[CaseRecord | dict]) -> list[dict]:
    """The clause table (``verdicts.clause_table``: its rules include FLAKY and KNOWN cases)."""
    return verdicts.clause_table(registry, records)




def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def build_certificate(*, registry: verdicts.ClauseRegistry, records: Iterable[CaseRecord | dict], profile: str,
                      fingerprint: dict, started: float, finished: float, strict: bool,
                      run_id: str, spec_profiles: list[str] | tuple = (), mode: str = SUITE,
                      extra: dict | None = None) -> dict:
    """The certificate; ``mode`` OBSERVED for traffic the proxy watched (never certified),
    ``extra`` adds optional top-level blocks (``observed``, ``perf``) of schemas/certificate.json."""
    records = caserecord.all_of(records)
    rows = clause_rows(registry, records)
    caps, specs = frozenset(fingerprint.get("capabilities", ())), frozenset(spec_profiles)
    for row in rows:    # claimed: the clause applies to what the profile says the target does
        row["area"] = clause_area(registry[row["id"]])
        row["claimed"] = row["verdict"] != RETIRED and verdicts.unsupported_reason(registry[row["id"]], caps, specs,
                                                                                   profile) is None
    counts = Counter(r.verdict for r in records)
    clause_counts = Counter(r["verdict"] for r in rows)
    overall = FAIL if counts[FAIL] else (ERROR if counts[ERROR] else (
        FLAKY if retry.flaky_blocks_pass(records, registry) else (
            NON_STRICT if counts[NON_STRICT] else PASS)))
    if strict and overall == NON_STRICT:
        overall = FAIL
    if overall == PASS and ((extra or {}).get("baseline") or {}).get("stale"):
        overall = STALE       # a known deviation that is gone: the baseline must be updated
    preflight = (extra or {}).get("preflight") or {}
    # observed traffic with no connection relayed: nothing was watched, nothing can read PASS
    nothing_observed = mode == OBSERVED and ((extra or {}).get("observed") or {}).get("relayed") == 0
    if preflight.get("usable") is False or nothing_observed:
        overall = NOT_USABLE
    usage = Counter()
    for r in records:
        usage.update(r.usage)
    cases = [replace(r, not_reached=tuple(verdicts.not_reached(r))).to_json() for r in caserecord.by_nodeid(records)]
    cert_ = certification(overall, rows, records)
    if mode == OBSERVED:
        cert_ = cert_ | {"certified": False, "reasons": [OBSERVED_REASON] + cert_["reasons"]}
    if nothing_observed:
        cert_ = cert_ | {"certified": False, "reasons": [OBSERVED_REASON, "nothing observed: no client connection "
                                                         "reached the upstream"]}
    elif overall == NOT_USABLE:
        cert_ = cert_ | {"certified": False, "reasons": [f"target not usable: {preflight.get('message', '')}; "
                                                         f"check {preflight.get('check', '')}",
                                                         "no case ran: every clause is UNTESTED"]}
    return {
        "format": "responses-ws-conformance/certificate",
        "certificate_version": CERTIFICATE_VERSION,
        "suite_version": suite_version(),
        # the commit when run from a checkout (absent otherwise): pins a suite between releases
        **({"suite_git": dict(git)} if (git := suite_git()) else {}),
        "mode": mode,
        "run_id": run_id,
        "profile": profile,
        "spec_profiles": sorted(spec_profiles),
        "strict": strict,
        "target": fingerprint,
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": round(finished - started, 3),
        "environment": {"python": platform.python_version(), "platform": platform.platform(terse=True)},
        "clause_registry": {"path": os.path.basename(registry.path), "version": registry.version,
                            "clauses": len(registry), "sha256": registry.digest()},
        "overall": overall,
        "certification": cert_,
        # run-level facts the plugin adds (stalled, budget, baseline, surface, observed, perf)
        **(extra or {}),
        "counts": {"cases": {v: counts.get(v, 0) for v in CASE_VERDICTS} | {"total": len(records)},
                   "clauses": {v: clause_counts.get(v, 0) for v in CLAUSE_VERDICTS}},
        "coverage": verdicts.coverage(rows),
        # what the run spent on the target (tokens as reported by the target's usage objects)
        "usage": {k: usage.get(k, 0) for k in ("creates", "http_requests", "input_tokens", "output_tokens")},
        "blocked": blocked_cases(records),
        "clauses": rows,
        "cases": cases,
    }


def blocked_cases(records: Iterable[CaseRecord]) -> list[str]:
    """Node ids of the cases the target's safety system blocked (ERROR, §3.10), sorted."""
    return sorted(r.nodeid for r in records if r.blocked)


def certification(overall: str, rows: list[dict], records: Iterable[CaseRecord | dict]) -> dict:
    """Certified (docs/certification.md): overall PASS, every claimed MUST clause PASS, no
    FLAKY case; ``reasons`` says what is missing otherwise."""
    reasons = []
    if overall != PASS:
        reasons.append(f"overall verdict is {overall}")
    short = [r for r in rows if r["level"] == "MUST" and r["claimed"] and r["verdict"] != PASS]
    for verdict, ids in sorted(_group(short).items()):
        reasons.append(f"{len(ids)} claimed MUST clause(s) {verdict}: {', '.join(ids)}")
    # §4.5 item 35a: a multi-tenant claim (capability multi_tenant) needs a key of another tenant
    isolation = [r["id"] for r in short if r["verdict"] == UNTESTED and "multi_tenant" in r.get("requires", ())]
    if isolation:
        reasons.append("the profile claims multi-tenancy ([target] multi_tenant) but tenant isolation is "
                       f"UNTESTED ({', '.join(isolation)}): run with --other-tenant-key, a key of another tenant")
    flaky = [r.nodeid for r in caserecord.all_of(records) if r.verdict == FLAKY]
    if flaky:
        reasons.append(f"{len(flaky)} FLAKY case(s): {', '.join(sorted(flaky))}")
    must = [r for r in rows if r["level"] == "MUST" and r["claimed"]]
    return {"certified": not reasons, "reasons": reasons,
            "must_claimed": len(must), "must_pass": sum(1 for r in must if r["verdict"] == PASS)}


def _group(rows: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["verdict"], []).append(r["id"])
    return out


def write_reports(report_dir: str | Path, *, registry: verdicts.ClauseRegistry, records: Iterable[CaseRecord | dict],
                  profile: str,
                  fingerprint: dict, started: float, finished: float, strict: bool, run_id: str,
                  spec_profiles: list[str] | tuple = (),
                  redact: Callable[[str], str] = lambda t: t, mode: str = SUITE,
                  extra: dict | None = None) -> dict[str, str]:
    """Write certificate.json, junit.xml, index.html, badge.svg (and transcripts/ of
    non-passing cases)."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    tdir = out / "transcripts"
    records = [_with_transcript_file(r, tdir, redact) for r in caserecord.by_nodeid(caserecord.all_of(records))]
    cert = build_certificate(registry=registry, records=records, profile=profile, fingerprint=fingerprint,
                             started=started, finished=finished, strict=strict, run_id=run_id,
                             spec_profiles=spec_profiles, mode=mode, extra=extra)
    paths = {"dir": str(out), "certificate": str(out / "certificate.json"),
             "junit": str(out / "junit.xml"), "html": str(out / "index.html"), "badge": str(out / "badge.svg")}
    (out / "certificate.json").write_text(redact(json.dumps(cert, indent=2, sort_keys=False)), encoding="utf-8")
    (out / "junit.xml").write_text(redact(render_junit(cert, records)), encoding="utf-8")
    transcripts = {record.nodeid: record.transcript or "" for record in records}
    (out / "index.html").write_text(redact(render_html(cert, transcripts)), encoding="utf-8")
    (out / "badge.svg").write_text(redact(render_badge(cert)), encoding="utf-8")
    return paths


def _with_transcript_file(record: CaseRecord, tdir: Path, redact: Callable[[str], str]) -> CaseRecord:
    """Write a non-passing case's transcript to ``tdir``; the record names the file."""
    if not record.transcript:
        return record
    tdir.mkdir(exist_ok=True)
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in record.nodeid)[:150] + ".txt"
    (tdir / name).write_text(redact(record.transcript), encoding="utf-8")
    return replace(record, transcript_path=f"transcripts/{name}")


def summary_lines(records: Iterable[CaseRecord | dict], registry: verdicts.ClauseRegistry, profile: str,
                  client: bool = False) -> list[str]:
    """The terminal's summary; ``client``: a client-mode run (scenarios judge a client, nothing is spent)."""
    records = caserecord.all_of(records)
    counts = Counter(r.verdict for r in records)
    rows = clause_rows(registry, records)
    cov = verdicts.coverage(rows)
    clause_counts = Counter(r["verdict"] for r in rows)
    lines = [
        (f"client mode: {len(records)} scenarios: " if client else f"profile {profile}: {len(records)} cases: ") + ", ".join(
            f"{counts[v]} {v}" for v in CASE_VERDICTS if counts.get(v)),
        "clauses: " + ", ".join(f"{clause_counts[v]} {v}" for v in CLAUSE_VERDICTS if clause_counts.get(v)),
        f"coverage: {cov['all']['with_cases']}/{cov['all']['clauses']} clauses have a case "
        f"(MUST {cov['MUST']['with_cases']}/{cov['MUST']['clauses']}, "
        f"SHOULD {cov['SHOULD']['with_cases']}/{cov['SHOULD']['clauses']}, "
        f"MAY {cov['MAY']['with_cases']}/{cov['MAY']['clauses']})",
    ]
    spent = Counter()
    for r in records:
        spent.update(r.usage)
    if not client:      # a client run sends nothing to a paid target: its scenarios run on the reference server
        lines.append(f"spent: {spent['creates']} response.create, {spent['http_requests']} HTTP requests, "
                     f"{spent['input_tokens']} input and {spent['output_tokens']} output tokens")
    blocked = blocked_cases(records)
    if blocked:
        lines.append(f"blocked by the target's safety system (misalignment_policy_violation, ERROR, not retried): "
                     f"{len(blocked)} case(s): " + ", ".join(blocked[:10]) + (" ..." if len(blocked) > 10 else ""))
    # failing clauses are listed with their findings by conformance.report.terminal
    unreached = [r for r in rows if r["verdict"] == NOT_REACHED]
    for r in unreached[:15]:
        lines.append(f"  {r['verdict']:<10} {r['id']} ({r['level']}): {r['requirement']}")
    return lines
