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
    d = D.compare(D.load(certs["defect"]), D.load(certs["clean"]))
    # the defect run's failing state machine explores more (shrinking): clauses it alone
    # reached by chance are "no longer checked" in the clean run, and only those are worse
    lost = {cid for cid, _, _ in d["lost"]}
    assert all(r.split()[1] in lost for r in d["regressions"]), d["regressions"]
    assert {rule for rule, _ in d["reasons"]} <= {"regression", "coverage"}
    assert back.returncode == (1 if lost else 0), back.stdout
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


# --- the rules, one by one, on certificates built here ------------------------------------------

def _cert(overall: str = "PASS", clauses: dict | None = None, cases: dict | None = None,
          certified: bool | None = None, **extra) -> dict:
    clauses = {"A": "PASS", "B": "PASS", "C": "PASS"} if clauses is None else clauses
    cases = {"cases/t.py::a": "PASS"} if cases is None else cases
    if certified is None:
        certified = overall == "PASS" and all(v == "PASS" for v in clauses.values())
    return {"format": "responses-ws-conformance/certificate", "overall": overall,
            "certification": {"certified": certified, "reasons": [] if certified else ["overall verdict is X"]},
            "clauses": [{"id": k, "level": "MUST", "verdict": v} for k, v in clauses.items()],
            "cases": [{"nodeid": k, "verdict": v} for k, v in cases.items()], **extra}


def _rules(old: dict, new: dict) -> list[str]:
    return [rule for rule, _ in D.compare(old, new)["reasons"]]


def test_every_verdict_the_certificate_can_hold_has_a_tier():
    schema = json.loads((ROOT / "schemas" / "certificate.json").read_text())
    clause_v = schema["$defs"]["clause"]["properties"]["verdict"]["enum"]
    case_v = schema["$defs"]["case"]["properties"]["verdict"]["enum"]
    assert set(clause_v) | set(case_v) <= set(D.RANK)
    assert set(schema["properties"]["overall"]["enum"]) | {"NOT-USABLE"} <= set(D.OVERALL_RANK)
    # the tiers are the documented order, and PASS alone (with INFO) is the best one
    assert D.TIERS[0][1] == ("PASS", "INFO") and D.RANK["FAIL"] == max(D.RANK.values())
    assert D.RANK["KNOWN"] < D.RANK["NON-STRICT"] < D.RANK["NOT-REACHED"] < D.RANK["FLAKY"] < D.RANK["FAIL"]
    assert D.RANK["NOT-REACHED"] == D.RANK["UNTESTED"] == D.RANK["ERROR"] > D.RANK["PASS"]


@pytest.mark.parametrize("where", ["clause", "case", "overall"])
def test_an_unknown_verdict_is_an_error_never_a_pass(tmp_path, where):
    new = _cert()
    if where == "clause":
        new["clauses"][0]["verdict"] = "GREAT"
    elif where == "case":
        new["cases"][0]["verdict"] = "GREAT"
    else:
        new["overall"] = "GREAT"
    with pytest.raises(D.CertificateError, match="unknown verdict 'GREAT'"):
        D.compare(_cert(), new)
    old_p, new_p = tmp_path / "old.json", tmp_path / "new.json"
    old_p.write_text(json.dumps(_cert()))
    new_p.write_text(json.dumps(new))
    proc = _diff(old_p, new_p)
    assert proc.returncode == 2 and "unknown verdict 'GREAT'" in proc.stderr and proc.stdout == ""


def test_same_clean_run_is_not_worse():
    d = D.compare(_cert(), _cert())
    assert d["reasons"] == [] and D.verdict_line(d).startswith("not worse")
    assert "**Not worse than the old run** (exit 0)" in D.render(_cert(), _cert())


def test_a_not_usable_new_run_after_a_clean_one_is_worse(tmp_path):
    new = _cert("NOT-USABLE", {"A": "UNTESTED", "B": "UNTESTED", "C": "UNTESTED"}, {},
                preflight={"message": "nothing listening at ws://127.0.0.1:9/v1/responses (connection refused)"})
    rules = _rules(_cert(), new)
    assert rules == ["not-usable", "regression", "coverage", "certification"]
    text = D.render(_cert(), new)
    assert "- not-usable: the new run could not test the target (overall NOT-USABLE): nothing listening" in text
    assert "None." not in text.split("## Regressions")[1].split("##")[0]
    old_p, new_p = tmp_path / "old.json", tmp_path / "new.json"
    old_p.write_text(json.dumps(_cert()))
    new_p.write_text(json.dumps(new))
    proc = _diff(old_p, new_p)
    assert proc.returncode == 1 and "WORSE" in proc.stderr and "could not test the target" in proc.stderr
    # even when the old run tested nothing either: a run that could not run is never green
    assert "not-usable" in _rules(new, new)


