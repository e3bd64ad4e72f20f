"""``index.html``: one self-contained page (no external assets, no script) summarising the
certificate — the page a person reads first (docs/design.md "Reports")."""

from __future__ import annotations

from html import escape

from conformance import caserecord
from conformance.caserecord import CaseRecord
from conformance.report import findings
from conformance.report import pictures
from conformance.report.allure import area_sort_key
from conformance.vocabulary import ERROR, HTML_COLOURS, HTML_ORDER

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#1f2328}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.6em;font-size:1.15em}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} .v{font-weight:600;white-space:nowrap} .muted{color:#6e7781} code{font-size:12px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
details{margin:2px 0} pre{white-space:pre-wrap;font-size:12px;background:#f6f8fa;padding:6px;margin:4px 0}
.kv td:first-child{font-weight:600;width:14em} .kv td{padding:2px 8px}
.answer{font-size:1.25em;font-weight:600;margin:.4em 0} .answer.ok{color:#1a7f37} .answer.no{color:#cf222e}
.reasons{margin:.2em 0 .6em} .nowrap{white-space:nowrap} .facts{margin:.2em 0} .legend{font-size:11px}
.areas{display:grid;grid-template-columns:auto 1fr auto;gap:3px 10px;align-items:center}
.area{display:contents} .area .bar{display:flex;height:12px;border-radius:3px;overflow:hidden;min-width:200px}
.area .counts{font-size:12px;white-space:nowrap}
.evidence{border:1px solid #d0d7de;border-radius:6px;padding:4px 12px;margin:10px 0}
.evidence h3{margin:.3em 0;font-size:1.05em} .evidence ul{margin:.3em 0}
table.stream{width:auto;font-size:12px} table.stream td{padding:1px 6px;border-bottom:1px solid #eaeef2}
table.stream tr.hit td{background:#ffebe9;font-weight:600} table.stream tr.why td{background:#ffebe9;color:#82071e}
table.stream tr.gap td{color:#6e7781;font-style:italic}
pre.diff del{background:#ffd7d5;text-decoration:none} pre.diff ins{background:#ccffd8;text-decoration:none}
"""


def _v(verdict: str) -> str:
    return f'<span class="v" style="color:{HTML_COLOURS.get(verdict, "#1f2328")}">{escape(verdict)}</span>'


def _area_bars(clauses: list[dict]) -> list[str]:
    """One stacked bar per area (lanes and steering among them): its clauses' verdicts."""
    by_area: dict[str, list[str]] = {}
    for row in clauses:
        by_area.setdefault(row.get("area") or "unsectioned", []).append(row["verdict"])
    out = ['<h2>Areas</h2><div class="areas">']
    for area, verdicts in sorted(by_area.items(), key=lambda kv: area_sort_key(kv[0])):
        kinds = sorted(set(verdicts), key=lambda v: HTML_ORDER.get(v, 9))
        segments = "".join(f'<span style="flex:{verdicts.count(v)};background:{HTML_COLOURS.get(v, "#8c959f")}" '
                           f'title="{verdicts.count(v)} {escape(v)}"></span>' for v in kinds)
        counts = ", ".join(f"{verdicts.count(v)} {_v(v)}" for v in kinds)
        out.append(f'<div class="area"><span class="name">{escape(area)}</span><span class="bar">{segments}</span>'
                   f'<span class="counts">{counts}</span></div>')
    out.append("</div>")
    return out


def _headline(cert: dict) -> str:
    """Certified or not, in one line, with what keeps it from being certified."""
    cert_ = cert["certification"]
    if cert_["certified"]:
        return (f'<p class="answer ok">Certified: MUST {cert_["must_pass"]}/{cert_["must_claimed"]} '
                "claimed clauses PASS.</p>")
    # the whole reasons are in the Run table below; here each fits a line or two
    reasons = "".join(f"<li>{escape(findings.sentence(r, 240))}</li>" for r in cert_["reasons"])
    return (f'<p class="answer no">Not certified (MUST {cert_["must_pass"]}/{cert_["must_claimed"]} '
            f"claimed clauses PASS)</p><ul class=reasons>{reasons}</ul>")


def _what_failed(groups: list[findings.Group], errors: list[dict]) -> list[str]:
    """The first screen's list: each failing clause, its requirement, how many cases, a link to
    its evidence below."""
    if not groups and not errors:
        return ["<h2>What failed</h2><p>Nothing: no clause FAIL, FLAKY, NON-STRICT or ERROR.</p>"]
    out = ['<h2>What failed</h2><table class="failed">']
    for group in groups:
        out.append(f'<tr><td>{_v(group.verdict)}</td><td><a href="#evidence-{escape(group.clause)}">'
                   f"<code>{escape(group.clause)}</code></a></td><td>{escape(group.level)}</td>"
                   f"<td>{escape(group.requirement)}</td><td class='muted nowrap'>{len(group.cases)} case(s)</td></tr>")
    for row in errors:
        out.append(f'<tr><td>{_v(row["verdict"])}</td><td><a href="#clause-{escape(row["id"])}">'
                   f'<code>{escape(row["id"])}</code></a></td><td>{escape(row["level"])}</td>'
                   f'<td>{escape(row.get("reason") or row["requirement"])}</td>'
                   f'<td class=muted>{len(row.get("cases", []))} case(s)</td></tr>')
    out.append("</table>")
    return out


def _evidence(group: findings.Group, area: str, cases: dict[str, CaseRecord],
              transcripts: dict[str, str]) -> list[str]:
    """One failing clause: its picture (from the first case whose transcript shows it), its
    distinct messages and the cases under it."""
    picture, shown_in = "", ""
    for nodeid in group.cases:
        case = cases.get(nodeid)
        finding = next((f for f in case.findings if f["clause"] == group.clause), None) if case else None
        if finding is None or not transcripts.get(nodeid):
            continue
        picture = pictures.clause_picture(group.clause, area, finding, transcripts[nodeid])
        if picture:
            shown_in = nodeid
            break
    out = [f'<section class="evidence" id="evidence-{escape(group.clause)}"><h3>{_v(group.verdict)} '
           f"<code>{escape(group.clause)}</code> <span class=muted>{escape(group.level)}</span></h3>"
           f"<p>{escape(group.requirement)}</p>"]
    if picture:
        link = cases[shown_in].transcript_path if shown_in in cases else ""
        out.append(f"<p class=muted>In <code>{escape(shown_in)}</code>"
                   + (f' (<a href="{escape(link)}">transcript</a>)' if link else "") + ":</p>" + picture)
    messages = sorted(group.messages.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    items = [f"<li>{escape(m)} <span class=muted>— {len(c)} case(s)</span></li>" for m, c in messages[:20]]
    out.append(f"<ul>{items[0]}</ul>")
    if len(messages) > 1:
        more = f"<li class=muted>… {len(messages) - 20} other message(s)</li>" if len(messages) > 20 else ""
        out.append(f"<details><summary>{len(messages) - 1} other distinct finding(s)</summary>"
                   f"<ul>{''.join(items[1:])}{more}</ul></details>")
    rows = "".join(f"<li><code>{escape(n)}</code>" + (f' <a href="{escape(cases[n].transcript_path)}">transcript</a>'
                                                     if n in cases and cases[n].transcript_path else "") + "</li>"
                   for n in group.cases)
    out.append(f"<details><summary>{len(group.cases)} case(s)</summary><ul>{rows}</ul></details></section>")
    return out


_HEADINGS = {"observed": "observed traffic (not a certification)", "client": "client conformance certificate"}


def _subject(cert: dict) -> str:
    """What the run judged, in a few words: the client's command in client mode, else the target."""
    client = cert.get("client") or {}
    if cert.get("mode") == "client":
        return client.get("command") or client.get("test_command") or "client"
    target = cert["target"]
    return f"{target.get('ws_host', '')}{target.get('ws_path', '')}"


def _subject_rows(cert: dict) -> list[tuple[str, str]]:
    """The first rows of the run table: who was judged and under what claims. In client mode
    the reference server only plays the scenarios: its profile is not the client's claim."""
    target = cert["target"]
    if cert.get("mode") == "client":
        client = cert.get("client") or {}
        rows = [("Client", client.get("command") or "(none: only its own tests)")]
        if client.get("command"):
            rows.append(("Claims", ", ".join(client.get("claims") or ())
                         or "none beyond the contract (lane and steering clauses UNSUPPORTED)"))
        if client.get("test_command"):
            rows.append(("Own tests", client["test_command"] + (f" (also under scenario {client['test_scenario']})"
                                                               if client.get("test_scenario") else "")))
        rows.append(("Server", "the embedded reference server, playing the scenarios "
                               f"(profile {cert['profile']})"))
        return rows
    embedded = " (embedded reference server)" if target.get("embedded") else ""
    claims = f" (claims {', '.join(cert['spec_profiles'])})" if cert.get("spec_profiles") else ""
    return [("Target", _subject(cert) + embedded), ("Profile", cert["profile"] + claims)]


def render_html(cert: dict, transcripts: dict[str, str] | None = None) -> str:
    """The page; ``transcripts`` (node id -> transcript text) lets it draw failing streams."""
    transcripts = transcripts or {}
    records = caserecord.all_of(cert["cases"])
    target = cert["target"]
    cov = cert["coverage"]
    case_counts = cert["counts"]["cases"]
    clause_counts = cert["counts"]["clauses"]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Conformance {escape(cert['overall'])} — {escape(_subject(cert))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Responses API WebSocket mode — " + _HEADINGS.get(cert.get("mode", ""), "conformance certificate") + "</h1>",
        f'<p><span class="badge" style="background:{HTML_COLOURS.get(cert["overall"], "#1f2328")}">'
        f'{escape(cert["overall"])}</span> <a href="badge.svg"><img src="badge.svg" alt="badge" '
        f'style="vertical-align:middle"></a> <span class="muted">run {escape(cert["run_id"])}, '
        f'suite {escape(cert["suite_version"])}{", strict" if cert.get("strict") else ""}</span></p>',
    ]
    if cert.get("stalled"):     # the run stopped early: say so before anything else
        stalled = cert["stalled"]
        out.append(f'<p><strong>Run stopped early ({escape(str(stalled.get("reason", "")))}) since '
                   f'{escape(str(stalled.get("since", "")))}</strong>: {escape(str(stalled.get("message", "")))}; '
                   'later cases that needed a turn are ERROR.</p>')
    out.append(_headline(cert))
    subject = _subject_rows(cert)      # the target or client, then its profile or claims
    rows = [*subject,
            ("Model", target.get("model", "")),
            ("Server capabilities" if cert.get("mode") == "client" else "Capabilities",
             ", ".join(target.get("capabilities", []))),
            ("Time", f"{cert['started']} → {cert['finished']} ({cert['duration_s']} s)"),
            ("Cases", ", ".join(f"{n} {k}" for k, n in case_counts.items() if n and k != "total") + f" (total {case_counts['total']})"),
            ("Clauses", ", ".join(f"{n} {k}" for k, n in clause_counts.items() if n)),
            ("Coverage", f"{cov['all']['with_cases']}/{cov['all']['clauses']} clauses have a case — "
                                   + ", ".join(f"{lv} {cov[lv]['with_cases']}/{cov[lv]['clauses']}" for lv in ("MUST", "SHOULD", "MAY")))]
    if cert.get("observed"):
        observed = cert["observed"]
        rows.append(("Observed", f"{observed['connections']} connection(s) through the proxy at {observed['listen']}: "
                                 f"{observed['frames']['from_client']} client and {observed['frames']['from_upstream']} upstream "
                                 f"frames, {observed['refused']} handshake(s) refused, {observed['unreachable']} unreachable"))
    cert_ = cert["certification"]
    rows.append(("Certified", f"yes: MUST {cert_['must_pass']}/{cert_['must_claimed']}" if cert_["certified"]
                 else f"no (MUST {cert_['must_pass']}/{cert_['must_claimed']}): " + "; ".join(cert_["reasons"])))
    spent = cert.get("usage") or {}
    if spent:
        rows.append(("Spent", f"{spent.get('creates', 0)} response.create, {spent.get('http_requests', 0)} HTTP "
                              f"requests, {spent.get('input_tokens', 0)} input and "
                              f"{spent.get('output_tokens', 0)} output tokens"))

    group_list = findings.group_by_clause(cert)
    groups = {g.clause: g for g in group_list}
    errors = [r for r in cert["clauses"] if r["verdict"] == ERROR]
    facts = [subject[0][1], *(f"{key.lower()} {value}" for key, value in subject[1:2])]
    out.append(f'<p class="facts">{" · ".join(map(escape, facts))} · '
               f'<a href="#run">{escape(dict(rows)["Cases"])}</a></p>')
    out += _what_failed(group_list, errors)
    out += _area_bars(cert["clauses"])

    if group_list:      # the evidence: each failing clause once, with its picture
        areas = {r["id"]: r.get("area") or "" for r in cert["clauses"]}
        cases = {case.nodeid: case for case in records}
        out.append("<h2>Evidence</h2>")
        for group in group_list:
            out += _evidence(group, areas.get(group.clause, ""), cases, transcripts)
    out.append('<h2 id="run">Run</h2><table class="kv">')
    out += [f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows]
    out.append("</table>")
    if cert.get("perf"):
        out += _perf_section(cert["perf"])

    out.append(f"<h2>Details</h2><details><summary>All {len(cert['clauses'])} clauses</summary>"
               "<table><tr><th>Verdict</th><th>Clause</th><th>Level</th><th>Requirement</th><th>Cases / findings</th></tr>")
    order = HTML_ORDER
    for row in sorted(cert["clauses"], key=lambda r: (order.get(r["verdict"], 9), r["id"])):
        detail = ""
        if row["id"] in groups:      # its findings are said once, in its evidence above
            detail = f'<br><a href="#evidence-{escape(row["id"])}">evidence</a>'
        elif row["findings"]:
            items = "".join(f"<li><code>{escape(f.get('nodeid', ''))}</code>: {escape(f['message'])}"
                            + (f" <span class=muted>[{escape(f['evidence'])}]</span>" if f.get("evidence") else "")
                            + "</li>" for f in row["findings"][:10])
            detail = f"<details><summary>{row['findings_total']} finding(s)</summary><ul>{items}</ul></details>"
        cases_cell = f"<span class=muted>{len(row['cases'])} case(s)</span>" if row["cases"] else ""
        if row.get("reason"):
            cases_cell += f"<br><span class=muted>{escape(row['reason'])}</span>"
        if row.get("not_reached"):
            cases_cell += (f"<br><span class=muted>not reached by {escape(', '.join(n.split('::')[-1] for n in row['not_reached'][:5]))}"
                           + (" …" if len(row["not_reached"]) > 5 else "") + "</span>")
        out.append(f"<tr id=\"clause-{escape(row['id'])}\"><td>{_v(row['verdict'])}</td><td><code>{escape(row['id'])}</code></td><td>{escape(row['level'])}</td>"
                   f"<td>{escape(row['requirement'])}<br><span class=muted>{escape(row['source'])}</span></td>"
                   f"<td>{cases_cell}{detail}</td></tr>")
    out.append("</table></details>")

    # non-passing cases first: a reader looking for a case came for a failing one
    ordered = sorted(records, key=lambda case: (order.get(case.verdict, 9), case.nodeid))
    out.append(f"<details><summary>All {len(ordered)} cases</summary>"
               "<table><tr><th>Verdict</th><th>Case</th><th>Clauses</th><th>Messages</th></tr>")
    for case in ordered:
        own, shared = _case_messages(case, groups)
        msgs = "".join(f"<pre>{escape(m)}</pre>" for m in own[:6])
        if shared:
            msgs += "<p>" + "; ".join(f'the finding under <a href="#evidence-{escape(cid)}">{escape(cid)}</a> '
                                      f"({len(groups[cid].cases)} cases)" for cid in shared) + "</p>"
        if case.transcript_path:
            msgs += f'<a href="{escape(case.transcript_path)}">transcript</a>'
        out.append(f"<tr><td>{_v(case.verdict)}</td><td><code>{escape(case.nodeid)}</code></td>"
                   f"<td>{escape(', '.join(case.clauses))}"
                   + (f"<br><span class=muted>not reached: {escape(', '.join(case.not_reached))}</span>"
                      if case.not_reached else "")
                   + f"</td><td>{msgs}</td></tr>")
    out.append("</table></details><p class=muted>Verdicts: PASS every checked MUST/SHOULD held; FAIL a MUST was violated; "
               "NON-STRICT only SHOULDs were violated; INFO observations/extensions; UNSUPPORTED the profile does "
               "not claim the feature; ERROR the run could not judge; NOT-REACHED cases mark the clause but each stopped "
               "(e.g. at an earlier MUST violation) before checking it; UNTESTED no case checked the clause. "
               "A clause is PASS only when some case checked it and it held.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _case_messages(case: CaseRecord, groups: dict[str, findings.Group]) -> tuple[list[str], list[str]]:
    """A case's messages without the findings a clause already says for several cases, and
    those clauses."""
    own, shared = [], []
    for message in case.messages:
        verdict, _, rest = message.partition(" ")
        cid, sep, text = rest.partition(": ")
        group = groups.get(cid)
        if verdict in findings.DEVIATIONS and sep and group is not None and group.said(_without_evidence(case, cid, text)):
            if cid not in shared:
                shared.append(cid)
            continue
        own.append(message)
    return own, shared


def _without_evidence(case: CaseRecord, cid: str, text: str) -> str:
    """The finding's message as the case's findings hold it (a message may end with " [evidence]")."""
    for f in case.findings:
        if f["clause"] == cid and text.startswith(f.get("message", "\0")):
            return f["message"]
    return text


def _polyline(values: list[float], left: float, step: float, bottom: float, scale: float) -> str:
    return " ".join(f"{left + i * step:.1f},{bottom - v * scale:.1f}" for i, v in enumerate(values))


def chart_svg(series: dict[str, list[float]], unit: str, width: int = 520, height: int = 200) -> str:
    """A small inline line chart: one line per series over turn numbers (no script, no assets)."""
    colors = ("#0969da", "#cf222e", "#1a7f37", "#8250df")
    turns = max((len(v) for v in series.values()), default=0)
    top = max((max(v) for v in series.values() if v), default=0.0) or 1.0
    left, bottom, plot_w, plot_h = 48, height - 28, width - 60, height - 48
    step = plot_w / max(1, turns - 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(unit)} per turn">',
             f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#8c959f"/>',
             f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{bottom - plot_h}" stroke="#8c959f"/>',
             f'<text x="{left - 4}" y="{bottom - plot_h + 4}" font-size="10" text-anchor="end">{top:.0f}</text>',
             f'<text x="{left - 4}" y="{bottom}" font-size="10" text-anchor="end">0</text>',
             f'<text x="{left + plot_w}" y="{bottom + 14}" font-size="10" text-anchor="end">turn {turns}</text>',
             f'<text x="{left}" y="{bottom + 14}" font-size="10">turn 1 — {escape(unit)}</text>']
    for index, (name, values) in enumerate(series.items()):
        color = colors[index % len(colors)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{_polyline(values, left, step, bottom, plot_h / top)}"/>')
        parts.append(f'<text x="{left + 8}" y="{bottom - plot_h + 14 + 13 * index}" font-size="11" '
                     f'fill="{color}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _perf_section(perf: dict) -> list[str]:
    gain, websocket, http = perf["gain"], perf["ws"], perf["http"]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    rows = [("Gain (HTTP wall time / WebSocket wall time)",
             f"{gain['ratio']}x (min {gain['min']}, max {gain['max']}; per repetition {', '.join(map(str, gain['per_repetition']))})"),
            ("Loop", f"{perf['turns']} forced tool-call turns, {perf['repetitions']} repetition(s) per transport, interleaved"),
            ("Wall time per loop (s)", f"WebSocket {', '.join(map(str, websocket['wall_s']))}; HTTP {', '.join(map(str, http['wall_s']))}"),
            ("Bytes sent, last turn", f"WebSocket {websocket['bytes_sent'][-1]:g}, HTTP {http['bytes_sent'][-1]:g}" if websocket["bytes_sent"] else ""),
            ("Billed input tokens, last turn", f"WebSocket {websocket['input_tokens'][-1]:g}, HTTP {http['input_tokens'][-1]:g}"
             if websocket["input_tokens"] else ""),
            ("Mean ms to response.created / first delta / terminal",
             f"WebSocket {mean(websocket['to_created_ms']):.1f} / {mean(websocket['to_first_delta_ms']):.1f} / {mean(websocket['to_terminal_ms']):.1f}; "
             f"HTTP {mean(http['to_created_ms']):.1f} / {mean(http['to_first_delta_ms']):.1f} / {mean(http['to_terminal_ms']):.1f}")]
    out = ["<h2>WebSocket speed-up (perf, INFO)</h2>", '<table class="kv">']
    out += [f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows]
    out.append("</table>")
    out += [f"<p><b>INFO</b>: {escape(f)}</p>" for f in perf.get("findings", [])]
    out.append("<p>" + chart_svg({"WebSocket, ms to terminal": websocket["to_terminal_ms"],
                                  "HTTP full history, ms to terminal": http["to_terminal_ms"]}, "ms per turn")
               + chart_svg({"WebSocket, bytes sent": websocket["bytes_sent"],
                            "HTTP full history, bytes sent": http["bytes_sent"]}, "bytes per turn") + "</p>")
    return out
