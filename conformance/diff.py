"""Compare two certificates: ``python -m conformance diff OLD.json NEW.json``.

Says first whether the new run is worse than the old one, and why, then the details (clause
and case verdict changes, the ``surface`` of ``conformance.drift``, coverage and usage) as
Markdown. The rules (docs/nightly.md "What makes a night red"); any one of them exits 1:

=================  ==========================================================================
rule               the new run ...
=================  ==========================================================================
not-usable         could not test the target (``overall`` NOT-USABLE)
incomplete         has cases that could not be judged (``overall`` ERROR)
regression         has a clause or case verdict in a worse tier (``TIERS``), a worse
                   ``overall``, or a new unknown event type, field or (undocumented) error code
coverage           checked a clause the old run checked no longer (so also: fewer clauses)
certification      is not certified where the old run was
=================  ==========================================================================

Every verdict a certificate can hold has a tier; an unknown verdict makes the certificate
unreadable (exit 2), it is never ranked like PASS. No I/O except ``load`` and ``run``.
"""

from __future__ import annotations

from pathlib import Path

from conformance.caserecord import CaseRecord
from conformance.files import read_document
from conformance.vocabulary import (ABSENT, ERROR, FAIL, FLAKY, INFO, KNOWN, NON_STRICT, NOT_USABLE, OVERALL_RANK,
                                    PASS, TIERS)

# Verdict tiers, best first, and the ranks of ``overall``: conformance.vocabulary declares
# them with the verdicts (docs/nightly.md defends the order).
RANK = {verdict: n for n, (_, verdicts) in enumerate(TIERS) for verdict in verdicts}
# clause verdicts that mean some case checked the clause (coverage)
CHECKED = frozenset({PASS, INFO, KNOWN, NON_STRICT, FLAKY, FAIL})
INCOMPLETE = ERROR      # the ``overall`` of a run with cases it could not judge
RULES = ("not-usable", "incomplete", "regression", "coverage", "certification")

_FORMAT = "responses-ws-conformance/certificate"


class CertificateError(ValueError):
    """A file given to ``diff`` is not a readable certificate; names the file."""


def check(cert: dict, name: str = "certificate") -> dict:
    """``cert`` when every verdict in it is one ``diff`` ranks; else ``CertificateError``."""
    if not isinstance(cert, dict) or cert.get("format") != _FORMAT:
        raise CertificateError(f"{name}: not a certificate.json of this suite (format {_FORMAT!r} expected)")
    if not isinstance(cert.get("clauses"), list):
        raise CertificateError(f"{name}: clauses: missing or not a list")
    if not isinstance(cert.get("cases", []), list):
        raise CertificateError(f"{name}: cases: not a list")
    if cert.get("overall") not in OVERALL_RANK:
        raise CertificateError(f"{name}: overall: unknown verdict {cert.get('overall')!r} "
                               f"(known: {', '.join(OVERALL_RANK)})")
    for what, key in (("clauses", "id"), ("cases", "nodeid")):
        for position, row in enumerate(cert.get(what, [])):
            if not isinstance(row, dict) or not isinstance(row.get(key), str):
                raise CertificateError(f"{name}: {what}[{position}]: no {key}")
            if row.get("verdict") not in RANK or row.get("verdict") == ABSENT:
                raise CertificateError(f"{name}: {what} {row[key]}: unknown verdict {row.get('verdict')!r} "
                                       f"(known: {', '.join(v for v in RANK if v != ABSENT)})")
    return cert


def load(path: str | Path) -> dict:
    path = Path(path)
    return check(read_document(path, "JSON", CertificateError), str(path))


def _clause_verdicts(cert: dict) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in cert.get("clauses", [])}


def _clause_levels(*certs: dict) -> dict[str, str]:
    """Each clause's level (the later certificate's where both have it)."""
    return {r["id"]: r.get("level", "") for cert in certs for r in cert.get("clauses", [])}


def cases(cert: dict) -> list[CaseRecord]:
    """The certificate's cases (any version of the certificate)."""
    return [CaseRecord.from_json(case) for case in cert.get("cases", [])]


def _kind(old: str, new: str) -> str:
    old_rank, new_rank = RANK[old], RANK[new]
    return "regression" if new_rank > old_rank else ("improvement" if new_rank < old_rank else "change")


