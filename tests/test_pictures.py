"""conformance/report/pictures.py on hand-made transcripts: the frame a finding names is the one
highlighted (also after the transcript dropped earlier rows), the deltas-vs-.done diff marks
what differs, the timeline draws one bar per response and a finding without a frame highlights
nothing."""

from __future__ import annotations

import json
from html import escape

from conformance.report import pictures as P


def _line(t: float, direction: str, event: dict) -> str:
    return f"{t:10.3f} {direction} {json.dumps(event)}"


def _stream(done_text: str, dropped: int = 0) -> str:
    rid, item = "resp_000000000001", "msg_000000000002"
    events = [
        ("<<", {"type": "response.created", "response": {"id": rid, "status": "in_progress"}, "sequence_number": 0}),
        ("<<", {"type": "response.output_text.delta", "item_id": item, "output_index": 0, "content_index": 0,
                "delta": "Hello ", "sequence_number": 1}),
        ("<<", {"type": "response.output_text.delta", "item_id": item, "output_index": 0, "content_index": 0,
                "delta": "world", "sequence_number": 2}),
        ("<<", {"type": "response.output_text.done", "item_id": item, "output_index": 0, "content_index": 0,
                "text": done_text, "sequence_number": 3}),
        ("<<", {"type": "response.completed", "response": {"id": rid, "status": "completed"}, "sequence_number": 4}),
    ]
    lines = ["# ws://127.0.0.1:1/v1/responses"]
    if dropped:
        lines.append(f"# {dropped} earlier rows not shown ({dropped} received)")
    lines.append(_line(0.001, ">>", {"type": "response.create", "model": "m"}))
    lines += [_line(0.002, d, e) for d, e in events]
    return "\n".join(lines)


def test_the_named_frame_is_highlighted_with_its_rule_and_the_diff():
    finding = {"clause": "STREAM-DELTAS-ADD-UP", "message": "deltas do not add up", "frame": {"connection": 0, "index": 3}}
    html = P.clause_picture("STREAM-DELTAS-ADD-UP", "§4.3 Event ordering", finding, _stream("Hello there world"))
    hit = html.split('class="hit"')[1]
    assert "response.output_text.done" in hit.split("</tr>")[0]
    assert "breaks <b>STREAM-DELTAS-ADD-UP</b>" in html
    rule = P.rule_sentence("response.output_text.done")
    assert rule and escape(rule) in html
    assert "<ins>there </ins>" in html and "deltas add up" in html


def test_frame_numbers_count_the_rows_a_transcript_dropped():
    wires = P.parse_transcript(_stream("Hello world", dropped=40))
    assert P.locate(wires, {"frame": {"connection": 0, "index": 43}}) == (0, 4)    # the .done row
    assert P.locate(wires, {"frame": {"connection": 0, "index": 3}}) is None        # not in the transcript
    assert P.locate(wires, {"frame": {"connection": 1, "index": 43}}) is None
    assert P.delta_vs_done(wires[0], 4) == ("Hello world", "Hello world")


def test_only_the_last_try_is_drawn():
    text = "=== try 1 of 2: FAIL ===\n" + _stream("first") + "\n\n=== try 2 of 2: FAIL ===\n" + _stream("second")
    wires = P.parse_transcript(text)
    assert len(wires) == 1 and '"second"' in wires[0].rows[4].text


def test_timeline_has_a_bar_per_response_and_marks_sends():
    wire = P.parse_transcript(_stream("Hello world"))[0]
    drawn, sends = P.bars(wire)
    assert [(b.start, b.end, b.status) for b in drawn] == [(1, 5, "completed")] and sends == [(0, "response.create")]
    svg = P.timeline_svg(wire, "resp_000000000001")
    assert svg.count("<rect") == 1 and 'stroke="#cf222e"' in svg and "<script" not in svg


def test_a_finding_without_a_frame_highlights_nothing():
    html = P.clause_picture("TURN-TEXT", "§4.1 Transport", {"message": "no text"}, _stream("Hello world"))
    assert 'class="hit"' not in html and "response.completed" in html
    assert P.clause_picture("TURN-TEXT", "§4.1", {"message": "x"}, "") == ""
