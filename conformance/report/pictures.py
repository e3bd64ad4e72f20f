"""Pictures of a failing clause for ``index.html`` (issue 19 item 1): the offending stream as a
compact table (one row per frame, the frame that broke the rule highlighted with the rule in one
sentence), a deltas-vs-``.done`` difference as a text diff, and for timing clauses (queueing,
lanes, steering) a timeline with one bar per response, created → terminal, sends marked.

Input: plain values — a case's transcript text (``conformance.client.Connection.transcript_text``
format, tries under ``=== try N ===``) and a finding dict (``frame``: connection and received-frame
index, docs/certificate.md). Output: static HTML/inline SVG, no script. No I/O.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from html import escape

from conformance.monitor.attribution import RULES

# clauses whose picture is a timeline: their areas are about when responses run, not what they say
TIMING_AREAS = ("§4.4", "§4.9", "Lanes")
DELTA_CLAUSES = ("STREAM-DELTAS-ADD-UP",)
OUTPUT_CLAUSES = ("STREAM-DONE-MATCHES-OUTPUT",)
TERMINAL_TYPES = ("response.completed", "response.failed", "response.incomplete", "response.cancelled")
ROWS_BEFORE, ROWS_AFTER = 10, 2          # frames shown around the one that broke the rule
MAX_BARS = 24                            # responses drawn in one timeline
_HEADER = re.compile(r"^# (\d+) earlier rows not shown \((\d+) received\)$")
_ROW = re.compile(r"^\s*(-?\d+\.\d+) (>>|<<|--) (.*)$")
RULE_OF_TYPE = {typ: row.rule for row in RULES for typ in row.events}


@dataclass
class Row:
    """One transcript row: time (s), direction (``>>`` sent, ``<<`` received, ``--`` other)."""

    t: float
    direction: str
    text: str
    received: int | None = None        # the received-frame index on its connection
    event: dict | None = None


@dataclass
class Wire:
    """One connection of a case as its transcript shows it."""

    url: str
    rows: list[Row] = field(default_factory=list)

    def received(self, index: int) -> int | None:
        """The position in ``rows`` of received frame ``index`` (None: not in the transcript)."""
        return next((n for n, row in enumerate(self.rows) if row.received == index), None)


def parse_transcript(text: str) -> list[Wire]:
    """The connections of the last try of a case's transcript."""
    sections = re.split(r"^=== try \d+ of \d+: [^\n]* ===$", text or "", flags=re.M)
    wires = []
    for block in sections[-1].strip().split("\n\n"):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("# "):
            continue
        wire, received = Wire(lines[0][2:]), 0
        for line in lines[1:]:
            head = _HEADER.match(line)
            if head:
                received = int(head.group(2))
                continue
            match = _ROW.match(line)
            if not match:
                continue
            row = Row(float(match.group(1)), match.group(2), match.group(3))
            if row.direction != "--":
                try:
                    event = json.loads(row.text)
                    row.event = event if isinstance(event, dict) else None
                except ValueError:
                    pass
            if row.direction == "<<":
                row.received, received = received, received + 1
            wire.rows.append(row)
        wires.append(wire)
    return wires


def short_id(value: object) -> str:
    text = str(value)
    prefix, sep, rest = text.partition("_")
    return f"{prefix}_…{rest[-5:]}" if sep and len(rest) > 8 else text


def frame_fields(event: dict | None, text: str) -> tuple[str, str]:
    """(type, the ids and indexes that matter) of one frame."""
    if event is None:
        return "(not a JSON object)", text[:80]
    typ = str(event.get("type", "?"))
    bits = []
    if "sequence_number" in event:
        bits.append(f"seq {event['sequence_number']}")
    response = event.get("response") if isinstance(event.get("response"), dict) else None
    if response is not None:
        bits.append(short_id(response.get("id")))
        if response.get("status"):
            bits.append(str(response["status"]))
    for key, label in (("stream_id", "lane"), ("output_index", "out"), ("content_index", "part"),
                       ("summary_index", "summary"), ("item_id", "item"), ("response_id", "resp"),
                       ("previous_response_id", "prev")):
        if event.get(key) is not None:
            bits.append(f"{label} {short_id(event[key])}")
    item = event.get("item") if isinstance(event.get("item"), dict) else None
    if item is not None:
        bits.append(f"{item.get('type', '')} {short_id(item.get('id'))}")
    if isinstance(event.get("delta"), str):
        bits.append(json.dumps(event["delta"][:24] + ("…" if len(event["delta"]) > 24 else ""), ensure_ascii=False))
    error = event.get("error") if isinstance(event.get("error"), dict) else None
    if error is not None:
        bits.append(f"code {error.get('code')}")
    return typ, " · ".join(bits)


def rule_sentence(event_type: str) -> str:
    """The monitor's rule for a frame of this type (RULES in conformance/monitor/attribution.py)."""
    return RULE_OF_TYPE.get(event_type, "")


