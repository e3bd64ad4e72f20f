"""Baselines of known deviations (conformance/baseline.py): KNOWN, STALE, until dates,
--write-baseline, and a clear error for every kind of bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from _standalone import run_cases
from conformance import baseline as BL
from conformance.verdicts import ClauseRegistry, default_clauses_path

CLAUSES = [c.id for c in ClauseRegistry.load(default_clauses_path())]
TODAY = dt.date(2026, 11, 30)


def _load(tmp_path: Path, text: str) -> BL.Baseline:
    f = tmp_path / "baseline.toml"
    f.write_text(text)
    return BL.load(f, CLAUSES, today=TODAY)


GOOD = '[[known]]\nclause = "SEQ-MONOTONIC"\nreason = "ticket 1"\n'


@pytest.mark.parametrize("text, where, key, fragment", [
    ("[[known]\n", "", "", "not valid TOML"),
    ('version = 1\n' + GOOD, "", "", "unknown top-level key(s) version"),
    ("known = 3\n", "", "known", "must be an array of tables"),
    (GOOD + 'owner = "me"\n', "known #1 (SEQ-MONOTONIC)", "owner", "unknown key"),
    (GOOD + 'case = "cases/a.py::t"\n', "known #1 (SEQ-MONOTONIC)", "clause/case", "exactly one"),
    ('[[known]]\nreason = "r"\n', "known #1 (?)", "clause/case", "exactly one"),
    (GOOD + '[[known]]\nclause = "NO-SUCH"\nreason = "r"\n', "known #2 (NO-SUCH)", "clause", "unknown clause id"),
    ('[[known]]\ncase = "test_x"\nreason = "r"\n', "known #1 (test_x)", "case", "not a node id"),
    ('[[known]]\nclause = "SEQ-MONOTONIC"\n', "known #1 (SEQ-MONOTONIC)", "reason", "missing"),
    (GOOD + 'verdict = "BROKEN"\n', "known #1 (SEQ-MONOTONIC)", "verdict", "must be one of FAIL"),
    (GOOD + 'until = "next week"\n', "known #1 (SEQ-MONOTONIC)", "until", "is not a date"),
    (GOOD + "until = 20270101\n", "known #1 (SEQ-MONOTONIC)", "until", "must be a date"),
    (GOOD + "until = 2027-01-01T00:00:00\n", "known #1 (SEQ-MONOTONIC)", "until", "must be a date"),
    ('[[known]]\nclause = 5\nreason = "r"\n', "known #1 (5)", "clause", "must be a string"),
])
def test_bad_baselines_name_the_file_the_entry_and_the_key(tmp_path, text, where, key, fragment):
    with pytest.raises(BL.BaselineError) as info:
        _load(tmp_path, text)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "baseline.toml") + ": ")
    assert where in msg and f"{key}:" in msg and fragment in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(BL.BaselineError, match=r"nope.toml: baseline file not found"):
        BL.load(tmp_path / "nope.toml", CLAUSES)


def test_matching_known_and_expiry(tmp_path):
    bl = _load(tmp_path, GOOD + 'verdict = "FAIL"\n'
               '[[known]]\ncase = "cases/t.py::test_b"\nreason = "r"\nuntil = 2026-11-30\n'
               '[[known]]\nclause = "TURN-TEXT"\nreason = "r"\nuntil = 2026-12-01\n')
    # every failed clause covered (verdict matches) -> KNOWN
    assert [e.index for e in bl.match("cases/t.py::test_a", "FAIL", ["X"], ["SEQ-MONOTONIC"])] == [1]
    assert bl.match("cases/t.py::test_a", "NON-STRICT", [], ["SEQ-MONOTONIC"]) == []      # verdict differs
    assert bl.match("cases/t.py::test_a", "FAIL", [], ["SEQ-MONOTONIC", "SEQ-PRESENT"]) == []  # not all covered
    assert bl.match("cases/t.py::test_a", "PASS", [], []) == []
    assert bl.match("cases/t.py::test_b", "ERROR", ["SEQ-PRESENT"], []) == []   # until today: expired
    assert [e.index for e in bl.match("cases/t.py::test_c", "ERROR", ["TURN-TEXT"], [])] == [3]  # marks
    records = [{"nodeid": "cases/t.py::test_b", "verdict": "PASS"},
               {"nodeid": "cases/t.py::test_c", "verdict": "KNOWN", "known": {"entries": [3]}}]
    rows = [{"id": "SEQ-MONOTONIC", "verdict": "PASS"}, {"id": "TURN-TEXT", "verdict": "KNOWN"}]
    assert [e["status"] for e in bl.review(records, rows)] == ["STALE", "EXPIRED", "KNOWN"]


def test_render_round_trips(tmp_path):
    records = [{"nodeid": "cases/t.py::test_a[x]", "verdict": "FAIL", "messages": ['bad "quote"\n'],
                "observations": [{"clause": "SEQ-MONOTONIC", "ok": False}]},
               {"nodeid": "cases/t.py::test_b", "verdict": "PASS", "messages": [], "observations": []}]
    bl = _load(tmp_path, BL.render(records, TODAY, by="case"))
    assert [(e.case, e.verdict) for e in bl.entries] == [("cases/t.py::test_a[x]", "FAIL")]
    assert "SEQ-MONOTONIC" in bl.entries[0].reason


def _obs(clause: str, verdict: str = "FAIL") -> dict:
    return {"clause": clause, "ok": False, "verdict": verdict, "message": f"{clause} broken"}


def test_render_by_clause_writes_one_entry_per_failed_clause(tmp_path):
    records = [{"nodeid": f"cases/t.py::test_{n}", "verdict": "FAIL", "messages": ["m"],
                "observations": [_obs("SEQ-MONOTONIC"), {"clause": "TURN-TEXT", "ok": True, "verdict": "PASS"}]}
               for n in range(20)]
    records += [{"nodeid": "cases/t.py::test_ns", "verdict": "NON-STRICT", "messages": [],
                 "observations": [_obs("SEQ-FROM-ZERO-BY-ONE", "NON-STRICT")]},
                {"nodeid": "cases/t.py::test_both", "verdict": "FAIL", "messages": [],
                 "observations": [_obs("SEQ-FROM-ZERO-BY-ONE", "NON-STRICT"), _obs("SEQ-MONOTONIC"),
                                  {"clause": "TURN-TEXT", "ok": False, "verdict": "INFO"}]},
                {"nodeid": "cases/t.py::test_err", "verdict": "ERROR", "messages": ["cannot judge"], "observations": []},
                {"nodeid": "cases/t.py::test_ok", "verdict": "PASS", "messages": [], "observations": []}]
    text = BL.render(records, TODAY)            # the default: by clause
    bl = _load(tmp_path, text)
    assert [(e.clause, e.case, e.verdict) for e in bl.entries] == [
        (None, "cases/t.py::test_err", "ERROR"),            # failed no clause: a case entry
        ("SEQ-FROM-ZERO-BY-ONE", None, None),               # NON-STRICT in one case, FAIL in another
        ("SEQ-MONOTONIC", None, "FAIL")]
    assert "21 case(s)" in bl.entries[2].reason and "SEQ-MONOTONIC broken" in bl.entries[2].reason
    # the entries make every one of those cases KNOWN again (INFO findings are no failure)
    assert bl.match("cases/t.py::test_both", "FAIL", [], ["SEQ-FROM-ZERO-BY-ONE", "SEQ-MONOTONIC"])
    assert bl.match("cases/t.py::test_ns", "NON-STRICT", [], ["SEQ-FROM-ZERO-BY-ONE"])
    assert bl.match("cases/t.py::test_err", "ERROR", ["TURN-TEXT"], [])
    with pytest.raises(ValueError, match="by: one of clause, case"):
        BL.render(records, TODAY, by="file")


def test_prepare_output_creates_the_folder_or_says_why_not(tmp_path):
    out = BL.prepare_output(tmp_path / "a" / "b" / "baseline.toml")
    assert out.parent.is_dir() and not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BL.BaselineError, match=r"cannot create its folder"):
        BL.prepare_output(blocker / "sub" / "baseline.toml")
    with pytest.raises(BL.BaselineError, match=r"is a directory"):
        BL.prepare_output(tmp_path)


@pytest.mark.timeout(60)
def test_write_baseline_folder_is_checked_before_the_run(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc, cert, _ = run_cases(["-p", "no:xdist", "--write-baseline", str(blocker / "nightly" / "b.toml")],
                              tmp_path / "r", timeout=50)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR and cert is None
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: --write-baseline: ") and "cannot create its folder" in lines[0]
    made = tmp_path / "nightly" / "deep" / "baseline.toml"
    proc, _, _ = run_cases(["-p", "no:xdist", "--collect-only", "--write-baseline", str(made)], tmp_path / "r2", timeout=50)
    assert proc.returncode == 0 and made.parent.is_dir()     # created before any case ran


@pytest.mark.timeout(240)
def test_write_then_known_then_stale_end_to_end(tmp_path: Path):
    written = tmp_path / "baseline.toml"
    sel = ["-p", "no:xdist", "--clause", "SEQ-MONOTONIC"]
    proc, cert, _ = run_cases([*sel, "--reference-defect", "sequence-not-monotonic", "--write-baseline", str(written)],
                              tmp_path / "r1", timeout=100)
    assert proc.returncode == 1 and cert["overall"] == "FAIL"
    text = written.read_text()
    # one entry per failed clause (swapped numbers also break SEQ-FROM-ZERO-BY-ONE), none per case
    assert text.count("[[known]]") == 2 and 'clause = "SEQ-MONOTONIC"' in text and "case =" not in text
    proc, cert, _ = run_cases([*sel, "--reference-defect", "sequence-not-monotonic", "--baseline", str(written)],
                              tmp_path / "r2", timeout=100)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert cert["overall"] == "PASS" and cert["counts"]["cases"]["KNOWN"] >= 1
    assert cert["baseline"]["known"] == cert["counts"]["cases"]["KNOWN"] and cert["baseline"]["stale"] == 0
    assert all(c["known"]["verdict"] == "FAIL" for c in cert["cases"] if c["verdict"] == "KNOWN")
    proc, cert, _ = run_cases([*sel, "--baseline", str(written)], tmp_path / "r3", timeout=100)
    assert proc.returncode == 1 and cert["overall"] == "STALE"
    assert "it passes now; remove this entry from" in proc.stdout
    assert {e["status"] for e in cert["baseline"]["entries"]} == {"STALE"}


@pytest.mark.timeout(60)
def test_a_bad_baseline_is_a_usage_error(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + 'until = "soon"\n')
    proc, cert, _ = run_cases(["-p", "no:xdist", "--baseline", str(bad)], tmp_path / "r", timeout=50)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR and cert is None
    assert f"--baseline: {bad}: known #1 (SEQ-MONOTONIC): until: 'soon' is not a date" in proc.stderr
