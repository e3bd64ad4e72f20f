"""The perf case group (issue 12 part 2): opt-in (``--perf``), INFO only, its figures in the
certificate (validated) and in index.html (an inline SVG chart); the pure figures of
conformance/perf.py; the reference server's per-token processing cost. No timed assertion:
the ratio itself is printed, never asserted (speed targets live in bench/)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from conformance import perf as P
from conformance.report.html import chart_svg
from conformance.server.stream import processing_s

# see tests/test_plugin.py: import what the inner runs use before they run
import conformance.server  # noqa: E402,F401
import conformance.monitor  # noqa: E402,F401
import conformance.schemas  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "certificate.json").read_text(encoding="utf-8"))


def _loop(tokens: list[tuple[int, int]], wall: float = 1.0) -> P.Loop:
    return P.Loop([P.TurnFigures(0.001, 0.002, 0.003, 100 * (i + 1), inp, cached)
                   for i, (inp, cached) in enumerate(tokens)], wall)


def test_history_growth_is_reported_only_when_uncached_input_grows():
    cached_history = _loop([(12, 0)] + [(12 + 130 * k, 130 * (k - 1) + 12) for k in range(1, 10)])
    assert P.history_growth([cached_history]) is None
    resent = _loop([(12, 0)] + [(12 + 130 * k, 0) for k in range(1, 10)])
    message = P.history_growth([resent])
    assert message and "re-sent upstream" in message and "142" in message
    too_short = _loop([(12, 0), (142, 0), (272, 0)])
    assert P.history_growth([too_short]) is None


def test_figures_gain_and_per_turn_medians():
    ws = [_loop([(10, 0)] * 3, wall=1.0), _loop([(10, 0)] * 3, wall=2.0), _loop([(10, 0)] * 3, wall=1.0)]
    http = [_loop([(10, 0)] * 3, wall=3.0), _loop([(10, 0)] * 3, wall=3.0), _loop([(10, 0)] * 3, wall=4.0)]
    f = P.figures(3, ws, http)
    assert f["gain"] == {"ratio": 3.0, "min": 1.5, "max": 4.0, "per_repetition": [3.0, 1.5, 4.0]}
    assert f["ws"]["to_created_ms"] == [1.0, 1.0, 1.0] and f["ws"]["bytes_sent"] == [100, 200, 300]
    assert f["ws"]["wall_s"] == [1.0, 2.0, 1.0] and f["findings"] == []


def test_processing_cost_counts_uncached_input_tokens_only():
    final = {"type": "response.completed",
             "response": {"usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800}}}}
    assert processing_s([final], 0.001) == pytest.approx(0.2)
    assert processing_s([final], 0.0) == 0.0
    assert processing_s([{"type": "error"}], 0.001) == 0.0


def test_chart_is_well_formed_svg():
    svg = chart_svg({"a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 0.0]}, "ms")
    root = ET.fromstring(svg)
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def _run(pytester: pytest.Pytester, *args: str) -> Path:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_perf_loop.py").write_text((ROOT / "cases" / "test_perf.py").read_text())
    pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep", "cases", *args)
    return pytester.path / "rep"


def test_perf_is_opt_in(pytester: pytest.Pytester):
    cert = json.loads((_run(pytester) / "certificate.json").read_text())
    assert [c["verdict"] for c in cert["cases"]] == ["SKIPPED"] and "perf" not in cert


def test_perf_run_reports_figures_as_info(pytester: pytest.Pytester):
    rep = _run(pytester, "--perf", "--perf-turns", "4", "--perf-repetitions", "2")
    cert = json.loads((rep / "certificate.json").read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(cert)]
    assert errors == []
    assert [c["verdict"] for c in cert["cases"]] == ["INFO"]
    perf = cert["perf"]
    assert perf["turns"] == 4 and perf["repetitions"] == 2 and len(perf["gain"]["per_repetition"]) == 2
    ws, http = perf["ws"], perf["http"]
    # deterministic facts of the mechanism: HTTP resends the history, the WebSocket does not
    assert http["bytes_sent"] == sorted(http["bytes_sent"]) and http["bytes_sent"][-1] > 2 * ws["bytes_sent"][-1]
    assert len(set(ws["bytes_sent"][1:])) == 1
    assert ws["input_tokens"] == http["input_tokens"]       # same context, same bill
    assert perf["findings"] == []                           # the reference server continues from its cache
    assert cert["usage"]["creates"] == 8 and cert["usage"]["http_requests"] == 8
    html = (rep / "index.html").read_text(encoding="utf-8")
    assert "WebSocket speed-up" in html and html.count("<svg") == 2


def test_perf_cost_is_printed_before_the_run(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_perf_loop.py").write_text((ROOT / "cases" / "test_perf.py").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "cases", "--perf", "--perf-turns", "7",
                                "--perf-repetitions", "2", "--collect-only")
    result.stdout.fnmatch_lines(["perf: 2 x 2 x 7 = 28 turns*"])
    bad = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "cases", "--perf-turns", "0")
    assert "--perf-turns must be at least 1" in bad.stderr.str()