def locate(wires: list[Wire], finding: dict) -> tuple[int, int] | None:
    """(connection, row position) of the frame a finding names, when the transcript holds it."""
    frame = finding.get("frame")
    if not isinstance(frame, dict):
        return None
    conn, index = frame.get("connection"), frame.get("index")
    if not isinstance(conn, int) or not isinstance(index, int) or not 0 <= conn < len(wires):
        return None
    pos = wires[conn].received(index)
    return None if pos is None else (conn, pos)


def stream_table(wire: Wire, position: int | None, clause: str, message: str) -> str:
    """The frames around row ``at`` (None: the last frames), that row highlighted with its rule."""
    end = len(wire.rows) - 1 if position is None else min(len(wire.rows) - 1, position + ROWS_AFTER)
    start = max(0, (end if position is None else position) - ROWS_BEFORE)
    out = ['<table class="stream"><tr><th>t (s)</th><th></th><th>frame</th><th>ids, indexes</th></tr>']
    if start:
        out.append(f'<tr class="gap"><td colspan=4>⋯ {start} earlier row(s)</td></tr>')
    for pos in range(start, end + 1):
        row = wire.rows[pos]
        typ, detail = frame_fields(row.event, row.text) if row.direction != "--" else ("connection", row.text)
        arrow = {">>": "→ sent", "<<": "← recv", "--": "·"}[row.direction]
        mark = ' class="hit"' if pos == position else ""
        out.append(f"<tr{mark}><td>{row.t:.3f}</td><td>{arrow}</td><td><code>{escape(typ)}</code></td>"
                   f"<td>{escape(detail)}</td></tr>")
        if pos == position:
            rule = rule_sentence(typ)
            out.append(f'<tr class="why"><td colspan=4>▲ breaks <b>{escape(clause)}</b>: {escape(message)}'
                       + (f"<br><span class=muted>rule for {escape(typ)}: {escape(rule)}</span>" if rule else "")
                       + "</td></tr>")
    if end < len(wire.rows) - 1:
        out.append(f'<tr class="gap"><td colspan=4>⋯ {len(wire.rows) - 1 - end} later row(s)</td></tr>')
    out.append("</table>")
    return "".join(out)


def _same_value(event: dict, other: dict) -> bool:
    return all(event.get(k) == other.get(k) for k in ("item_id", "output_index", "content_index", "summary_index"))


def delta_vs_done(wire: Wire, position: int) -> tuple[str, str] | None:
    """(what the deltas add up to, what the ``.done`` frame at ``at`` says), else None."""
    done = wire.rows[position].event or {}
    typ = str(done.get("type", ""))
    if not typ.endswith(".done"):
        return None
    field_name = next((k for k in ("text", "arguments", "refusal", "delta") if isinstance(done.get(k), str)), None)
    if field_name is None:
        return None
    delta_type = typ[: -len(".done")] + ".delta"
    added = "".join(str(row.event.get("delta", "")) for row in wire.rows[:position]
                    if row.event and row.event.get("type") == delta_type and _same_value(row.event, done))
    return added, done[field_name]


def done_vs_output(wire: Wire, position: int) -> tuple[str, str] | None:
    """(a ``.done`` text, the terminal response's text of that item and part) for a terminal frame
    at ``at`` whose output differs from what was streamed, else None."""
    terminal = wire.rows[position].event or {}
    response = terminal.get("response") if isinstance(terminal.get("response"), dict) else {}
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        for index, part in enumerate(item.get("content") or []):
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                continue
            streamed = [row.event.get("text") for row in wire.rows[:position]
                        if row.event and row.event.get("type") == "response.output_text.done"
                        and row.event.get("item_id") == item.get("id") and row.event.get("content_index") == index]
            if streamed and streamed[-1] != part["text"]:
                return str(streamed[-1]), part["text"]
    return None


def text_diff(label_a: str, text_a: str, label_b: str, text_b: str, context: int = 24) -> str:
    """Two lines, what differs marked (removed in the first, added in the second)."""
    first, second = [], []
    opcodes = difflib.SequenceMatcher(None, text_a, text_b, autojunk=False).get_opcodes()
    for tag, start_a, end_a, start_b, end_b in opcodes:
        if tag == "equal":
            same = text_a[start_a:end_a]
            if len(same) > 2 * context:
                same = same[:context] + "…" + same[-context:] if start_a and end_a < len(text_a) else (
                    "…" + same[-context:] if end_a < len(text_a) else same[:context] + "…")
            first.append(escape(same))
            second.append(escape(same))
            continue
        if end_a > start_a:
            first.append(f"<del>{escape(text_a[start_a:end_a])}</del>")
        if end_b > start_b:
            second.append(f"<ins>{escape(text_b[start_b:end_b])}</ins>")
    return (f'<pre class="diff"><span class=muted>{escape(label_a):>14}</span> {"".join(first)}\n'
            f'<span class=muted>{escape(label_b):>14}</span> {"".join(second)}</pre>')