def test_an_incomplete_new_run_is_worse_even_without_a_clause_change():
    new = _cert("ERROR", cases={"cases/t.py::a": "PASS", "cases/t.py::b": "ERROR"}, certified=False)
    old = _cert(cases={"cases/t.py::a": "PASS"})
    d = D.compare(old, new)
    assert [r for r, _ in d["reasons"]][:1] == ["incomplete"] and "1 case(s) could not be judged" in d["reasons"][0][1]


@pytest.mark.parametrize("before, after", [
    ("PASS", "NOT-REACHED"), ("PASS", "UNTESTED"), ("PASS", "KNOWN"), ("PASS", "NON-STRICT"), ("PASS", "FLAKY"),
    ("PASS", "FAIL"), ("PASS", "UNSUPPORTED"), ("KNOWN", "NON-STRICT"), ("NON-STRICT", "UNTESTED"),
    ("UNTESTED", "FLAKY"), ("NOT-REACHED", "FAIL"), ("FLAKY", "FAIL"), ("(absent)", "FAIL"),
])
def test_a_worse_clause_verdict_is_a_regression(before, after):
    old = _cert(clauses={"A": "PASS", "B": before} if before != "(absent)" else {"A": "PASS"}, certified=False)
    new = _cert(clauses={"A": "PASS", "B": after}, certified=False)
    d = D.compare(old, new)
    assert f"clause B (MUST): {before} → {after}" in d["regressions"], d
    assert "regression" in [r for r, _ in d["reasons"]]
    assert D.compare(new, old)["regressions"] == [] or before == "(absent)"     # the way back is no regression


@pytest.mark.parametrize("before, after", [("NOT-REACHED", "UNTESTED"), ("UNTESTED", "ERROR"), ("PASS", "INFO")])
def test_a_move_inside_a_tier_is_a_change(before, after):
    d = D.compare(_cert(clauses={"B": before}, certified=False), _cert(clauses={"B": after}, certified=False))
    assert d["clauses"] == [("B", "MUST", before, after, "change")] and d["regressions"] == []


def test_a_worse_case_verdict_and_overall_are_regressions():
    old = _cert(cases={"cases/t.py::a": "PASS", "cases/t.py::b": "PASS"})
    new = _cert("NON-STRICT", cases={"cases/t.py::a": "SKIPPED", "cases/t.py::b": "PASS", "cases/t.py::c": "FAIL"})
    d = D.compare(old, new)
    assert d["regressions"][:2] == ["overall: PASS → NON-STRICT", "case cases/t.py::a: PASS → SKIPPED"]
    assert d["cases_added"] == ["cases/t.py::c"]
    assert "| cases/t.py::a | PASS | SKIPPED | regression |" in D.render(old, new, d)


def test_checking_fewer_clauses_is_worse_even_when_nothing_failed():
    old = _cert(clauses={"A": "PASS", "B": "FAIL", "C": "UNTESTED"}, certified=False)
    # B: FAIL → NOT-REACHED ranks as an improvement, but the clause is no longer checked
    new = _cert(clauses={"A": "PASS", "B": "NOT-REACHED", "C": "UNTESTED"}, certified=False)
    d = D.compare(old, new)
    assert d["regressions"] == [] and d["lost"] == [("B", "FAIL", "NOT-REACHED")]
    assert _rules(old, new) == ["coverage"]
    assert "the new run checked 1 clause(s), the old one 2; 1 no longer checked: B (FAIL → NOT-REACHED)" \
        in d["reasons"][0][1]
    # a clause that left the registry was checked before and is not now: counted too
    assert D.compare(old, _cert(clauses={"A": "PASS", "C": "UNTESTED"}, certified=False))["lost"] == \
        [("B", "FAIL", "(absent)")]
    # and one more clause checked is fine
    assert _rules(new, old) == ["regression"]      # B: NOT-REACHED → FAIL


def test_losing_certification_is_worse():
    old = _cert()
    new = _cert(certified=False)
    new["certification"]["reasons"] = ["1 claimed MUST clause(s) UNTESTED: C"]
    assert _rules(old, new) == ["certification"]
    assert "certification lost: 1 claimed MUST clause(s) UNTESTED: C" in D.compare(old, new)["reasons"][0][1]
    assert _rules(new, old) == []


def test_an_old_run_that_was_not_usable_is_noted():
    old = _cert("NOT-USABLE", {"A": "UNTESTED", "B": "UNTESTED", "C": "UNTESTED"}, {})
    d = D.compare(old, _cert())
    assert d["reasons"] == [] and "did not test everything" in d["notes"][0]
