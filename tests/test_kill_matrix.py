"""The mutant kill matrix: every named defect of the reference server is caught by the suite.

For each defect in ``conformance.server.defects.DEFECTS`` the conformance cases that check the
defect's clause run against an embedded reference server carrying that one defect (the
plugin's ``--reference-defect``); the certificate must then give that clause FAIL (a MUST
defect) or NON-STRICT (a SHOULD defect). The clean server is covered by ``make suite`` itself,
which must pass. A defect whose clause has no case at all fails here too: a defect nobody can
catch proves nothing.

A defect of a profile fact (``Defect.profile``, e.g. a field only the Open Responses schema
requires) is judged under that profile, and must be tolerated (its clause PASS) under the
default profile. A defect with ``Defect.also`` is run once more per entry, under that profile,
where another clause or level judges the same behaviour (a SHOULD of the OpenAI profiles that
P-open makes a MUST; a shape P-open allows: PASS). The runs are subprocesses (forked from a warm helper, tests/_forkrun.py; each its own pytest session and server), a few at a
time; only the defects the selected tests name are run (so ``-k`` keeps the matrix small).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance.server.defects import DEFECTS
from conformance.tenants import ENV as OTHER_TENANT_ENV
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
# a defect that silences the server costs a turn timeout per turn: keep it short here; a
# failing generated conversation is not shrunk (--no-shrink: the same verdicts without the
# hundreds of replays, some of which wait out a turn timeout each); pytest's entry of each
# failed case is one line (--tb=line: its long form costs ~40 ms of CPU per case to format,
# and only the certificate is read)
TURN_TIMEOUT = "3"
RUN_DEADLINE_S = 240
WORKERS = 2
EXPECTED = {"MUST": "FAIL", "SHOULD": "NON-STRICT"}


def _profile_args(profile: str) -> list[str]:
    if not profile:
        return []
    if profile.endswith(".toml"):
        return ["--target-config", str(ROOT / profile)]
    return ["--profile", profile]


def _run(name: str, report_root: Path, profile: str | None = None, clause: str | None = None,
         shrink: bool = False) -> dict:
    """One run of the defect's clause (or ``clause``); ``profile`` None: the defect's own
    (Defect.profile)."""
    defect = DEFECTS[name]
    profile = defect.profile if profile is None else profile
    clause_id = clause or defect.clause
    report = report_root / (name + ("@" + Path(profile).stem if profile else "") + ("." + clause_id if clause else ""))
    cmd = [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--reference-defect", name, "--clause", clause_id, "--turn-timeout", TURN_TIMEOUT,
           "--tb=line", "--report-dir", str(report), *_profile_args(profile), *([] if shrink else ["--no-shrink"])]
    # no declared other tenant: the embedded server's own second tenant judges the tenant clauses
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != OTHER_TENANT_ENV}
    try:
        proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=RUN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {RUN_DEADLINE_S}s"}
    if proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED:
        return {"error": f"no case checks {clause_id}, so nothing can catch this defect"}
    cert_path = report / "certificate.json"
    if not cert_path.exists():
        return {"error": f"exit {proc.returncode}, no certificate\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"}
    cert = json.loads(cert_path.read_text())
    clause = next((c for c in cert["clauses"] if c["id"] == clause_id), None)
    return {"returncode": proc.returncode, "clause": clause, "overall": cert.get("overall"),
            "cases": [(c.get("nodeid"), c.get("verdict")) for c in cert.get("cases", [])],
            "messages": {c.get("nodeid"): c.get("messages", []) for c in cert.get("cases", [])},
            "tail": proc.stdout[-1500:]}


def _selected(request: pytest.FixtureRequest, test_name: str) -> list[str]:
    """The defect names (or ``name@index`` of ``Defect.also``) of the collected (selected)
    items of one test function."""
    return sorted({item.callspec.params["name"] for item in request.session.items
                   if getattr(item, "originalname", None) == test_name and hasattr(item, "callspec")})


class _OnDemand(dict):
    """Runs a defect when its test first asks for it."""

    def __init__(self, run) -> None:
        super().__init__()
        self._run = run

    def __missing__(self, name: str) -> dict:
        self[name] = self._run(name)
        return self[name]


def _results(request: pytest.FixtureRequest, test_name: str, tmp: Path, profile: str | None,
             run=None) -> dict[str, dict]:
    """The runs of the selected defects: a few at a time, or one per test under pytest-xdist,
    where every worker collects every item and xdist itself spreads the defects over workers.
    ``run(name)`` runs one (default: the defect's clause under ``profile``)."""
    run = run or (lambda name: _run(name, tmp, profile))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return _OnDemand(run)
    names = _selected(request, test_name)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run, name) for name in names}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest) -> Iterator[dict[str, dict]]:
    with tempfile.TemporaryDirectory(prefix="kill-matrix-") as tmp:
        yield _results(request, "test_defect_is_killed", Path(tmp), None)


