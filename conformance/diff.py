"""Compare two certificates: ``python -m conformance diff OLD.json NEW.json``.

Prints a Markdown report — verdict changes per clause (regressions first), new or vanished
event types, unknown event types and fields, error codes and types, handshake header names
(the ``surface`` of ``conformance.drift``), coverage and usage — and exits 1 on a regression:

=================================================  ==========
change                                             regression
=================================================  ==========
a clause's verdict got worse (rank below)          yes
a new unknown event type, unknown field or         yes
unknown (undocumented, ``drift``) error code
anything else (improvements, vanished types,       no
new known types, header names, coverage, usage)
=================================================  ==========

Clause rank, best to worst: PASS, INFO, UNSUPPORTED, UNTESTED, RETIRED (not judged, rank 0),
KNOWN 1, NON-STRICT 2, FLAKY 3, FAIL 4. No I/O except ``load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.files import read_document

RANK = {"PASS": 0, "INFO": 0, "UNSUPPORTED": 0, "UNTESTED": 0, "RETIRED": 0,
        "KNOWN": 1, "NON-STRICT": 2, "FLAKY": 3, "FAIL": 4}
_FORMAT = "responses-ws-conformance/certificate"


class CertificateError(ValueError):
    """A file given to ``diff`` is not a readable certificate; names the file."""


def load(path: str | Path) -> dict:
    path = Path(path)
    data = read_document(path, "JSON", CertificateError)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise CertificateError(f"{path}: not a certificate.json of this suite (format {_FORMAT!r} expected)")
    if not isinstance(data.get("clauses"), list):
        raise CertificateError(f"{path}: clauses: missing or not a list")
    return data


def _clauses(cert: dict) -> dict[str, dict]:
    return {r["id"]: r for r in cert.get("clauses", []) if isinstance(r, dict) and "id" in r}


def compare(old: dict, new: dict) -> dict:
    """The differences, as data: ``regressions`` (list of text), ``clauses`` (rows of
    (id, level, old, new, kind)), ``surface`` changes, ``coverage`` and ``usage`` pairs."""
    a, b = _clauses(old), _clauses(new)
    rows = []
    for cid in sorted(set(a) | set(b)):
        va = a.get(cid, {}).get("verdict", "(absent)")
        vb = b.get(cid, {}).get("verdict", "(absent)")
        if va == vb:
            continue
        ra, rb = RANK.get(va, 0), RANK.get(vb, 0)
        kind = "regression" if rb > ra else ("improvement" if rb < ra else "change")
        rows.append((cid, (b.get(cid) or a.get(cid))["level"], va, vb, kind))
    order = {"regression": 0, "improvement": 1, "change": 2}
    rows.sort(key=lambda r: (order[r[4]], -RANK.get(r[3], 0), r[0]))
    regressions = [f"clause {cid} ({lvl}): {va} → {vb}" for cid, lvl, va, vb, k in rows if k == "regression"]

    recorded = ("surface" in old, "surface" in new)
    # a certificate from before drift recording: compare no surface rather than all of it
    sa, sb = (old.get("surface") or {}, new.get("surface") or {}) if all(recorded) else ({}, {})
    surface: dict[str, tuple[list, list]] = {}
    for key in ("event_types", "unknown_event_types", "error_codes", "unknown_error_codes", "error_types",
                "handshake_headers"):
        xa, xb = set(sa.get(key) or []), set(sb.get(key) or [])
        surface[key] = (sorted(xb - xa), sorted(xa - xb))
    fa = {(t, f) for t, fs in (sa.get("unknown_fields") or {}).items() for f in fs}
    fb = {(t, f) for t, fs in (sb.get("unknown_fields") or {}).items() for f in fs}
    surface["unknown_fields"] = ([f"{t}.{f}" for t, f in sorted(fb - fa)], [f"{t}.{f}" for t, f in sorted(fa - fb)])
    for key, what in (("unknown_event_types", "new unknown event type"), ("unknown_fields", "new unknown field"),
                      ("unknown_error_codes", "new unknown error code")):
        regressions += [f"{what} {x}" for x in surface[key][0]]
    return {"regressions": regressions, "clauses": rows, "surface": surface,
            "surface_recorded": recorded,
            "overall": (old.get("overall"), new.get("overall")),
            "coverage": ((old.get("coverage") or {}).get("all", {}), (new.get("coverage") or {}).get("all", {})),
            "usage": (old.get("usage") or {}, new.get("usage") or {})}


def _run(cert: dict) -> str:
    t = cert.get("target") or {}
    return (f"run `{cert.get('run_id', '?')}` ({cert.get('started', '?')}), {t.get('ws_host', '?')}, "
            f"profile {cert.get('profile', '?')}, model {t.get('model', '?')}: **{cert.get('overall', '?')}**")


def render(old: dict, new: dict, d: dict | None = None) -> str:
    """The Markdown report."""
    d = d or compare(old, new)
    out = ["# Conformance diff", "", f"- old: {_run(old)}", f"- new: {_run(new)}", ""]
    if d["regressions"]:
        out += [f"## Regressions ({len(d['regressions'])})", ""] + [f"- {r}" for r in d["regressions"]] + [""]
    else:
        out += ["## Regressions", "", "None.", ""]
    out += ["## Clause verdicts", ""]
    if d["clauses"]:
        out += ["| clause | level | old | new | change |", "|---|---|---|---|---|"]
        out += [f"| {cid} | {lvl} | {va} | {vb} | {k} |" for cid, lvl, va, vb, k in d["clauses"]]
    else:
        out.append("No clause changed its verdict.")
    out += ["", "## Surface", ""]
    if not all(d["surface_recorded"]):
        out += ["(one certificate records no surface: it predates drift recording)", ""]
    names = {"event_types": "event types", "unknown_event_types": "unknown event types",
             "unknown_fields": "unknown fields", "error_codes": "error codes",
             "unknown_error_codes": "unknown (undocumented) error codes", "error_types": "error types",
             "handshake_headers": "handshake header names"}
    lines = []
    for key, label in names.items():
        added, gone = d["surface"][key]
        if added:
            lines.append(f"- new {label}: " + ", ".join(f"`{x}`" for x in added))
        if gone:
            lines.append(f"- vanished {label}: " + ", ".join(f"`{x}`" for x in gone))
    out += lines or ["No change."]
    ca, cb = d["coverage"]
    ua, ub = d["usage"]
    out += ["", "## Coverage and usage", "", "| | old | new |", "|---|---|---|",
            f"| clauses with a case | {ca.get('with_cases', '?')}/{ca.get('clauses', '?')} | "
            f"{cb.get('with_cases', '?')}/{cb.get('clauses', '?')} |",
            f"| clauses judged | {ca.get('judged', '?')} | {cb.get('judged', '?')} |"]
    for key in ("creates", "http_requests", "input_tokens", "output_tokens"):
        out.append(f"| {key} | {ua.get(key, '?')} | {ub.get(key, '?')} |")
    return "\n".join(out) + "\n"


# --- the command line (python -m conformance diff) ----------------------------------------

def add_arguments(p) -> None:
    p.add_argument("old", help="the earlier certificate.json")
    p.add_argument("new", help="the later certificate.json")
    p.add_argument("--output", "-o", default=None, metavar="FILE", help="also write the Markdown report here")


def run(args) -> int:
    """Markdown on stdout (and in --output), exit 1 on a regression, 2 on unusable input."""
    import sys
    try:
        old, new = load(args.old), load(args.new)
    except CertificateError as exc:
        print(f"python -m conformance diff: {exc}", file=sys.stderr)
        return 2
    result = compare(old, new)
    text = render(old, new, result)
    sys.stdout.write(text)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"python -m conformance diff: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
    return 1 if result["regressions"] else 0