@dataclass
class Bar:
    """One response on a timeline: rows are positions in the connection's transcript."""

    label: str
    start: int
    end: int | None = None
    status: str = ""
    response_id: str = ""


def bars(wire: Wire) -> tuple[list[Bar], list[tuple[int, str]]]:
    """The responses of one connection (created → terminal) and its sends (row, type)."""
    found: dict[str, Bar] = {}
    sends = []
    for pos, row in enumerate(wire.rows):
        event = row.event or {}
        typ = str(event.get("type", ""))
        if row.direction == ">>":
            sends.append((pos, typ + (f" lane {event['stream_id']}" if event.get("stream_id") else "")))
            continue
        response = event.get("response") if isinstance(event.get("response"), dict) else None
        rid = str(response.get("id")) if response and response.get("id") else ""
        if not rid:
            continue
        if typ in ("response.created", "response.queued") and rid not in found:
            lane = event.get("stream_id") or response.get("stream_id")
            found[rid] = Bar(short_id(rid) + (f" lane {lane}" if lane else ""), pos, response_id=rid)
        elif typ in TERMINAL_TYPES and rid in found:
            found[rid].end, found[rid].status = pos, typ.rsplit(".", 1)[-1]
    return list(found.values())[:MAX_BARS], sends


def timeline_svg(wire: Wire, highlight: str = "", width: int = 720) -> str:
    """One bar per response (created → terminal, in the order frames arrived), sends marked on
    the top row; the response a finding names outlined. Empty when the connection had none."""
    drawn, sends = bars(wire)
    if not drawn:
        return ""
    label_w, row_h, top = 180, 15, 22
    span = max(1, len(wire.rows) - 1)
    scale = (width - label_w - 10) / span
    height = top + row_h * len(drawn) + 4
    colors = {"completed": "#1a7f37", "failed": "#cf222e", "incomplete": "#bf8700", "cancelled": "#6e7781"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="timeline of {len(drawn)} responses" font-size="10" font-family="monospace">',
             f'<text x="0" y="12">sends</text>']
    for pos, what in sends:
        x = label_w + pos * scale
        parts.append(f'<path d="M{x:.1f},4 l4,9 l-8,0 z" fill="#0969da"><title>{escape(what)} (row {pos})'
                     "</title></path>")
    for row, bar in enumerate(drawn):
        row_y = top + row * row_h
        bar_left = label_w + bar.start * scale
        bar_right = label_w + (bar.end if bar.end is not None else span) * scale
        color = colors.get(bar.status, "#8c959f")
        outline = ' stroke="#cf222e" stroke-width="2"' if highlight and bar.response_id == highlight else ""
        status = bar.status or "no terminal event"
        faded = "" if bar.end is not None else ' fill-opacity="0.4"'
        parts.append(f'<text x="0" y="{row_y + 10}">{escape(bar.label[:28])}</text>'
                     f'<rect x="{bar_left:.1f}" y="{row_y + 2}" width="{max(3.0, bar_right - bar_left):.1f}" '
                     f'height="{row_h - 4}" '
                     f'fill="{color}"{outline}{faded}>'
                     f"<title>{escape(bar.response_id)}: {escape(status)}</title></rect>")
    parts.append("</svg>")
    return "".join(parts) + ('<div class="muted legend">left to right: frames in the order they were sent and '
                             "received; one bar per response, created → terminal (green completed, red failed, "
                             "amber incomplete, pale: no terminal event); ▲ a frame the client sent</div>")


def is_timing(area: str) -> bool:
    return any(area.startswith(prefix) or prefix in area for prefix in TIMING_AREAS)


def clause_picture(clause: str, area: str, finding: dict, transcript: str) -> str:
    """The picture of one finding of ``clause`` in one case's transcript ('' when there is none)."""
    wires = parse_transcript(transcript)
    if not wires:
        return ""
    found = locate(wires, finding)
    message = str(finding.get("message", ""))
    out = []
    if is_timing(area):
        conn = found[0] if found else next((n for n, w in enumerate(wires) if bars(w)[0]), 0)
        svg = timeline_svg(wires[conn], str(finding.get("response_id") or ""))
        if svg:
            out.append(f'<div class="timeline">{svg}</div>')
    if found is not None:
        conn, pos = found
        wire = wires[conn]
        if clause in DELTA_CLAUSES and (pair := delta_vs_done(wire, pos)):
            out.append(text_diff("deltas add up", pair[0], ".done has", pair[1]))
        elif clause in OUTPUT_CLAUSES and (pair := done_vs_output(wire, pos)):
            out.append(text_diff(".done had", pair[0], "terminal has", pair[1]))
        out.append(stream_table(wire, pos, clause, message))
    elif not out:   # no frame named (an expectation): the end of the stream the case last saw
        wire = max(wires, key=lambda w: len(w.rows))
        if wire.rows:
            out.append(stream_table(wire, None, clause, message))
    return "".join(out)
