"""The nightly trend of one target: ``python -m conformance trend DIR_OR_CERTS... --out DIR``.

Reads the certificates the nights kept (docs/nightly.md "The trend": the ``nightly-report``
artifacts, or any folder holding them), orders them by ``started`` and draws, per night, the
claimed MUST clauses that passed, the FAIL clauses and the spend (``usage``: creates and
tokens) as small static SVG bar charts in ``trend.html`` (no JavaScript, opens offline;
issue 19 item 4). A night where ``conformance.diff.compare`` finds a change against the night
before (a clause verdict, ``overall``, or a reason the diff would go red) is marked, and its
diff (``diff.render``) is written next to the page as ``diff-NN.md`` and linked.

All certificates must be of one target (same ``ws_host`` and model); else a one-line error,
exit 2, like a file that is not a certificate. No I/O except ``collect`` and ``run``.
"""

from __future__ import annotations

import html
from pathlib import Path

from conformance import diff
from conformance.vocabulary import FAIL


class TrendError(ValueError):
    """The certificates do not make the history of one target."""


def night(cert: dict) -> dict:
    """What the trend shows of one night."""
    certification, usage = cert.get("certification") or {}, cert.get("usage") or {}
    return {"started": str(cert.get("started", "?")), "run_id": cert.get("run_id", "?"),
            "overall": cert.get("overall"), "certified": bool(certification.get("certified")),
            "must_pass": int(certification.get("must_pass", 0)),
            "must_claimed": int(certification.get("must_claimed", 0)),
            "fail": sorted(r["id"] for r in cert["clauses"] if r["verdict"] == FAIL),
            "fail_count": sum(r["verdict"] == FAIL for r in cert["clauses"]),
            "creates": int(usage.get("creates", 0)),
            "tokens": int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))}


def changed(result: dict) -> bool:
    """Whether the diff of two nights says something changed that a person should look at."""
    return bool(result["reasons"] or result["clauses"] or result["overall"][0] != result["overall"][1])


def build(certs: list[dict]) -> dict:
    """``target`` (host, model), ``nights`` (``night`` rows, oldest first, each with
    ``changed`` and ``diff``: the Markdown diff against the night before, or None)."""
    if not certs:
        raise TrendError("no certificate given")
    for index, cert in enumerate(certs):
        diff.check(cert, f"certificate {index + 1}")
    certs = sorted(certs, key=lambda c: str(c.get("started", "")))
    targets = {((c.get("target") or {}).get("ws_host"), (c.get("target") or {}).get("model")) for c in certs}
    if len(targets) > 1:
        raise TrendError("the certificates are of more than one target: "
                         + ", ".join(f"{h} model {m}" for h, m in sorted(targets, key=str)))
    nights = []
    for index, cert in enumerate(certs):
        row = night(cert) | {"changed": False, "diff": None}
        if index:
            result = diff.compare(certs[index - 1], cert)
            if changed(result):
                row |= {"changed": True, "diff": diff.render(certs[index - 1], cert, result)}
        nights.append(row)
    host, model = targets.pop()
    return {"target": {"host": host, "model": model}, "nights": nights}


def diff_name(index: int) -> str:
    return f"diff-{index:02d}.md"


def _bars(nights: list[dict], key: str, title: str, colour: str) -> str:
    """One small SVG bar chart; changed nights get a red mark linked to their diff."""
    width, height, bar_width = 40 * len(nights) + 20, 110, 24
    top = max([row[key] for row in nights] + [1])
    out = [f"<h2>{html.escape(title)}</h2><svg width='{width}' height='{height + 20}' role='img' "
           f"aria-label='{html.escape(title)}' xmlns='http://www.w3.org/2000/svg'>"]
    for index, row in enumerate(nights):
        left, bar_height = 10 + 40 * index, round(90 * row[key] / top)
        out.append(f"<rect x='{left}' y='{height - bar_height}' width='{bar_width}' height='{bar_height}' "
                   f"fill='{colour}'>"
                   f"<title>{html.escape(row['started'])}: {row[key]}</title></rect>"
                   f"<text x='{left + bar_width / 2}' y='{height - bar_height - 3}' font-size='10' "
                   f"text-anchor='middle'>{row[key]}</text>")
        if row["changed"]:
            out.append(f"<a href='{diff_name(index)}'><circle class='changed' cx='{left + bar_width / 2}' "
                       f"cy='{height + 10}' r='6' "
                       f"fill='#c00'><title>changed: see {diff_name(index)}</title></circle></a>")
    return "".join(out) + "</svg>"


def page(trend: dict) -> str:
    escape, nights = html.escape, trend["nights"]
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Nightly trend</title><style>",
           "body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:2px 6px}tr.changed td{background:#ffe0e0}</style></head><body>",
           f"<h1>Nightly trend: {escape(str(trend['target']['host']))}, "
           f"model {escape(str(trend['target']['model']))}</h1>",
           f"<p>{len(nights)} night(s); {sum(row['changed'] for row in nights)} marked (●): "
           "the diff against the night before found a change.</p>",
           _bars(nights, "must_pass", "MUST clauses passed", "#2a7"),
           _bars(nights, "fail_count", "FAIL clauses", "#c33"),
           _bars(nights, "tokens", "Spend (input + output tokens)", "#57a"),
           "<h2>Nights</h2><table><tr><th>#</th><th>started</th><th>overall</th><th>certified</th>"
           "<th>MUST passed</th><th>FAIL clauses</th><th>creates</th><th>tokens</th><th>change</th></tr>"]
    for index, row in enumerate(nights):
        link = f"<a href='{diff_name(index)}'>diff</a>" if row["changed"] else ""
        out.append(f"<tr{' class=changed' if row['changed'] else ''}><td>{index}</td><td>{escape(row['started'])}</td>"
                   f"<td>{escape(str(row['overall']))}</td><td>{'yes' if row['certified'] else 'no'}</td>"
                   f"<td>{row['must_pass']}/{row['must_claimed']}</td>"
                   f"<td>{escape(', '.join(row['fail'])) or '—'}</td>"
                   f"<td>{row['creates']}</td><td>{row['tokens']}</td><td>{link}</td></tr>")
    return "\n".join(out) + "\n</table></body></html>\n"


def render(trend: dict) -> dict[str, str]:
    """File name -> text: ``trend.html`` and one ``diff-NN.md`` per changed night."""
    files = {"trend.html": page(trend)}
    files |= {diff_name(i): n["diff"] for i, n in enumerate(trend["nights"]) if n["changed"]}
    return files


# --- the command line (python -m conformance trend) ---------------------------------------

def collect(paths: list[str]) -> list[dict]:
    """Certificates from files and folders (every ``certificate.json`` below a folder)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("certificate.json"))
            if not found:
                raise TrendError(f"{path}: no certificate.json below this folder")
            files += found
        else:
            files.append(path)
    return [diff.load(f) for f in files]


def add_arguments(parser) -> None:
    parser.add_argument("sources", nargs="+", help="certificate.json files or folders holding them (one per night)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="write trend.html and the diffs of changed nights here")


def run(args) -> int:
    """Exit 0 when the page is written, 2 on bad input (one line on stderr)."""
    import sys
    try:
        trend = build(collect(args.sources))
    except (diff.CertificateError, TrendError) as exc:
        print(f"python -m conformance trend: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render(trend).items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"python -m conformance trend: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    marked = [i for i, n in enumerate(trend["nights"]) if n["changed"]]
    print(f"python -m conformance trend: {len(trend['nights'])} night(s), changed: "
          f"{', '.join(map(str, marked)) or 'none'} -> {out / 'trend.html'}", file=sys.stderr)
    return 0