PROFILE_DEFECTS = sorted(n for n, d in DEFECTS.items() if d.profile)


@pytest.fixture(scope="module")
def elsewhere(request: pytest.FixtureRequest) -> Iterator[dict[str, dict]]:
    """The profile defects run under the default profile, where the fact they break is not claimed."""
    with tempfile.TemporaryDirectory(prefix="kill-matrix-elsewhere-") as tmp:
        yield _results(request, "test_profile_defect_is_tolerated_elsewhere", Path(tmp), "")


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


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", PROFILE_DEFECTS)
def test_profile_defect_is_tolerated_elsewhere(elsewhere: dict[str, dict], name: str) -> None:
    """A defect of a profile fact is no defect where the profile does not claim that fact."""
    defect = DEFECTS[name]
    result = elsewhere[name]
    assert "error" not in result, f"{name}: the run could not be judged: {result['error']}"
    clause = result["clause"]
    assert clause is not None and clause["cases"], f"{name}: no case checked {defect.clause} under the default profile"
    assert clause["verdict"] == "PASS", (
        f"{name} is a {defect.profile} fact but failed {defect.clause} under the default profile "
        f"({clause['verdict']})\ncases: {result['cases']}\n{result['tail']}")


# (defect@index, defect, profile, clause, verdict) for every Defect.also entry
ALSO = {f"{name}@{index}": (name, *entry) for name, defect in sorted(DEFECTS.items())
        for index, entry in enumerate(defect.also)}


def _run_also(key: str, tmp: Path) -> dict:
    name, profile, clause, _ = ALSO[key]
    return _run(name, tmp, profile, clause)


@pytest.fixture(scope="module")
def other_profiles(request: pytest.FixtureRequest) -> Iterator[dict[str, dict]]:
    """The defects with ``also`` entries, run under each entry's profile for its clause."""
    with tempfile.TemporaryDirectory(prefix="kill-matrix-also-") as tmp:
        yield _results(request, "test_defect_judged_under_other_profile", Path(tmp), None,
                       run=lambda key: _run_also(key, Path(tmp)))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(ALSO))
def test_defect_judged_under_other_profile(other_profiles: dict[str, dict], name: str) -> None:
    """The same defect under another profile: the clause that profile judges it by gets the
    verdict the declaration names (FAIL, NON-STRICT, or PASS where the profile allows it)."""
    defect_name, profile, clause_id, want = ALSO[name]
    result = other_profiles[name]
    assert "error" not in result, f"{name}: the run could not be judged: {result['error']}"
    clause = result["clause"]
    assert clause is not None and clause["cases"], f"{name}: no case checked {clause_id} under {profile!r}"
    assert clause["verdict"] == want, (
        f"{defect_name} under {profile or 'the default profile'}: {clause_id} got {clause['verdict']}, "
        f"expected {want}\ncases: {result['cases']}\n{result['tail']}")


def test_a_failing_generated_conversation_is_shrunk_and_replayed(tmp_path: Path) -> None:
    """The matrix runs --no-shrink; shrinking (the default against the embedded server) still
    reports a cache defect under its clause as a short sequence that replays the same way."""
    name = "renamed-not-found-code"
    result = _run(name, tmp_path, shrink=True)
    assert "error" not in result, result["error"]
    case = "cases/test_state_machine.py::test_generated_conversations_agree_with_model"
    assert (case, "FAIL") in result["cases"], result["cases"]
    message = next(m for m in result["messages"][case] if DEFECTS[name].clause in m)
    steps = [line for line in message.splitlines() if line.startswith("    ")]
    assert 0 < len(steps) <= 8, message
    assert "same disagreement" in message, message