def _changes(old: dict[str, str], new: dict[str, str], levels: dict[str, str] | None = None) -> list[tuple]:
    """Rows (id, level, old, new, kind) from the verdicts by id of two runs, regressions first,
    the worst new verdict first."""
    rows = []
    levels = levels or {}
    for key in sorted(set(old) | set(new)):
        old_verdict, new_verdict = old.get(key, ABSENT), new.get(key, ABSENT)
        if old_verdict != new_verdict:
            rows.append((key, levels.get(key, ""), old_verdict, new_verdict, _kind(old_verdict, new_verdict)))
    order = {"regression": 0, "improvement": 1, "change": 2}
    rows.sort(key=lambda r: (order[r[4]], -RANK[r[3]], r[0]))
    return rows


def checked(cert: dict) -> set[str]:
    """Ids of the clauses some case of the run checked."""
    return {r["id"] for r in cert.get("clauses", []) if r.get("verdict") in CHECKED}


def preflight_line(cert: dict) -> str:
    """What the preflight said (a NOT-USABLE certificate's ``preflight`` block), one line."""
    pre = cert.get("preflight")
    if isinstance(pre, dict):
        for key in ("message", "diagnosis", "reason", "problem", "detail"):
            if isinstance(pre.get(key), str) and pre[key].strip():
                return " ".join(pre[key].split())
        return ", ".join(f"{k}={v}" for k, v in pre.items() if isinstance(v, (str, int, float)))[:300]
    return " ".join(str(pre).split())[:300] if pre else ""


