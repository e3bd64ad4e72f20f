"""The clause table (``verdicts.clause_table``) and the certification block over it: a clause is
PASS only when a case checked it and it held, whatever the cases' outcomes (issue 15 item 4).
A hypothesis property test over any mix of case records, then examples of each outcome."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from conformance import verdicts as V
from conformance.report import certification, clause_rows

REGISTRY = V.ClauseRegistry([
    V.Clause("M1", "MUST", "m1", "§1"), V.Clause("M2", "MUST", "m2", "§2"),
    V.Clause("S1", "SHOULD", "s1", "§3"), V.Clause("Y1", "MAY", "y1", "§4"),
    V.Clause("OLD", "MUST", "old", "§5", retired=True),
])
IDS = [c.id for c in REGISTRY]
OUTCOMES = [V.PASS, V.FAIL, V.NON_STRICT, V.INFO, V.ERROR, V.UNSUPPORTED, V.SKIPPED, "FLAKY", "KNOWN"]
KNOWN_AS = [V.FAIL, V.NON_STRICT, V.ERROR, "FLAKY"]     # what a baseline may excuse
JUDGED = (V.PASS, V.FAIL, V.NON_STRICT, V.INFO)


@st.composite
def observations(draw):
    cid = draw(st.sampled_from(IDS))
    kind = draw(st.sampled_from(["expect", "violation", "info", "extension"]))
    ok = draw(st.booleans()) if kind == "expect" else False
    return V.Observation(cid, REGISTRY[cid].level, ok, kind, "" if ok else f"{kind} on {cid}").as_dict()


@st.composite
def records(draw, n: int):
    verdict = draw(st.sampled_from(OUTCOMES))
    rec = {"nodeid": f"cases/t.py::case{n}", "verdict": verdict,
           "clauses": draw(st.lists(st.sampled_from(IDS), unique=True, max_size=3)),
           "reached": draw(st.lists(st.sampled_from(IDS), unique=True, max_size=3)),
           "observations": draw(st.lists(observations(), max_size=4)),
           "messages": draw(st.lists(st.sampled_from(["cannot judge: x", "stalled", "slow: needs --run-slow"]),
                                     max_size=1))}
    if verdict == "KNOWN":
        rec["known"] = {"verdict": draw(st.sampled_from(KNOWN_AS)), "entries": [1], "reasons": ["r"]}
    if verdict == "FLAKY" or rec.get("known", {}).get("verdict") == "FLAKY":
        rec["tries"] = [{"verdict": v, "messages": [], "failed_clauses": fc} for v, fc in draw(st.lists(
            st.tuples(st.sampled_from(OUTCOMES[:5]), st.lists(st.sampled_from(IDS), unique=True, max_size=2)),
            min_size=2, max_size=3))]
    if verdict in (V.UNSUPPORTED, V.SKIPPED):     # a case that did not run checked nothing
        rec["reached"], rec["observations"] = [], []
    return rec


def run_records():
    return st.integers(0, 6).flatmap(lambda k: st.tuples(*[records(i) for i in range(k)]).map(list))


def own(rec: dict) -> str:
    return rec["known"]["verdict"] if rec["verdict"] == "KNOWN" else rec["verdict"]


def checked(rec: dict, cid: str) -> bool:
    return cid in rec["reached"] or any(o["clause"] == cid and o["kind"] in ("expect", "violation")
                                        for o in rec["observations"])


def violates(rec: dict, cid: str) -> str | None:
    bad = {o["verdict"] for o in rec["observations"] if o["clause"] == cid and not o["ok"]}
    return V.FAIL if V.FAIL in bad else (V.NON_STRICT if V.NON_STRICT in bad else None)


def touches(rec: dict, cid: str) -> bool:
    return (cid in rec["clauses"] or checked(rec, cid) or violates(rec, cid) is not None
            or any(cid in t["failed_clauses"] for t in rec.get("tries", [])))


@settings(max_examples=400, deadline=None)
@given(run_records())
def test_a_clause_is_pass_only_when_a_case_checked_it_and_it_held(recs):
    rows = {r["id"]: r for r in V.clause_table(REGISTRY, recs)}
    assert rows["OLD"]["verdict"] == "RETIRED"
    for cid in IDS[:-1]:
        row, mine = rows[cid], [r for r in recs if touches(r, cid)]
        verdict = row["verdict"]
        plain = [r for r in mine if r["verdict"] not in ("FLAKY", "KNOWN")]
        assert row["cases"] == sorted(r["nodeid"] for r in mine)
        if verdict == V.PASS:
            assert any(checked(r, cid) and own(r) in JUDGED and r["verdict"] != "FLAKY" for r in mine)
            assert not any(violates(r, cid) for r in mine) and not any(r["verdict"] == "FLAKY" for r in mine)
            assert row["reason"] == ""
        else:
            assert row["reason"] or verdict in (V.FAIL, V.NON_STRICT), row
        # a MUST violated in a case that is neither FLAKY nor KNOWN: FAIL, and only then
        assert (verdict == V.FAIL) == any(violates(r, cid) == V.FAIL for r in plain)
        if verdict != V.FAIL and any(r["verdict"] == "FLAKY" for r in mine):
            assert verdict == "FLAKY"
        if any(violates(r, cid) for r in mine) or any(r["verdict"] == "FLAKY" for r in mine):
            assert verdict != V.PASS
        # cases that could not judge (or did not run) vouch for nothing
        if not any(own(r) in JUDGED or r["verdict"] == "FLAKY" for r in mine):
            assert verdict not in (V.PASS, V.NOT_REACHED)
        ran = [r for r in mine if own(r) not in (V.UNSUPPORTED, V.SKIPPED)]
        if ran and all(own(r) == V.ERROR for r in ran) and not any(violates(r, cid) for r in mine):
            assert verdict in (V.ERROR, "KNOWN"), (verdict, mine)
        if not ran:
            assert verdict in (V.UNSUPPORTED, V.UNTESTED)
        if not mine:
            assert verdict == V.UNTESTED
        if verdict == "KNOWN":
            assert any(r["verdict"] == "KNOWN" for r in mine) and not any(violates(r, cid) for r in plain)
    # the certification follows: a claimed MUST clause that is not PASS blocks it
    for row in rows.values():
        row["claimed"] = row["verdict"] != "RETIRED"
    cert = certification(V.PASS, list(rows.values()), recs)
    blocked = [r["id"] for r in rows.values() if r["level"] == "MUST" and r["claimed"] and r["verdict"] != V.PASS]
    assert cert["certified"] == (not blocked and not any(r["verdict"] == "FLAKY" for r in recs))
    for cid in blocked:
        assert any(cid in reason for reason in cert["reasons"])
    assert clause_rows(REGISTRY, recs) == V.clause_table(REGISTRY, recs)


# --- examples -------------------------------------------------------------------------------

def _obs(cid: str, ok: bool, kind: str = "expect", message: str = "") -> dict:
    return V.Observation(cid, REGISTRY[cid].level, ok, kind, message or ("" if ok else "violated")).as_dict()


def _row(recs: list[dict], cid: str) -> dict:
    return {r["id"]: r for r in V.clause_table(REGISTRY, recs)}[cid]


def test_cannot_judge_after_checks_that_held_is_error_not_pass():
    """The FIFO cases on a fast target: every expectation held, then "cannot judge"."""
    fifo = {"nodeid": "cases/test_sequential.py::test_queued_creates_run_in_order", "clauses": ["M1", "M2"],
            "verdict": V.ERROR, "reached": ["M1", "M2"], "observations": [_obs("M1", True), _obs("M1", True)],
            "messages": ["ERROR: HarnessError: cannot judge: the later response.create did not provably arrive"]}
    row = _row([fifo], "M1")
    assert row["verdict"] == V.ERROR and "cannot judge" in row["reason"] and "test_queued" in row["reason"]
    # another case that checked M2 and held makes it PASS; M1 stays ERROR
    other = {"nodeid": "cases/t.py::other", "clauses": [], "verdict": V.PASS, "reached": ["M2"], "observations": []}
    assert _row([fifo, other], "M2")["verdict"] == V.PASS and _row([fifo, other], "M1")["verdict"] == V.ERROR
    # a stalled target (ERROR, nothing checked) and a budget skip: never PASS
    stalled = {"nodeid": "cases/t.py::stalled", "clauses": ["S1"], "verdict": V.ERROR, "reached": [],
               "observations": [], "messages": ["ERROR: TargetStalled: no frame for 30s"]}
    budget = {"nodeid": "cases/t.py::budget", "clauses": ["S1"], "verdict": V.SKIPPED, "reached": [],
              "observations": [], "messages": ["budget: does not fit in --max-requests"]}
    assert _row([stalled, budget], "S1")["verdict"] == V.ERROR
    row = _row([budget], "S1")
    assert row["verdict"] == V.UNTESTED and "budget" in row["reason"]
    # a violation seen before the case could not judge still counts
    seen = dict(stalled, observations=[_obs("S1", False, "violation")])
    assert _row([seen], "S1")["verdict"] == V.NON_STRICT


def test_retried_flaky_and_known_cases():
    # retried, the same FAIL on every try: FAIL
    retried = {"nodeid": "cases/t.py::r", "clauses": ["M1"], "verdict": V.FAIL, "reached": ["M1"],
               "observations": [_obs("M1", False)], "tries": [{"verdict": V.FAIL, "messages": [], "failed_clauses": ["M1"]}] * 2}
    assert _row([retried], "M1")["verdict"] == V.FAIL
    # FLAKY: failed on one try, held on the kept one: FLAKY, also for a clause it only marks
    flaky = {"nodeid": "cases/t.py::f", "clauses": ["M1", "M2"], "verdict": "FLAKY", "reached": ["M1"],
             "observations": [_obs("M1", True)],
             "tries": [{"verdict": V.FAIL, "messages": [], "failed_clauses": ["M1"]},
                       {"verdict": V.PASS, "messages": [], "failed_clauses": []}]}
    assert _row([flaky], "M1")["verdict"] == "FLAKY" and _row([flaky], "M2")["verdict"] == "FLAKY"
    # KNOWN: the baseline excuses a FAIL; the clause reads KNOWN, a clause it checked and held PASS
    known = {"nodeid": "cases/t.py::k", "clauses": ["M1", "M2"], "verdict": "KNOWN", "reached": ["M2"],
             "observations": [_obs("M2", True), _obs("M1", False)],
             "known": {"verdict": V.FAIL, "entries": [1], "reasons": ["r"]}}
    assert _row([known], "M1")["verdict"] == "KNOWN" and _row([known], "M2")["verdict"] == V.PASS
    # a KNOWN ERROR ("cannot judge" the baseline covers) vouches for nothing
    known_err = dict(known, observations=[_obs("M2", True)], known={"verdict": V.ERROR, "entries": [1], "reasons": []})
    assert _row([known_err], "M2")["verdict"] == V.ERROR
    # certification: a claimed MUST clause KNOWN keeps it uncertified though overall is PASS
    rows = [dict(r, claimed=True) for r in V.clause_table(REGISTRY, [known]) if r["verdict"] != "RETIRED"]
    cert = certification(V.PASS, rows, [known])
    assert cert["certified"] is False and any("KNOWN: M1" in r for r in cert["reasons"])


def test_not_reached_names_the_true_reason():
    """A case that stopped at an earlier violation: "fix the first failure"; a case that said why
    it did not check the clause (a profile fact such as max_frame_bytes = 0): that reason."""
    early = {"nodeid": "cases/t.py::early", "clauses": ["M1", "M2"], "verdict": V.FAIL, "reached": ["M1"],
             "observations": [_obs("M1", False)]}
    assert "fix the first failure" in _row([early], "M2")["reason"]
    oversize = {"nodeid": "cases/test_errors.py::test_oversize_frame", "clauses": ["S1"], "verdict": V.INFO,
                "reached": [], "observations": [_obs("S1", False, "info", "not checked: the profile's max_frame_bytes = 0")]}
    row = _row([oversize], "S1")
    assert row["verdict"] == V.NOT_REACHED
    assert "max_frame_bytes = 0" in row["reason"] and "first failure" not in row["reason"]
    quiet = {"nodeid": "cases/t.py::quiet", "clauses": ["S1"], "verdict": V.PASS, "reached": [], "observations": []}
    assert "ran to its end" in _row([quiet], "S1")["reason"]
