"""Self-tests of conformance/verdicts.py: registry, expect(), verdict computation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance import verdicts as V

KEY = "sk-verdict-SECRET-0123456789"


@pytest.fixture(scope="module")
def registry():
    path = V.default_clauses_path()
    assert path is not None
    return V.ClauseRegistry.load(path)


@dataclass
class F:
    clause: str
    message: str
    kind: str = "violation"
    frame_index: int | None = None
    response_id: str | None = None
    pointer: str | None = None


def rec(registry):
    return V.CaseRecorder(registry, (), lambda t: t.replace(KEY, "<redacted-key>"))


def test_registry_loads(registry):
    assert len(registry) > 50
    c = registry["CREATE-BACKGROUND-REJECTED"]
    assert c.level == "MUST" and c.requires == ("background_rejected",)
    with pytest.raises(V.UnknownClause):
        registry["NOPE-NOT-A-CLAUSE"]


@pytest.mark.parametrize("text, fragment", [
    ('[[clause]]\nid = "A"\nlevel = "MUSTNT"\n', "level"),
    ('[[clause]]\nlevel = "MUST"\n', "missing id"),
    ('[[clause]]\nid = "A"\nlevel = "MUST"\n[[clause]]\nid = "A"\nlevel = "MAY"\n', "duplicate"),
    ('[[clause]]\nid = "A"\nlevel = "MUST"\nrequires = "lanes"\n', "requires"),
])
def test_bad_registry(tmp_path, text, fragment):
    f = tmp_path / "clauses.toml"
    f.write_text(text)
    with pytest.raises(V.RegistryError) as info:
        V.ClauseRegistry.load(f)
    assert fragment in str(info.value) and str(f) in str(info.value)


def test_pass(registry):
    r = rec(registry)
    assert r.expect("TURN-TEXT", True)
    assert r.verdict() == V.PASS


def test_must_failure_raises_at_once(registry):
    r = rec(registry)
    with pytest.raises(V.ClauseViolation) as info:
        r.expect("CACHE-MISS-STORE-FALSE", False, {"code": "boom", "key": KEY}, "wrong code")
    text = str(info.value)
    assert "CACHE-MISS-STORE-FALSE" in text and "MUST" in text and "previous_response_not_found" in text
    assert "boom" in text and KEY not in text
    assert isinstance(info.value, AssertionError)
    assert r.verdict() == V.FAIL


def test_should_failure_continues(registry):
    r = rec(registry)
    assert r.expect("ERR-STATUS-PRESENT", False, None, "no status") is False
    r.expect("TURN-TEXT", True)
    assert r.verdict() == V.NON_STRICT
    assert "ERR-STATUS-PRESENT" in r.failure_text()


def test_may_and_extensions_are_info(registry):
    r = rec(registry)
    r.expect("CACHE-MISS-STORE-TRUE-HYDRATED", False)
    assert r.verdict() == V.INFO
    r2 = rec(registry)
    r2.add_findings([F("EXT-UNKNOWN-TOLERATED", "unknown event x.y", kind="extension")])
    assert r2.verdict() == V.INFO
    r2.add_findings([F("SEQ-MONOTONIC", "seq went down")])          # MUST finding
    assert r2.verdict() == V.FAIL


def test_findings_by_level(registry):
    r = rec(registry)
    r.add_findings([F("SEQ-FROM-ZERO-BY-ONE", "gap")])
    assert r.verdict() == V.NON_STRICT
    r.add_findings([F("STREAM-ONE-TERMINAL", "two terminals")])
    assert r.verdict() == V.FAIL


def test_unknown_finding_clause_is_error(registry):
    r = rec(registry)
    r.add_findings([F("MADE-UP", "x")])
    assert r.verdict() == V.ERROR


def test_unsupported_reason(registry):
    c = registry["LANE-FIFO"]
    assert V.unsupported_reason(c, frozenset(), frozenset({"P-legacy"}), "xai").startswith("UNSUPPORTED:")
    assert V.unsupported_reason(c, frozenset({"lanes"}), frozenset({"P-legacy", "P-lanes"}), "openai") is None
    c2 = registry["CREATE-STREAM-TOLERATED"]     # profiles P-legacy, P-lanes only
    why = V.unsupported_reason(c2, frozenset({"stream_field_tolerated"}), frozenset({"P-open"}), "open-responses")
    assert why and "P-open" in why


def test_module_level_expect_binds_to_current(registry):
    with pytest.raises(RuntimeError):
        V.expect("TURN-TEXT", True)
    r = rec(registry)
    token = V.bind(r)
    try:
        V.expect("TURN-TEXT", True)
    finally:
        V.unbind(token)
    assert len(r.observations) == 1


def test_clause_table_and_coverage(registry):
    records = [
        {"nodeid": "a", "clauses": ["TURN-TEXT"], "verdict": V.PASS, "observations": []},
        {"nodeid": "b", "clauses": ["LANE-FIFO"], "verdict": V.UNSUPPORTED, "observations": []},
        {"nodeid": "c", "clauses": ["WS-SAME-PATH"], "verdict": V.FAIL, "observations": [
            V.Observation("WS-SAME-PATH", "MUST", False, "expect", "404").as_dict(),
            V.Observation("SEQ-FROM-ZERO-BY-ONE", "SHOULD", False, "violation", "gap").as_dict()]},
    ]
    rows = {r["id"]: r for r in V.clause_table(registry, records)}
    assert rows["TURN-TEXT"]["verdict"] == V.PASS
    assert rows["LANE-FIFO"]["verdict"] == V.UNSUPPORTED
    assert rows["WS-SAME-PATH"]["verdict"] == V.FAIL
    assert rows["SEQ-FROM-ZERO-BY-ONE"]["verdict"] == V.NON_STRICT
    assert rows["ERR-ENVELOPE"]["verdict"] == V.UNTESTED
    cov = V.coverage(list(rows.values()))
    assert cov["all"]["with_cases"] == 3 and cov["all"]["clauses"] == len(registry)
    assert cov["MUST"]["with_cases"] == 3


def test_summarize_bounds_and_redacts():
    assert V.summarize(None) == ""
    s = V.summarize({"x": "y" * 1000, "k": KEY}, lambda t: t.replace(KEY, "R"), limit=100)
    assert len(s) <= 100 and KEY not in s