def compare(old: dict, new: dict) -> dict:
    """The differences, as data: ``reasons`` ((rule, text) pairs; empty: not worse),
    ``regressions`` (text), ``clauses`` and ``cases`` (rows of (id, level, old, new, kind)),
    ``lost`` (clauses no longer checked), ``surface`` changes, ``notes``, ``overall``,
    ``coverage``, ``usage``. Raises ``CertificateError`` on a verdict it cannot rank."""
    check(old, "old certificate")
    check(new, "new certificate")
    clauses = _changes(_clause_verdicts(old), _clause_verdicts(new), _clause_levels(old, new))
    old_cases = {case.nodeid: case.verdict for case in cases(old)}
    new_cases = {case.nodeid: case.verdict for case in cases(new)}
    both = set(old_cases) & set(new_cases)
    case_rows = _changes({k: old_cases[k] for k in both}, {k: new_cases[k] for k in both})
    added, removed = sorted(set(new_cases) - both), sorted(set(old_cases) - both)

    regressions = [f"clause {cid} ({lvl}): {va} → {vb}" for cid, lvl, va, vb, k in clauses if k == "regression"]
    regressions += [f"case {nid}: {va} → {vb}" for nid, _, va, vb, k in case_rows if k == "regression"]
    old_overall, new_overall = old["overall"], new["overall"]
    if OVERALL_RANK[new_overall] > OVERALL_RANK[old_overall]:
        regressions.insert(0, f"overall: {old_overall} → {new_overall}")

    recorded = ("surface" in old, "surface" in new)
    # a certificate from before drift recording: compare no surface rather than all of it
    old_surface, new_surface = (old.get("surface") or {}, new.get("surface") or {}) if all(recorded) else ({}, {})
    surface: dict[str, tuple[list, list]] = {}
    for key in ("event_types", "unknown_event_types", "error_codes", "unknown_error_codes", "error_types",
                "handshake_headers"):
        old_seen, new_seen = set(old_surface.get(key) or []), set(new_surface.get(key) or [])
        surface[key] = (sorted(new_seen - old_seen), sorted(old_seen - new_seen))
    old_fields = {(t, f) for t, fs in (old_surface.get("unknown_fields") or {}).items() for f in fs}
    new_fields = {(t, f) for t, fs in (new_surface.get("unknown_fields") or {}).items() for f in fs}
    surface["unknown_fields"] = ([f"{t}.{f}" for t, f in sorted(new_fields - old_fields)],
                                 [f"{t}.{f}" for t, f in sorted(old_fields - new_fields)])
    for key, what in (("unknown_event_types", "new unknown event type"), ("unknown_fields", "new unknown field"),
                      ("unknown_error_codes", "new unknown error code")):
        regressions += [f"{what} {x}" for x in surface[key][0]]

    old_checked, new_checked = checked(old), checked(new)
    verdict_b, verdict_a = _clause_verdicts(new), _clause_verdicts(old)
    lost = [(cid, verdict_a[cid], verdict_b.get(cid, ABSENT)) for cid in sorted(old_checked - new_checked)]

    reasons: list[tuple[str, str]] = []
    if new_overall == NOT_USABLE:
        said = preflight_line(new)
        reasons.append(("not-usable", "the new run could not test the target (overall NOT-USABLE)"
                        + (f": {said}" if said else "")))
    elif new_overall == INCOMPLETE:
        errors = sum(1 for case in cases(new) if case.verdict == ERROR)
        reasons.append(("incomplete",
                        f"the new run is incomplete (overall ERROR): {errors} case(s) could not be judged"))
    if regressions:
        reasons.append(("regression", f"{len(regressions)} regression(s): " + "; ".join(regressions[:3])
                        + (" …" if len(regressions) > 3 else "")))
    if lost or len(new_checked) < len(old_checked):
        reasons.append(("coverage", f"the new run checked {len(new_checked)} clause(s), "
                        f"the old one {len(old_checked)}; "
                        f"{len(lost)} no longer checked: "
                        + ", ".join(f"{cid} ({va} → {vb})" for cid, va, vb in lost[:5])
                        + (" …" if len(lost) > 5 else "")))
    was = (old.get("certification") or {}).get("certified") is True
    now = (new.get("certification") or {}).get("certified") is True
    if was and not now:
        why = (new.get("certification") or {}).get("reasons") or []
        reasons.append(("certification", "certification lost" + (": " + "; ".join(why[:2]) if why else "")))

    notes = []
    if old_overall in (NOT_USABLE, INCOMPLETE):
        notes.append(f"the old run did not test everything (overall {old_overall}): what it did not judge compares as "
                     "'not judged', so the new run's findings there may be old ones; compare with the last "
                     "usable run as well")
    if old.get("mode", "suite") != new.get("mode", "suite"):
        notes.append(f"the runs differ in mode: old {old.get('mode', 'suite')}, new {new.get('mode', 'suite')}")
    return {"reasons": reasons, "regressions": regressions, "clauses": clauses, "cases": case_rows,
            "cases_added": added, "cases_removed": removed, "lost": lost, "notes": notes,
            "surface": surface, "surface_recorded": recorded,
            "checked": (len(old_checked), len(new_checked)),
            "certified": (was, now),
            "overall": (old_overall, new_overall),
            "coverage": ((old.get("coverage") or {}).get("all", {}), (new.get("coverage") or {}).get("all", {})),
            "usage": (old.get("usage") or {}, new.get("usage") or {})}


def verdict_line(result: dict) -> str:
    """One line: whether the new run is worse, and the first reason."""
    if not result["reasons"]:
        return "not worse: no regression, no clause checked less, certification kept"
    return f"WORSE ({len(result['reasons'])} reason(s)): " + result["reasons"][0][1]


def _run(cert: dict) -> str:
    target = cert.get("target") or {}
    certified = (cert.get("certification") or {}).get("certified")
    return (f"run `{cert.get('run_id', '?')}` ({cert.get('started', '?')}), {target.get('ws_host', '?')}, "
            f"profile {cert.get('profile', '?')}, model {target.get('model', '?')}: **{cert.get('overall', '?')}**, "
            f"certified: {'yes' if certified else 'no'}")


