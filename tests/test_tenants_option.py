"""The other tenant's key (conformance/tenants.py, spec §4.5 item 35a): where it comes from,
the embedded server's key list, and redaction of both keys."""

from __future__ import annotations

import pytest

from conformance import tenants as TN
from conformance.server.config import parse_api_keys


def test_option_then_environment_then_embedded_default():
    env = {TN.ENV: "sk-env-other-1234567890"}
    assert TN.other_tenant_key("sk-opt-other", "sk-first", embedded=False, environ=env) == "sk-opt-other"
    assert TN.other_tenant_key(None, "sk-first", embedded=False, environ=env) == "sk-env-other-1234567890"
    assert TN.other_tenant_key(None, "sk-first", embedded=False, environ={}) == ""
    assert TN.other_tenant_key(None, "sk-first", embedded=True, environ={}) == TN.EMBEDDED_OTHER_KEY


def test_the_first_key_again_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="must differ"):
        TN.other_tenant_key("sk-same", "sk-same", embedded=False, environ={})


def test_embedded_keys_put_the_other_key_in_another_tenant():
    tenants = parse_api_keys(TN.embedded_api_keys("sk-first", "sk-second"))
    assert tenants["sk-first"] != tenants["sk-second"]
    assert TN.embedded_api_keys("sk-first", "") == ("sk-first",)


def test_both_keys_are_redacted():
    first, other = "sk-first-SENTINEL-aaaaaaaa", "sk-other-SENTINEL-bbbbbbbb"
    out = TN.redact_keys(f"Bearer {first} then Bearer {other}", first, other, "")
    assert first not in out and other not in out


OTHER_SENTINEL = "sk-report-OTHER-TENANT-5e1f0a9b7c3d"
CASE = '''
import pytest

@pytest.mark.clause("CACHE-MISS-STORE-FALSE")
def test_miss(connect):
    connect().turn(input="hi", store=False, previous_response_id="resp_conformance_missing_0000")
'''


def test_the_other_key_is_in_no_report_file(pytester: pytest.Pytester):
    """Sentinel: the second key given on the command line is written nowhere."""
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_demo.py").write_text(CASE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", "rep",
                                "--other-tenant-key", OTHER_SENTINEL, "cases")
    result.assert_outcomes(passed=1)
    files = [p for p in (pytester.path / "rep").rglob("*") if p.is_file()]
    assert any(p.name == "certificate.json" for p in files)
    for p in files:
        text = p.read_text(encoding="utf-8", errors="replace")
        assert OTHER_SENTINEL not in text and OTHER_SENTINEL[-12:] not in text, p.name
    assert OTHER_SENTINEL not in result.stdout.str() + result.stderr.str()


# --- against a --target: UNTESTED without the key, judged with it, UNSUPPORTED single-tenant --

TENANT_CLAUSES = ("TENANT-CONTINUE-STORE-TRUE", "TENANT-CONTINUE-STORE-FALSE", "TENANT-HTTP-GET",
                  "TENANT-HTTP-DELETE", "TENANT-NO-CONTEXT-LEAK")
OTHER_KEY = "sk-selftest-other-tenant-0002"


def _tenant_run(url: str, tmp_path, *extra: str) -> dict:
    from _standalone import KEY, run_cases

    args = ["-p", "no:xdist", "--target", url, "--api-key", KEY, "--turn-timeout", "10", "--retries", "0",
            *[a for clause in TENANT_CLAUSES for a in ("--clause", clause)], *extra]
    proc, cert, _ = run_cases(args, tmp_path, timeout=120)
    assert cert is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    return cert


@pytest.fixture(scope="module")
def two_tenant_server():
    from _standalone import standalone_server

    with standalone_server(args=("--api-key", f"{OTHER_KEY}:globex")) as url:
        yield url


@pytest.mark.timeout(180)
def test_without_the_key_isolation_is_untested_and_not_certified(two_tenant_server, tmp_path, monkeypatch):
    monkeypatch.delenv(TN.ENV, raising=False)
    cert = _tenant_run(two_tenant_server, tmp_path)
    rows = {row["id"]: row for row in cert["clauses"] if row["id"] in TENANT_CLAUSES}
    assert {cid: row["verdict"] for cid, row in rows.items()} == {cid: "UNTESTED" for cid in TENANT_CLAUSES}
    assert all("--other-tenant-key" in row["reason"] for row in rows.values()), rows
    assert cert["certification"]["certified"] is False
    assert any("multi-tenancy" in reason and "--other-tenant-key" in reason
               for reason in cert["certification"]["reasons"]), cert["certification"]["reasons"]


@pytest.mark.timeout(180)
def test_with_the_key_isolation_is_judged(two_tenant_server, tmp_path, monkeypatch):
    monkeypatch.delenv(TN.ENV, raising=False)
    cert = _tenant_run(two_tenant_server, tmp_path, "--other-tenant-key", OTHER_KEY)
    verdicts = {row["id"]: row["verdict"] for row in cert["clauses"] if row["id"] in TENANT_CLAUSES}
    assert verdicts == {cid: "PASS" for cid in TENANT_CLAUSES}
    assert not any("multi-tenancy" in reason for reason in cert["certification"]["reasons"])


@pytest.mark.timeout(180)
def test_a_single_tenant_profile_does_not_claim_isolation(two_tenant_server, tmp_path, monkeypatch):
    monkeypatch.delenv(TN.ENV, raising=False)
    profile = tmp_path / "single.toml"
    profile.write_text('name = "single"\nextends = "openai"\n\n[target]\nmulti_tenant = false\n', encoding="utf-8")
    cert = _tenant_run(two_tenant_server, tmp_path / "rep", "--target-config", str(profile))
    rows = [row for row in cert["clauses"] if row["id"] in TENANT_CLAUSES]
    assert {row["verdict"] for row in rows} == {"UNSUPPORTED"} and not any(row["claimed"] for row in rows)
    assert not any("multi-tenancy" in reason for reason in cert["certification"]["reasons"])


@pytest.mark.parametrize("table, applies", [
    ({"name": "plain", "extends": "openai"}, set(TENANT_CLAUSES)),
    ({"name": "zdr", "extends": "openai", "cache": {"zdr": True}},            # nothing stored to GET/DELETE
     set(TENANT_CLAUSES) - {"TENANT-HTTP-GET", "TENANT-HTTP-DELETE"}),
    ({"name": "ws-only", "extends": "openai", "features": {"http_endpoint": False}},
     set(TENANT_CLAUSES) - {"TENANT-HTTP-GET", "TENANT-HTTP-DELETE"}),
    ({"name": "single", "extends": "openai", "target": {"multi_tenant": False}}, set()),
])
def test_which_tenant_clauses_a_profile_claims(table, applies):
    from conformance.target import profile_from_table
    from conformance.verdicts import ClauseRegistry, default_clauses_path, unsupported_reason

    registry, profile = ClauseRegistry.load(default_clauses_path()), profile_from_table(table)
    claimed = {cid for cid in TENANT_CLAUSES
               if unsupported_reason(registry[cid], profile.capabilities(), profile.spec_profiles, profile.name) is None}
    assert claimed == applies
