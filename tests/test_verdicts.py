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
        {"nodeid": "a", "clauses": ["TURN-TEXT"], "verdict": V.PASS, "observations": [
            V.Observation("TURN-TEXT", "MUST", True, "expect", "").as_dict()]},
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
    # the SHOULD finding in case c checked SEQ-FROM-ZERO-BY-ONE: that clause has a case too
    assert cov["all"]["with_cases"] == 4 and cov["all"]["clauses"] == len(registry)
    assert cov["MUST"]["with_cases"] == 3


def test_summarize_bounds_and_redacts():
    assert V.summarize(None) == ""
    s = V.summarize({"x": "y" * 1000, "k": KEY}, lambda t: t.replace(KEY, "R"), limit=100)
    assert len(s) <= 100 and KEY not in s


def _o(clause: str, ok: bool, kind: str = "expect") -> dict:
    return V.Observation(clause, "MUST", ok, kind, "" if ok else "violated").as_dict()


def test_a_clause_is_pass_only_when_checked_and_held(registry):
    """A case that stops at its first MUST violation did not check its other clauses: they are
    NOT-REACHED for it (never PASS), and PASS only where another case checked them."""
    early = {"nodeid": "t::early", "clauses": ["ERR-ENVELOPE", "ERR-CODE-NESTED", "ERR-STATUS-PRESENT"],
             "verdict": V.FAIL, "observations": [_o("ERR-ENVELOPE", False)]}
    rows = {r["id"]: r for r in V.clause_table(registry, [early])}
    assert rows["ERR-ENVELOPE"]["verdict"] == V.FAIL
    for cid in ("ERR-CODE-NESTED", "ERR-STATUS-PRESENT"):
        assert rows[cid]["verdict"] == V.NOT_REACHED, cid
        assert rows[cid]["not_reached"] == ["t::early"] and rows[cid]["cases"] == ["t::early"]
    assert V.not_reached(early) == ["ERR-CODE-NESTED", "ERR-STATUS-PRESENT"]

    # another case that reached ERR-CODE-NESTED (the monitor checked an error frame) makes it PASS;
    # ERR-STATUS-PRESENT stays NOT-REACHED
    monitored = {"nodeid": "t::other", "clauses": ["ERR-CODE-NESTED"], "verdict": V.PASS,
                 "observations": [], "reached": ["ERR-CODE-NESTED", "WS-TEXT-JSON-FRAMES"]}
    rows = {r["id"]: r for r in V.clause_table(registry, [early, monitored])}
    assert rows["ERR-CODE-NESTED"]["verdict"] == V.PASS
    assert rows["ERR-CODE-NESTED"]["not_reached"] == ["t::early"]
    assert rows["ERR-STATUS-PRESENT"]["verdict"] == V.NOT_REACHED
    # a clause the monitor checked in a case that does not mark it counts as checked
    assert rows["WS-TEXT-JSON-FRAMES"]["verdict"] == V.PASS and rows["WS-TEXT-JSON-FRAMES"]["cases"] == ["t::other"]

    # an expectation that held, even in a case that failed later on another clause, is PASS
    later = {"nodeid": "t::later", "clauses": ["TURN-TEXT", "WS-SAME-PATH"], "verdict": V.FAIL,
             "observations": [_o("TURN-TEXT", True), _o("WS-SAME-PATH", False)]}
    rows = {r["id"]: r for r in V.clause_table(registry, [later])}
    assert rows["TURN-TEXT"]["verdict"] == V.PASS and rows["WS-SAME-PATH"]["verdict"] == V.FAIL

    # an ERROR case that never got to check anything, an UNSUPPORTED and a SKIPPED one
    error = {"nodeid": "t::err", "clauses": ["LANE-FIFO"], "verdict": V.ERROR, "observations": []}
    unsupported = {"nodeid": "t::uns", "clauses": ["ZDR-NOTHING-PERSISTED"], "verdict": V.UNSUPPORTED,
                   "observations": []}
    skipped = {"nodeid": "t::slow", "clauses": ["LIFETIME-LIMIT-ERROR"], "verdict": V.SKIPPED, "observations": []}
    rows = {r["id"]: r for r in V.clause_table(registry, [error, unsupported, skipped])}
    assert rows["LANE-FIFO"]["verdict"] == V.ERROR and rows["LANE-FIFO"]["reason"].startswith("cannot judge")
    assert rows["ZDR-NOTHING-PERSISTED"]["verdict"] == V.UNSUPPORTED and not rows["ZDR-NOTHING-PERSISTED"]["not_reached"]
    assert rows["LIFETIME-LIMIT-ERROR"]["verdict"] == V.UNTESTED
    assert not any(r["verdict"] == V.PASS for r in rows.values())


def test_recorder_reached(registry):
    r = rec(registry)
    r.expect("TURN-TEXT", True)
    r.add_findings([F("SEQ-MONOTONIC", "jump")])
    r.info("a measurement", "LANE-FIFO")
    r.checked.add("WS-TEXT-JSON-FRAMES")
    assert r.reached() == {"TURN-TEXT", "SEQ-MONOTONIC", "WS-TEXT-JSON-FRAMES"}


def test_monitor_scope_names_registry_clauses_and_applies_to_what_it_governs(registry):
    from conformance import reach
    assert set(reach.MONITOR_SCOPE) <= set(registry.clauses)
    created = {"type": "response.created", "response": {"id": "resp_1"}}
    assert reach.by_monitor([], [{"type": "response.create"}]) == set()
    only_created = reach.by_monitor([created], [{"type": "response.create"}])
    assert {"STREAM-CREATED-FIRST", "SEQ-MONOTONIC", "LANE-DEFAULT-UNTAGGED", "WS-TEXT-JSON-FRAMES"} <= only_created
    assert not only_created & {"ERR-ENVELOPE", "ERR-CODE-NESTED", "LANE-TAGGED", "STREAM-DELTAS-ADD-UP",
                               "STREAM-INCOMPLETE-ITEM-LAST"}
    err = reach.by_monitor([{"type": "error", "error": {"code": "x"}}], [{"type": "response.create", "stream_id": "a"}])
    assert {"ERR-ENVELOPE", "ERR-CODE-NESTED"} <= err and "LANE-TAGGED" not in err
    lanes = reach.by_monitor([created, {"type": "response.output_text.delta"}], [{"type": "response.create",
                                                                                  "stream_id": "a"}])
    assert {"LANE-TAGGED", "STREAM-DELTAS-ADD-UP"} <= lanes and "LANE-DEFAULT-UNTAGGED" not in lanes