def render(old: dict, new: dict, result: dict | None = None) -> str:
    """The Markdown report: the verdict and its reasons first, then the details."""
    result = result or compare(old, new)
    out = ["# Conformance diff", ""]
    if result["reasons"]:
        out += [f"**Worse than the old run** ({len(result['reasons'])} reason(s), exit 1):", ""]
        out += [f"- {rule}: {text}" for rule, text in result["reasons"]]
    else:
        out += ["**Not worse than the old run** (exit 0): no regression, no clause checked less, "
                "certification kept."]
    out += [""] + [f"> note: {n}" for n in result["notes"]] + ([""] if result["notes"] else [])
    out += [f"- old: {_run(old)}", f"- new: {_run(new)}", ""]
    if result["regressions"]:
        out += [f"## Regressions ({len(result['regressions'])})", ""] + [f"- {r}" for r in result["regressions"]] + [""]
    else:
        out += ["## Regressions", "", "None.", ""]
    if result["lost"]:
        out += [f"## No longer checked ({len(result['lost'])})", ""]
        out += [f"- {cid}: {va} → {vb}" for cid, va, vb in result["lost"]] + [""]
    out += ["## Clause verdicts", ""]
    if result["clauses"]:
        out += ["| clause | level | old | new | change |", "|---|---|---|---|---|"]
        out += [f"| {cid} | {lvl} | {va} | {vb} | {k} |" for cid, lvl, va, vb, k in result["clauses"]]
    else:
        out.append("No clause changed its verdict.")
    out += ["", "## Case verdicts", ""]
    if result["cases"]:
        out += ["| case | old | new | change |", "|---|---|---|---|"]
        out += [f"| {nid} | {va} | {vb} | {k} |" for nid, _, va, vb, k in result["cases"]]
    else:
        out.append("No case present in both runs changed its verdict.")
    for label, ids in (("only in the new run", result["cases_added"]),
                       ("only in the old run", result["cases_removed"])):
        if ids:
            out.append(f"\nCases {label} ({len(ids)}): " + ", ".join(f"`{x}`" for x in ids[:20])
                       + (" …" if len(ids) > 20 else ""))
    out += ["", "## Surface", ""]
    if not all(result["surface_recorded"]):
        out += ["(one certificate records no surface: it predates drift recording)", ""]
    names = {"event_types": "event types", "unknown_event_types": "unknown event types",
             "unknown_fields": "unknown fields", "error_codes": "error codes",
             "unknown_error_codes": "unknown (undocumented) error codes", "error_types": "error types",
             "handshake_headers": "handshake header names"}
    lines = []
    for key, label in names.items():
        added, gone = result["surface"][key]
        if added:
            lines.append(f"- new {label}: " + ", ".join(f"`{x}`" for x in added))
        if gone:
            lines.append(f"- vanished {label}: " + ", ".join(f"`{x}`" for x in gone))
    out += lines or ["No change."]
    old_coverage, new_coverage = result["coverage"]
    old_usage, new_usage = result["usage"]
    (old_count, new_count), (was_certified, now_certified) = result["checked"], result["certified"]
    out += ["", "## Coverage and usage", "", "| | old | new |", "|---|---|---|",
            f"| overall | {result['overall'][0]} | {result['overall'][1]} |",
            f"| certified | {'yes' if was_certified else 'no'} | {'yes' if now_certified else 'no'} |",
            f"| clauses checked (PASS, FAIL, NON-STRICT, KNOWN, FLAKY) | {old_count} | {new_count} |",
            f"| clauses with a case | {old_coverage.get('with_cases', '?')}/{old_coverage.get('clauses', '?')} | "
            f"{new_coverage.get('with_cases', '?')}/{new_coverage.get('clauses', '?')} |"]
    for key in ("creates", "http_requests", "input_tokens", "output_tokens"):
        out.append(f"| {key} | {old_usage.get(key, '?')} | {new_usage.get(key, '?')} |")
    return "\n".join(out) + "\n"


# --- the command line (python -m conformance diff) ----------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("old", help="the earlier certificate.json")
    parser.add_argument("new", help="the later certificate.json")
    parser.add_argument("--output", "-o", default=None, metavar="FILE", help="also write the Markdown report here")


def run(args) -> int:
    """Markdown on stdout (and in --output), the verdict line on stderr; exit 0 not worse,
    1 worse (any rule of the table above), 2 unusable input."""
    import sys
    try:
        old, new = load(args.old), load(args.new)
        result = compare(old, new)
    except CertificateError as exc:
        print(f"python -m conformance diff: {exc}", file=sys.stderr)
        return 2
    text = render(old, new, result)
    sys.stdout.write(text)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"python -m conformance diff: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
    print(f"python -m conformance diff: {verdict_line(result)}", file=sys.stderr)
    return 1 if result["reasons"] else 0
