"""Case ids do not depend on where the user's files or the current directory are (issue 15
item 6; conformance/caseid.py): the certificate, JUnit, allure and a written baseline name
every case ``cases/<file>::<name>`` whether the profile, the baseline and the allure folder
are inside or outside the checkout, given with ``=`` or a space, from another directory, or
with pytest's rootdir moved."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from _standalone import ROOT
from conformance.caseid import module_id
import _forkrun as forkrun

SELECT = ["-p", "no:xdist", "--clause", "SEQ-MONOTONIC", "--reference-defect", "sequence-not-monotonic",
          "--write-baseline-by", "case"]


def test_module_id_is_the_path_below_the_innermost_cases_folder():
    assert module_id(Path("/a/repo/cases/test_x.py")) == "cases/test_x.py"
    assert module_id(Path("/srv/cases/repo/cases/sub/test_y.py")) == "cases/sub/test_y.py"
    assert module_id(Path("/a/repo/tests/test_z.py")) is None
    assert module_id(Path("/a/cases")) is None


def _files(where: Path) -> dict[str, Path]:
    where.mkdir(parents=True, exist_ok=True)
    profile = where / "acme.toml"
    profile.write_text('name = "acme"\nextends = "reference"\n', encoding="utf-8")
    (where / "allure").mkdir(exist_ok=True)
    return {"profile": profile, "baseline": where / "out" / "baseline.toml", "allure": where / "allure",
            "report": where / "report"}


def _args(f: dict[str, Path], eq: bool) -> list[str]:
    pairs = [("--target-config", f["profile"]), ("--write-baseline", f["baseline"]),
             ("--alluredir", f["allure"]), ("--report-dir", f["report"])]
    out: list[str] = []
    for opt, value in pairs:
        out += [f"{opt}={value}"] if eq else [opt, str(value)]
    return out


def _ids(f: dict[str, Path], cwd: Path, extra: list[str] = ()) -> dict[str, list]:
    cases = "cases" if cwd == ROOT else str(ROOT / "cases")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cmd = [sys.executable, "-m", "pytest", cases, "-q", "-p", "no:cacheprovider", *SELECT, *extra]
    proc = forkrun.run(cmd, cwd=cwd, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    cert = json.loads((f["report"] / "certificate.json").read_text())
    junit = ET.parse(f["report"] / "junit.xml").getroot()
    allure = [json.loads(p.read_text()) for p in f["allure"].glob("*-result.json")]
    return {
        "certificate": sorted(c["nodeid"] for c in cert["cases"]),
        "junit": sorted((t.get("classname"), t.get("name")) for t in junit.iter("testcase")),
        "baseline": sorted(re.findall(r'^case = "([^"]+)"', f["baseline"].read_text(), re.M)),
        "allure": sorted(r["fullName"] for r in allure),
        # pytest prints paths relative to the current directory; the id after it is the same
        "terminal": sorted(set(re.findall(r"cases/test_\w+\.py::\w+", proc.stdout))),
    }


@pytest.mark.timeout(300)
def test_ids_are_the_same_wherever_the_files_are(tmp_path: Path):
    inside = Path(tempfile.mkdtemp(prefix=".selftest-ids-", dir=ROOT))
    try:
        runs = {}
        f = _files(inside)
        runs["inside, space"] = _ids(f, ROOT, _args(f, eq=False))
        f = _files(tmp_path / "out-space")
        runs["outside, space"] = _ids(f, ROOT, _args(f, eq=False))
        f = _files(tmp_path / "out-eq")
        runs["outside, ="] = _ids(f, ROOT, _args(f, eq=True))
        f = _files(tmp_path / "other-cwd")
        runs["another cwd"] = _ids(f, tmp_path / "other-cwd", _args(f, eq=False))
        f = _files(tmp_path / "rootdir")
        runs["rootdir moved"] = _ids(f, ROOT, _args(f, eq=False) + [f"--rootdir={ROOT.parent}"])
    finally:
        shutil.rmtree(inside, ignore_errors=True)
    first = runs["inside, space"]
    assert first["certificate"] and all(i.startswith("cases/test_") for i in first["certificate"]), first
    assert first["baseline"] == first["certificate"] and first["allure"] and first["junit"]
    assert set(first["terminal"]) <= set(first["certificate"])
    for name, ids in runs.items():
        assert ids == first, f"{name}: {ids} != {first}"
