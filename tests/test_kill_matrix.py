"""The mutant kill matrix: every named defect of the reference server is caught by the suite.

For each defect in ``conformance.server.defects.DEFECTS`` the conformance cases that check the
defect's clause run against an embedded reference server carrying that one defect (the
plugin's ``--reference-defect``); the certificate must then give that clause FAIL (a MUST
defect) or NON-STRICT (a SHOULD defect). The clean server is covered by ``make suite`` itself,
which must pass. A defect whose clause has no case at all fails here too: a defect nobody can
catch proves nothing.

The runs are subprocesses (each its own pytest session and server), a few at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance.server.defects import DEFECTS

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
# a defect that silences the server costs a turn timeout per turn: keep it short here
TURN_TIMEOUT = "3"
RUN_DEADLINE_S = 240
WORKERS = 2
EXPECTED = {"MUST": "FAIL", "SHOULD": "NON-STRICT"}


def _run(name: str, report_root: Path) -> dict:
    defect = DEFECTS[name]
    report = report_root / name
    cmd = [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--reference-defect", name, "--clause", defect.clause, "--turn-timeout", TURN_TIMEOUT,
           "--report-dir", str(report)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {RUN_DEADLINE_S}s"}
    if proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED:
        return {"error": f"no case checks {defect.clause}, so nothing can catch this defect"}
    cert_path = report / "certificate.json"
    if not cert_path.exists():
        return {"error": f"exit {proc.returncode}, no certificate\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"}
    cert = json.loads(cert_path.read_text())
    clause = next((c for c in cert["clauses"] if c["id"] == defect.clause), None)
    return {"returncode": proc.returncode, "clause": clause, "overall": cert.get("overall"),
            "cases": [(c.get("nodeid"), c.get("verdict")) for c in cert.get("cases", [])],
            "tail": proc.stdout[-1500:]}


@pytest.fixture(scope="module")
def matrix() -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="kill-matrix-") as tmp:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {name: pool.submit(_run, name, Path(tmp)) for name in DEFECTS}
            return {name: f.result() for name, f in futures.items()}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_is_killed(matrix: dict[str, dict], name: str) -> None:
    defect = DEFECTS[name]
    result = matrix[name]
    assert "error" not in result, f"{name}: the run could not be judged: {result['error']}"
    clause = result["clause"]
    assert clause is not None, f"{name}: clause {defect.clause} is not in the certificate"
    assert clause["cases"], f"{name}: no case checks {defect.clause}, so nothing can catch this defect"
    want = EXPECTED[defect.level]
    assert clause["verdict"] == want, (
        f"{name} ({defect.level} {defect.clause}) survived: the clause got {clause['verdict']}, expected {want}\n"
        f"cases: {result['cases']}\n{result['tail']}")
