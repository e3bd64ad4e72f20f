"""Cases whose verdict depends on more than one way or on a profile fact, run against the
embedded reference server with defects.

Eviction (spec §4.5 item 30): a server that accepts an orphan call_id cannot fail the
scenario's turn 2, so the case falls back to further provocations (out of range, a wrong
type, a malformed tool_choice) until one is refused; eviction is still judged (PASS on a
server that evicts, FAIL on one that does not), not ERROR, also on a server that checks types
only and accepts the out-of-range value too.

Cache depth (§4.5 item 25, §5): a server that keeps older responses FAILs the not-latest miss
only under a profile that claims ``[cache] latest_only``; otherwise it is an observation.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent


def _clause_verdicts(tmp_path: Path, case: str, defects: tuple[str, ...], *extra: str) -> tuple[dict, dict]:
    report = tmp_path / ("-".join(defects) + str(len(extra)))
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "cases" / case), "-q", "-p", "no:cacheprovider",
           "-p", "no:xdist", "--turn-timeout", "3", "--report-dir", str(report), *extra]
    for d in defects:
        cmd += ["--reference-defect", d]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=120)
    cert_path = report / "certificate.json"
    assert cert_path.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    cert = json.loads(cert_path.read_text())
    return ({r["id"]: r["verdict"] for r in cert["clauses"]},
            {c["nodeid"].split("::")[-1]: c["verdict"] for c in cert["cases"]})


@pytest.mark.timeout(300)
def test_eviction_judged_when_orphan_call_ids_are_accepted(tmp_path):
    clauses, cases = _clause_verdicts(tmp_path, "test_eviction.py", ("orphan-call-id-accepted",))
    assert clauses["CONT-ORPHAN-CALL-OUTPUT-REJECTED"] == "NON-STRICT"
    assert clauses["EVICT-ON-FAILED-CONTINUATION"] == "PASS"
    assert "ERROR" not in cases.values(), cases
    clauses, cases = _clause_verdicts(tmp_path, "test_eviction.py", ("orphan-call-id-accepted", "no-eviction"))
    assert clauses["EVICT-ON-FAILED-CONTINUATION"] == "FAIL"
    assert all(v == "FAIL" for k, v in cases.items() if k.startswith("test_failed_continuation_evicts")), cases


@pytest.mark.timeout(300)
def test_eviction_judged_when_only_a_wrong_type_is_refused(tmp_path):
    """Issue 17 item 9: orphan call_id and temperature 99 accepted, temperature "hot" refused."""
    clauses, cases = _clause_verdicts(tmp_path, "test_eviction.py", ("validates-types-only",))
    assert clauses["CONT-ORPHAN-CALL-OUTPUT-REJECTED"] == "NON-STRICT"
    assert clauses["EVICT-ON-FAILED-CONTINUATION"] == "PASS"
    assert "ERROR" not in cases.values(), cases
    clauses, cases = _clause_verdicts(tmp_path, "test_eviction.py", ("validates-types-only", "no-eviction"))
    assert clauses["EVICT-ON-FAILED-CONTINUATION"] == "FAIL"
    assert all(v == "FAIL" for k, v in cases.items() if k.startswith("test_failed_continuation_evicts")), cases


@pytest.mark.timeout(300)
def test_deeper_cache_is_info_unless_the_profile_claims_latest_only(tmp_path):
    clauses, cases = _clause_verdicts(tmp_path, "test_cache.py", ("keeps-older-responses",),
                                      "-k", "not_latest")
    assert cases == {"test_miss_not_latest_store_false": "FAIL"}      # reference claims latest_only
    deep = tmp_path / "deep.toml"
    deep.write_text('name = "deep-cache"\nextends = "reference"\n[cache]\nlatest_only = false\n')
    clauses, cases = _clause_verdicts(tmp_path, "test_cache.py", ("keeps-older-responses",),
                                      "-k", "not_latest", "--target-config", str(deep))
    assert cases == {"test_miss_not_latest_store_false": "INFO"}


@pytest.mark.parametrize("case", ["test_tenants.py", "test_errors.py", "test_state_machine.py", "test_cache.py"])
def test_a_refusal_as_response_failed_is_not_failed_under_p_open(tmp_path, case):
    """P-open lets previous_response_not_found come as response.failed (§4.10 item 51a): the cases
    that provoke it read the code from either form, so such a server is judged like a clean one."""
    clauses, cases = _clause_verdicts(tmp_path, case, ("not-found-as-response-failed",), "--profile", "open-responses")
    judged = {**cases, **clauses}
    bad = {name: verdict for name, verdict in judged.items() if verdict in ("FAIL", "ERROR", "NON-STRICT")}
    assert not bad, bad
    # the same cases ran as against the clean server (none turned UNSUPPORTED or skipped instead)
    _, clean_cases = _clause_verdicts(tmp_path, case, (), "--profile", "open-responses")
    assert {name for name, verdict in cases.items() if verdict == "PASS"} \
        >= {name for name, verdict in clean_cases.items() if verdict == "PASS"} - {"test_error_envelope[unknown-previous-id]"}
