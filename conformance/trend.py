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
    c, u = cert.get("certification") or {}, cert.get("usage") or {}
    return {"started": str(cert.get("started", "?")), "run_id": cert.get("run_id", "?"),
            "overall": cert.get("overall"), "certified": bool(c.get("certified")),
            "must_pass": int(c.get("must_pass", 0)), "must_claimed": int(c.get("must_claimed", 0)),
            "fail": sorted(r["id"] for r in cert["clauses"] if r["verdict"] == FAIL),
            "fail_count": sum(r["verdict"] == FAIL for r in cert["clauses"]),
            "creates": int(u.get("creates", 0)),
            "tokens": int(u.get("input_tokens", 0)) + int(u.get("output_tokens", 0))}


def changed(d: dict) -> bool:
    """Whether the diff of two nights says something changed that a person should look at."""
    return bool(d["reasons"] or d["clauses"] or d["overall"][0] != d["overall"][1])


def build(certs: list[dict]) -> dict:
    """``target`` (host, model), ``nights`` (``night`` rows, oldest first, each with
    ``changed`` and ``diff``: the Markdown diff against the night before, or None)."""
    if not certs:
        raise TrendError("no certificate given")
    for n, cert in enumerate(certs):
        diff.check(cert, f"certificate {n + 1}")
    certs = sorted(certs, key=lambda c: str(c.get("started", "")))
    targets = {((c.get("target") or {}).get("ws_host"), (c.get("target") or {}).get("model")) for c in certs}
    if len(targets) > 1:
        raise TrendError("the certificates are of more than one target: "
                         + ", ".join(f"{h} model {m}" for h, m in sorted(targets, key=str)))
    nights = []
    for n, cert in enumerate(certs):
        row = night(cert) | {"changed": False, "diff": None}
        if n:
            d = diff.compare(certs[n - 1], cert)
            if changed(d):
                row |= {"changed": True, "diff": diff.render(certs[n - 1], cert, d)}
        nights.append(row)
    host, model = targets.pop()
    return {"target": {"host": host, "model": model}, "nights": nights}


def diff_name(n: int) -> str:
    return f"diff-{n:02d}.md"


def _bars(nights: list[dict], key: str, title: str, colour: str) -> str:
    """One small SVG bar chart; changed nights get a red mark linked to their diff."""
    w, h, bw = 40 * len(nights) + 20, 110, 24
    top = max([n[key] for n in nights] + [1])
    out = [f"<h2>{html.escape(title)}</h2><svg width='{w}' height='{h + 20}' role='img' "
           f"aria-label='{html.escape(title)}' xmlns='http://www.w3.org/2000/svg'>"]
    for i, n in enumerate(nights):
        x, bh = 10 + 40 * i, round(90 * n[key] / top)
        out.append(f"<rect x='{x}' y='{h - bh}' width='{bw}' height='{bh}' fill='{colour}'>"
                   f"<title>{html.escape(n['started'])}: {n[key]}</title></rect>"
                   f"<text x='{x + bw / 2}' y='{h - bh - 3}' font-size='10' text-anchor='middle'>{n[key]}</text>")
        if n["changed"]:
            out.append(f"<a href='{diff_name(i)}'><circle class='changed' cx='{x + bw / 2}' cy='{h + 10}' r='6' "
                       f"fill='#c00'><title>changed: see {diff_name(i)}</title></circle></a>")
    return "".join(out) + "</svg>"


def page(t: dict) -> str:
    e, nights = html.escape, t["nights"]
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Nightly trend</title><style>",
           "body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:2px 6px}tr.changed td{background:#ffe0e0}</style></head><body>",
           f"<h1>Nightly trend: {e(str(t['target']['host']))}, model {e(str(t['target']['model']))}</h1>",
           f"<p>{len(nights)} night(s); {sum(n['changed'] for n in nights)} marked (●): "
           "the diff against the night before found a change.</p>",
           _bars(nights, "must_pass", "MUST clauses passed", "#2a7"),
           _bars(nights, "fail_count", "FAIL clauses", "#c33"),
           _bars(nights, "tokens", "Spend (input + output tokens)", "#57a"),
           "<h2>Nights</h2><table><tr><th>#</th><th>started</th><th>overall</th><th>certified</th>"
           "<th>MUST passed</th><th>FAIL clauses</th><th>creates</th><th>tokens</th><th>change</th></tr>"]
    for i, n in enumerate(nights):
        link = f"<a href='{diff_name(i)}'>diff</a>" if n["changed"] else ""
        out.append(f"<tr{' class=changed' if n['changed'] else ''}><td>{i}</td><td>{e(n['started'])}</td>"
                   f"<td>{e(str(n['overall']))}</td><td>{'yes' if n['certified'] else 'no'}</td>"
                   f"<td>{n['must_pass']}/{n['must_claimed']}</td><td>{e(', '.join(n['fail'])) or '—'}</td>"
                   f"<td>{n['creates']}</td><td>{n['tokens']}</td><td>{link}</td></tr>")
    return "\n".join(out) + "\n</table></body></html>\n"


def render(t: dict) -> dict[str, str]:
    """File name -> text: ``trend.html`` and one ``diff-NN.md`` per changed night."""
    files = {"trend.html": page(t)}
    files |= {diff_name(i): n["diff"] for i, n in enumerate(t["nights"]) if n["changed"]}
    return files


# --- the command line (python -m conformance trend) ---------------------------------------

def collect(paths: list[str]) -> list[dict]:
    """Certificates from files and folders (every ``certificate.json`` below a folder)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("certificate.json"))
            if not found:
                raise TrendError(f"{p}: no certificate.json below this folder")
            files += found
        else:
            files.append(p)
    return [diff.load(f) for f in files]


def add_arguments(p) -> None:
    p.add_argument("sources", nargs="+", help="certificate.json files or folders holding them (one per night)")
    p.add_argument("--out", required=True, metavar="DIR", help="write trend.html and the diffs of changed nights here")


def run(args) -> int:
    """Exit 0 when the page is written, 2 on bad input (one line on stderr)."""
    import sys
    try:
        t = build(collect(args.sources))
    except (diff.CertificateError, TrendError) as exc:
        print(f"python -m conformance trend: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render(t).items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"python -m conformance trend: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    marked = [i for i, n in enumerate(t["nights"]) if n["changed"]]
    print(f"python -m conformance trend: {len(t['nights'])} night(s), changed: "
          f"{', '.join(map(str, marked)) or 'none'} -> {out / 'trend.html'}", file=sys.stderr)
    return 0
