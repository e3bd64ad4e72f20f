"""Drift and diff (conformance/drift.py, conformance/diff.py, ``python -m conformance diff``),
on certificates of real runs against the reference server, with and without a defect."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _standalone import KEY, ROOT, run_cases, standalone_server
from conformance import diff as D
from conformance import drift


def _diff(old: Path, new: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", "diff", str(old), str(new), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    """Certificates of real runs: two clean ones and one with a renamed error code."""
    root = tmp_path_factory.mktemp("diff")
    sel = ["-p", "no:xdist", "--clause", "CACHE-MISS-STORE-FALSE"]
    out = {}
    for name, args in (("clean", sel), ("clean2", sel), ("defect", [*sel, "--reference-defect", "renamed-not-found-code"])):
        proc, cert, _ = run_cases(args, root / name, timeout=120)
        assert cert is not None, proc.stdout[-2000:]
        out[name] = root / name / "certificate.json"
    return out


@pytest.mark.timeout(300)
def test_a_defect_is_a_regression(certs, tmp_path):
    report = tmp_path / "diff.md"
    proc = _diff(certs["clean"], certs["defect"], "--output", str(report))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout
    assert text == report.read_text()
    assert "- clause CACHE-MISS-STORE-FALSE (MUST): PASS → FAIL" in text
    assert "- new unknown error code response_not_found" in text
    # regressions come first
    assert text.index("## Regressions (") < text.index("## Clause verdicts") < text.index("## Surface")
    assert "| creates |" in text


@pytest.mark.timeout(300)
def test_a_fix_and_a_rerun_are_not_regressions(certs):
    back = _diff(certs["defect"], certs["clean"])
    assert back.returncode == 0, back.stdout
    assert "| CACHE-MISS-STORE-FALSE | MUST | FAIL | PASS | improvement |" in back.stdout
    assert "vanished unknown (undocumented) error codes: `response_not_found`" in back.stdout
    assert "new error codes: `previous_response_not_found`" in back.stdout     # documented: no regression
    same = _diff(certs["clean"], certs["clean2"])
    assert same.returncode == 0 and "## Regressions\n\nNone." in same.stdout
    assert "No clause changed its verdict." in same.stdout


def test_certificate_records_the_surface(certs):
    cert = json.loads(certs["defect"].read_text())
    s = cert["surface"]
    assert s["event_types"]["response.created"] >= 1 and s["error_codes"]["response_not_found"] >= 1
    assert s["error_types"] == {"invalid_request_error": s["error_types"]["invalid_request_error"]}
    assert {"upgrade", "sec-websocket-accept"} <= set(s["handshake_headers"])
    assert s["unknown_event_types"] == [] and s["unknown_fields"] == {}
    assert s["unknown_error_codes"] == ["response_not_found"]


def test_unknown_types_and_fields_are_regressions_when_new(certs):
    old = D.load(certs["clean"])
    new = copy.deepcopy(old)
    new["surface"]["unknown_event_types"] = ["response.heartbeat"]
    new["surface"]["unknown_fields"] = {"response.created": ["x_trace"]}
    d = D.compare(old, new)
    assert d["regressions"] == ["new unknown event type response.heartbeat", "new unknown field response.created.x_trace"]
    assert D.compare(new, old)["regressions"] == []        # vanished: reported, not a regression
    assert "vanished unknown event types: `response.heartbeat`" in D.render(new, old)


def test_surface_of_messages():
    s = drift.surface([{"type": "response.created", "response": {}, "sequence_number": 0, "x_new": 1},
                       {"type": "codex.rate_limits"}, {"type": "brand.new"}, "not a dict",
                       {"type": "error", "error": {"code": "c", "type": "t"}}, {"type": "error", "code": "flat"}],
                      ["X-Request-Id", "Upgrade"])
    assert s["unknown_event_types"] == ["brand.new", "codex.rate_limits"]
    assert s["unknown_fields"] == {"response.created": ["x_new"]}
    assert s["error_codes"] == {"c": 1, "flat": 1} and s["error_types"] == {"t": 1, "(none)": 1}
    assert s["unknown_error_codes"] == ["c", "flat"]
    assert s["handshake_headers"] == ["upgrade", "x-request-id"]
    merged = drift.merge([s, s, None])
    assert merged["event_types"]["error"] == 4 and merged["unknown_event_types"] == s["unknown_event_types"]


@pytest.mark.parametrize("content, fragment", [
    (None, "file not found"), ("{", "not JSON"), ('{"format": "other"}', "not a certificate.json of this suite"),
])
def test_bad_input_exits_2_naming_the_file(tmp_path, certs, content, fragment):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    proc = _diff(certs["clean"], bad)
    assert proc.returncode == 2 and f"{bad}: {fragment}" in proc.stderr


@pytest.mark.timeout(200)
def test_surface_through_a_target_has_the_handshake_headers(tmp_path):
    with standalone_server() as url:
        proc, cert, _ = run_cases(["-p", "no:xdist", "--target", url, "--api-key", KEY,
                                   "cases/test_transport.py::test_text_turn"], tmp_path / "rep", timeout=100)
    assert cert is not None, proc.stdout[-2000:]
    assert "sec-websocket-accept" in cert["surface"]["handshake_headers"]
    assert cert["surface"]["event_types"].get("response.completed", 0) >= 1
