"""The compatibility matrix and the nightly trend (conformance/matrix.py, conformance/trend.py;
``python -m conformance matrix`` / ``trend``), on certificates of real runs against the
reference server: a clean run, a run with one defect, a run under another profile."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _standalone import ROOT, clause_verdicts, run_cases
from conformance import matrix as M
from conformance import trend as T

CLAUSE = "CACHE-MISS-STORE-FALSE"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matrix")
    sel = ["-p", "no:xdist", "--clause", CLAUSE]
    out = {}
    for name, args in (("clean", sel), ("defect", [*sel, "--reference-defect", "renamed-not-found-code"]),
                       ("other", [*sel, "--profile", "open-responses"])):
        proc, cert, _ = run_cases(args, root / name, timeout=120)
        assert cert is not None, proc.stdout[-2000:]
        out[name] = root / name / "certificate.json"
    return out


def _load(p: Path) -> dict:
    return json.loads(p.read_text())


@pytest.mark.timeout(300)
def test_matrix_cells_are_the_certificates_verdicts(certs, tmp_path):
    names = ("clean", "defect", "other")
    proc = _cli("matrix", *(str(certs[n]) for n in names), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    cs = [_load(certs[n]) for n in names]
    verdicts = [clause_verdicts(c) for c in cs]
    assert verdicts[1][CLAUSE] == "FAIL" and verdicts[0][CLAUSE] == "PASS", verdicts
    assert cs[2]["profile"] != cs[0]["profile"]
    md, page = (tmp_path / "matrix.md").read_text(), (tmp_path / "matrix.html").read_text()
    ids = set().union(*verdicts)
    for cid in ids:
        want = [v.get(cid, M.NONE) for v in verdicts]
        row = re.search(rf"^\| {re.escape(cid)} \| [^|]* \| (.*) \|$", md, re.M)
        assert row, cid
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[:3] == want and (cells[3] == "≠") == (len(set(want)) > 1), (cid, cells)
        tr = re.search(rf"<tr( class=differs)?><td class='id'>{re.escape(cid)}</td><td>[^<]*</td>(.*?)</tr>", page)
        assert tr, cid
        assert re.findall(r"<td class='[^']*'>([^<]*)</td>", tr.group(2)) == want
        assert bool(tr.group(1)) == (len(set(want)) > 1)
    # the defect's clause differs, and the header says certification and profile
    assert f"<tr class=differs><td class='id'>{CLAUSE}</td>" in page
    certified = ["yes" if (c.get("certification") or {}).get("certified") else "no" for c in cs]
    assert f"| certified | {' | '.join(certified)} |" in md
    assert f"| profile | {' | '.join(c['profile'] for c in cs)} |" in md
    assert certified[1] == "no"
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_matrix_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "x.json"
    for text in ("{not json", json.dumps({"format": "other"})):
        bad.write_text(text)
        proc = _cli("matrix", str(bad), "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = _cli("matrix", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.timeout(300)
def test_unknown_verdict_is_refused(certs, tmp_path):
    c = _load(certs["clean"])
    c["clauses"][0]["verdict"] = "GREENISH"
    (tmp_path / "c.json").write_text(json.dumps(c))
    for cmd in (("matrix", str(tmp_path / "c.json")), ("trend", str(tmp_path / "c.json"), "--out", str(tmp_path / "t"))):
        proc = _cli(*cmd)
        assert proc.returncode == 2 and "GREENISH" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(300)
def test_trend_marks_exactly_the_night_the_verdict_changed(certs, tmp_path):
    clean, defect = _load(certs["clean"]), _load(certs["defect"])
    nights = tmp_path / "nights"
    for n, base in enumerate((clean, clean, defect, defect, defect)):
        c = copy.deepcopy(base)
        c["target"]["ws_host"] = "gateway.example:443"      # one target over the nights
        c["started"] = f"2026-12-0{n + 1}T03:23:00Z"
        c["run_id"] = f"night-{n}"
        (nights / f"night-{n}").mkdir(parents=True)
        (nights / f"night-{n}" / "certificate.json").write_text(json.dumps(c))
    out = tmp_path / "trend"
    proc = _cli("trend", str(nights), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = (out / "trend.html").read_text()
    assert sorted(p.name for p in out.glob("diff-*.md")) == ["diff-02.md"]
    assert "PASS → FAIL" in (out / "diff-02.md").read_text()
    assert page.count("class='changed'") == 3           # one mark in each of the three charts
    assert page.count("<a href='diff-02.md'>") == 4 and "diff-01" not in page and "diff-03" not in page
    rows = re.findall(r"<tr( class=changed)?><td>(\d)</td>", page)
    assert [bool(c) for c, _ in rows] == [False, False, True, False, False]
    assert CLAUSE in page and "<script" not in page
    t = T.build([json.loads((nights / f"night-{n}" / "certificate.json").read_text()) for n in (4, 0, 2, 1, 3)])
    assert [n["run_id"] for n in t["nights"]] == [f"night-{n}" for n in range(5)]
    assert [len(n["fail"]) for n in t["nights"]] == [0, 0, 1, 1, 1]


@pytest.mark.timeout(300)
def test_trend_refuses_two_targets_and_an_empty_folder(certs, tmp_path):
    a, b = _load(certs["clean"]), _load(certs["clean"])
    b["target"]["model"] = "another-model"
    for n, c in enumerate((a, b)):
        (tmp_path / f"{n}.json").write_text(json.dumps(c))
    proc = _cli("trend", str(tmp_path / "0.json"), str(tmp_path / "1.json"), "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and "more than one target" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _cli("trend", str(tmp_path / "empty"), "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and "no certificate.json" in proc.stderr
