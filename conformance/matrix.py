"""Compatibility matrix: ``python -m conformance matrix CERT.json... --out DIR``.

Puts several certificates side by side (targets, models or suite versions; issue 19 item 3):
clauses down, grouped by area (spec section) with their level; one column per certificate,
headed by target host, profile, model, suite version and run date; each cell the clause
verdict as the certificate has it. Above the table each column's claimed profile,
``overall`` and ``certification.certified``. Rows where the columns differ are marked.

Writes ``matrix.html`` (static HTML/CSS, nothing fetched, opens offline) and ``matrix.md``
into ``--out`` (or ``--html FILE`` / ``--markdown FILE``). Certificates are read and checked
by ``conformance.diff.load``: an unknown verdict or a file that is not a certificate is a
one-line error, exit 2. No I/O except ``run``.
"""

from __future__ import annotations

import html
from pathlib import Path

from conformance import diff

NONE = "—"     # the clause is not in that certificate (another suite version)


def column(cert: dict) -> dict:
    """The header facts of one certificate's column."""
    target = cert.get("target") or {}
    certification = cert.get("certification") or {}
    return {"host": target.get("ws_host", "?"), "profile": cert.get("profile") or target.get("profile", "?"),
            "model": target.get("model", "?"), "suite": cert.get("suite_version", "?"),
            "date": str(cert.get("started", "?"))[:19], "overall": cert.get("overall", "?"),
            "certified": bool(certification.get("certified")),
            "must": f"{certification.get('must_pass', '?')}/{certification.get('must_claimed', '?')}"}


def build(certs: list[dict]) -> dict:
    """The matrix as data: ``columns`` (header facts) and ``areas``: [(area, rows)], each row
    (clause id, level, [verdict per column], differs). Areas and clauses in first-seen order."""
    for n, cert in enumerate(certs):
        diff.check(cert, f"certificate {n + 1}")
    by_column = [{r["id"]: r for r in cert["clauses"]} for cert in certs]
    order: dict[str, tuple[str, str]] = {}
    for cert in certs:
        for r in cert["clauses"]:
            order.setdefault(r["id"], (r.get("area") or r["id"].split("-")[0], r.get("level", "")))
    areas: dict[str, list] = {}
    for cid, (area, level) in order.items():
        cells = [b[cid]["verdict"] if cid in b else NONE for b in by_column]
        areas.setdefault(area, []).append((cid, level, cells, len(set(cells)) > 1))
    return {"columns": [column(c) for c in certs], "areas": list(areas.items())}


def _head(col: dict) -> str:
    return f"{col['host']} · {col['profile']} · {col['model']} · suite {col['suite']} · {col['date']}"


def markdown(matrix: dict) -> str:
    cols = matrix["columns"]
    out = ["# Compatibility matrix", ""]
    out += ["| | " + " | ".join(f"{n + 1}" for n in range(len(cols))) + " |",
            "|---|" + "---|" * len(cols)]
    for label, key in (("target", "host"), ("profile", "profile"), ("model", "model"),
                       ("suite", "suite"), ("run", "date"), ("overall", "overall"), ("MUST passed", "must")):
        out.append(f"| {label} | " + " | ".join(str(c[key]) for c in cols) + " |")
    out.append("| certified | " + " | ".join("yes" if c["certified"] else "no" for c in cols) + " |")
    out += ["", "Rows marked ≠ differ between the columns.", "",
            "| clause | level | " + " | ".join(f"{n + 1}" for n in range(len(cols))) + " | |",
            "|---|---|" + "---|" * len(cols) + "---|"]
    for area, rows in matrix["areas"]:
        out.append(f"| **{area}** | |" + " |" * len(cols) + " |")
        for cid, level, cells, differs in rows:
            out.append(f"| {cid} | {level} | " + " | ".join(cells) + f" | {'≠' if differs else ''} |")
    return "\n".join(out) + "\n"


_CSS = """body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th.area{background:#eee}
tr.differs td{background:#fff6cc}tr.differs td.id::after{content:" ≠";color:#a60}
.PASS,.INFO,.yes{color:#070}.FAIL,.no{color:#b00;font-weight:bold}.FLAKY,.ERROR{color:#c60}
.UNSUPPORTED,.UNTESTED,.NOT-REACHED,.RETIRED,.SKIPPED{color:#888}"""


def page(matrix: dict) -> str:
    escape = html.escape
    cols = matrix["columns"]
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Compatibility matrix</title>",
           f"<style>{_CSS}</style></head><body><h1>Compatibility matrix</h1><table>",
           "<tr><th></th>" + "".join(f"<th>{escape(_head(c))}</th>" for c in cols) + "</tr>"]
    for label, key in (("profile", "profile"), ("overall", "overall"), ("MUST passed", "must")):
        out.append(f"<tr><th>{label}</th>" + "".join(f"<td class='{escape(str(c[key]))}'>{escape(str(c[key]))}</td>"
                                                    for c in cols) + "</tr>")
    out.append("<tr><th>certified</th>" + "".join(
        f"<td class='{'yes' if c['certified'] else 'no'}'>{'yes' if c['certified'] else 'no'}</td>" for c in cols)
        + "</tr></table><p>Highlighted rows (≠) differ between the columns.</p><table>")
    out.append("<tr><th>clause</th><th>level</th>" + "".join(f"<th>{n + 1}</th>" for n in range(len(cols))) + "</tr>")
    for area, rows in matrix["areas"]:
        out.append(f"<tr><th class='area' colspan='{len(cols) + 2}'>{escape(area)}</th></tr>")
        for cid, level, cells, differs in rows:
            out.append(f"<tr{' class=differs' if differs else ''}><td class='id'>{escape(cid)}</td>"
                       f"<td>{escape(level)}</td>"
                       + "".join(f"<td class='{escape(v)}'>{escape(v)}</td>" for v in cells) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


# --- the command line (python -m conformance matrix) --------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("certificates", nargs="+", help="certificate.json files, one column each")
    parser.add_argument("--out", default=None, metavar="DIR", help="write matrix.html and matrix.md here")
    parser.add_argument("--html", default=None, metavar="FILE", help="write the HTML page here")
    parser.add_argument("--markdown", default=None, metavar="FILE", help="write the Markdown table here")


def run(args) -> int:
    """Writes the files asked for (Markdown on stdout when none); exit 0, or 2 on bad input."""
    import sys
    try:
        matrix = build([diff.load(p) for p in args.certificates])
    except diff.CertificateError as exc:
        print(f"python -m conformance matrix: {exc}", file=sys.stderr)
        return 2
    targets = []
    if args.out:
        targets += [(Path(args.out) / "matrix.html", page), (Path(args.out) / "matrix.md", markdown)]
    if args.html:
        targets.append((Path(args.html), page))
    if args.markdown:
        targets.append((Path(args.markdown), markdown))
    if not targets:
        sys.stdout.write(markdown(matrix))
    for path, render in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(matrix), encoding="utf-8")
        except OSError as exc:
            print(f"python -m conformance matrix: cannot write {path}: {exc}", file=sys.stderr)
            return 2
    return 0
