"""Self-tests of the allure results (issue 10 item 2): ``--alluredir`` output read as JSON
(no allure command-line tool needed): labels, severity, spec links, parameters, one step per
turn, transcript and frames attachments, the verdict categories, environment.properties; a
planted sentinel key appears in no file; the same under pytest-xdist."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conformance.report import allure as A

# see tests/test_plugin.py: import what the inner runs use before they run
import conformance.server  # noqa: E402,F401
import conformance.monitor  # noqa: E402,F401
import conformance.schemas  # noqa: E402,F401

pytest.importorskip("allure_pytest")

SENTINEL = "sk-allure-SENTINEL-7f3a9c2e51d04b86"
OTHER_SENTINEL = "sk-allure-OTHER-TENANT-c41d9e07a2b3"  # --other-tenant-key, §4.5 item 35a

CASES = '''
import pytest

@pytest.mark.clause("TURN-TEXT", "PREVIOUS-ID-ECHOED")
def test_two_turns(connect, expect):
    conn = connect()
    first = conn.turn(input="hello", store=False, max_output_tokens=200)
    second = conn.turn(input="again", previous_response_id=first.response_id, max_output_tokens=200)
    expect("TURN-TEXT", second.status == "completed", second)

@pytest.mark.clause("WS-SAME-PATH")
def test_must_fail(connect, expect, target):
    connect().turn(input="hi")
    expect("WS-SAME-PATH", False, {"key": target.api_key}, "forced failure, evidence holds the key")

@pytest.mark.clause("ERR-STATUS-PRESENT")
def test_should_fail(expect):
    expect("ERR-STATUS-PRESENT", False, None, "forced should")

@pytest.mark.clause("ZDR-NOTHING-PERSISTED")
def test_unsupported():
    raise RuntimeError("must not run")

@pytest.mark.clause("LANE-FIFO")
def test_error(target):
    from conformance.client import HarnessError
    raise HarnessError("budget exhausted")

@pytest.mark.clause("WS-NO-SSE-FRAMING", "TURN-TEXT")
def test_fail_then_cannot_judge(reference_server_factory, connect):
    from conformance.client import HarnessError
    server, tgt = reference_server_factory(defects=("sse-framing",))
    connect(target=tgt).turn(input="hi")
    raise HarnessError("cannot judge: the response ended too fast")

@pytest.mark.clause("CACHE-MISS-STORE-FALSE")
def test_error_step(connect):
    connect().turn(input="hi", store=False, previous_response_id="resp_conformance_missing_0000")
'''


def _run(pytester: pytest.Pytester, *extra: str, subprocess: bool = False) -> Path:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_allure_demo.py").write_text(CASES)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = run("-p", "no:cacheprovider", "--no-report", "--alluredir", "allure", "--api-key", SENTINEL,
                 "--other-tenant-key", OTHER_SENTINEL, "cases", *extra)
    result.assert_outcomes(passed=3, failed=2, skipped=1, errors=1)
    return pytester.path / "allure"


def _results(root: Path) -> dict[str, dict]:
    out = {}
    for p in root.glob("*-result.json"):
        data = json.loads(p.read_text(encoding="utf-8"))
        out[data["name"]] = data
    return out


def _labels(result: dict, name: str) -> list[str]:
    return [lb["value"] for lb in result["labels"] if lb["name"] == name]


def _check(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for p in files:                                   # the key appears in no allure file
        assert SENTINEL not in p.read_text(encoding="utf-8", errors="replace"), p.name
        assert SENTINEL[-12:] not in p.read_text(encoding="utf-8", errors="replace"), p.name
        assert OTHER_SENTINEL not in p.read_text(encoding="utf-8", errors="replace"), p.name
        assert OTHER_SENTINEL[-12:] not in p.read_text(encoding="utf-8", errors="replace"), p.name
    res = _results(root)
    assert set(res) == {"test_two_turns", "test_must_fail", "test_should_fail", "test_unsupported", "test_error",
                        "test_fail_then_cannot_judge", "test_error_step"}
    assert len(list(root.glob("*-result.json"))) == len(res)          # one result per case

    # one epic, feature and story each: allure's Behaviors tree counts every combination
    for name, r in res.items():
        assert [len(_labels(r, k)) for k in ("epic", "feature", "story", "severity")] == [1, 1, 1, 1], name
    two = res["test_two_turns"]
    assert two["status"] == "passed"
    assert _labels(two, "feature") == ["TURN-TEXT"] and {"TURN-TEXT", "PREVIOUS-ID-ECHOED"} <= set(_labels(two, "tag"))
    assert "§4.3 Event ordering within one response" not in _labels(two, "epic")
    assert _labels(two, "severity") == ["critical"]
    assert all(lk["type"] == "spec" and lk["url"].startswith("docs/spec.md#") for lk in two["links"]) and two["links"]
    params = {p["name"]: p["value"] for p in two["parameters"]}
    assert params["profile"] == "'reference'" and params["target"] == "'embedded reference server'"
    assert re.fullmatch(r"'[0-9a-f]{16}'", params["target fingerprint"])
    steps = two["steps"]
    assert [s["name"].split(":")[0] for s in steps] == ["turn 1", "turn 2"]
    assert "store=false" in steps[0]["name"] and "→ response.completed" in steps[0]["name"]
    assert "previous_response_id=resp_" in steps[1]["name"] and all(s["status"] == "passed" for s in steps)
    step_params = {p["name"]: p["value"] for p in steps[1]["parameters"]}
    assert step_params["outcome"].startswith("response.completed") and step_params["input"] == "again"
    kinds = {a["name"]: a for a in two["attachments"]}
    assert set(kinds) == {"transcript", "frames"}
    frames = json.loads((root / kinds["frames"]["source"]).read_text())
    assert frames[0]["frames"][0]["direction"] == "sent" and "response.create" in frames[0]["frames"][0]["data"]
    assert ">> " in (root / kinds["transcript"]["source"]).read_text()

    fail = res["test_must_fail"]
    assert fail["status"] == "failed" and fail["statusDetails"]["message"].startswith("FAIL: ")
    assert "<redacted" in fail["statusDetails"]["message"] or SENTINEL not in fail["statusDetails"]["message"]
    should = res["test_should_fail"]
    assert should["status"] == "passed" and should["statusDetails"]["message"].startswith("NON-STRICT: ")
    assert _labels(should, "severity") == ["normal"]
    uns = res["test_unsupported"]
    assert uns["status"] == "skipped" and uns["statusDetails"]["message"].startswith("UNSUPPORTED: ")
    err = res["test_error"]
    assert err["status"] == "broken" and err["statusDetails"]["message"].startswith("ERROR: ")
    assert "budget exhausted" in err["statusDetails"]["message"]
    # a FAIL whose case then raised "cannot judge" is failed with its clause's message, not broken
    judged = res["test_fail_then_cannot_judge"]
    assert judged["status"] == "failed", judged["statusDetails"]
    assert judged["statusDetails"]["message"].startswith("FAIL: WS-NO-SSE-FRAMING (MUST): ")
    assert _labels(judged, "feature") == ["WS-NO-SSE-FRAMING"] and "cannot judge" in judged["statusDetails"]["trace"]
    assert fail["statusDetails"]["message"].startswith("FAIL: WS-SAME-PATH (MUST): ")
    # a step names the error code of the error event that answered its create
    step = res["test_error_step"]["steps"][0]
    assert "→ error previous_response_not_found (status 400)" in step["name"], step["name"]
    assert all("error None" not in s["name"] for r in res.values() for s in r.get("steps", []))

    # each result lands in exactly the category of its verdict (allure matches the whole message)
    cats = json.loads((root / "categories.json").read_text())
    assert {c["name"].split(":")[0] for c in cats} >= {"FAIL", "NON-STRICT", "ERROR", "FLAKY", "KNOWN", "STALE"}

    def category(r: dict) -> list[str]:
        msg = (r.get("statusDetails") or {}).get("message", "")
        return [c["name"].split(":")[0] for c in cats
                if r["status"] in c["matchedStatuses"] and re.fullmatch(c["messageRegex"], msg)]
    assert {n: category(r) for n, r in res.items()} == {
        "test_two_turns": [], "test_must_fail": ["FAIL"], "test_should_fail": ["NON-STRICT"],
        "test_unsupported": ["UNSUPPORTED"], "test_error": ["ERROR"], "test_fail_then_cannot_judge": ["FAIL"],
        "test_error_step": []}

    env = dict(line.split("=", 1) for line in (root / "environment.properties").read_text().splitlines())
    assert env["profile"] == "reference" and env["model"] and env["suite.version"]
    assert re.fullmatch(r"[0-9a-f]{16}", env["target.fingerprint"]) and env["target"] == "embedded reference server"
    assert env["target.fingerprint"] == params["target fingerprint"].strip("'")


def test_allure_results(pytester: pytest.Pytester):
    _check(_run(pytester))


def test_allure_results_under_xdist(pytester: pytest.Pytester):
    pytest.importorskip("xdist")
    _check(_run(pytester, "-n", "2", subprocess=True))


GATEWAY_CASE = '''
import pytest

@pytest.mark.clause("TURN-TEXT")
def test_one_turn(connect, expect):
    turn = connect().turn(input="hello", max_output_tokens=200)
    expect("TURN-TEXT", turn.status == "completed", turn)
'''
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("gateway, status", [("examples/gateway_relay.py", "passed"),
                                             ("tests/clients/broken_gateway.py key-in-url", "failed")])
def test_the_sandwich_upstream_case_is_an_allure_result_like_the_others(pytester: pytest.Pytester, gateway, status,
                                                                         monkeypatch):
    """The controller builds the gateway's upstream case with no pytest item: it is written to
    the allure results all the same, with its clauses as steps and the key nowhere."""
    # the subprocess runs in pytester's folder: this checkout's package, not an installed one
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    pytester.mkdir("cases")
    (pytester.path / "cases" / "test_gateway_demo.py").write_text(GATEWAY_CASE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "--no-report", "--alluredir", "allure", "cases",
        "--gateway-command", f"python {ROOT / gateway}", "--target-config", str(ROOT / "examples/gateway_relay.toml"),
        timeout=120)
    root = pytester.path / "allure"
    for path in root.rglob("*"):
        assert "sk-conformance-gateway-" not in path.read_text(errors="replace"), path.name
    res = _results(root)
    assert set(res) == {"test_one_turn", "test_gateway_upstream_client_clauses"}, result.stdout.str()[-2000:]
    upstream = res["test_gateway_upstream_client_clauses"]
    assert upstream["status"] == status and upstream["fullName"] == "cases.gateway.upstream#test_gateway_upstream_client_clauses"
    for kind in ("epic", "feature", "story", "severity"):
        assert len(_labels(upstream, kind)) == 1, kind
    assert "CLIENT-CONTINUES-CHAIN" in _labels(upstream, "tag") and _labels(upstream, "severity") == ["critical"]
    assert all(link["type"] == "spec" for link in upstream["links"]) and upstream["links"]
    params = {p["name"]: p["value"] for p in upstream["parameters"]}
    assert params["profile"] == "'gateway-relay'"
    steps = {s["name"].split(":")[0]: s["status"] for s in upstream["steps"]}
    assert steps["CLIENT-KEY-IN-HEADER"] == status and steps["CLIENT-TEXT-JSON-FRAMES"] == "passed"
    if status == "failed":
        assert upstream["statusDetails"]["message"].startswith("FAIL: CLIENT-KEY-IN-HEADER (MUST): ")
        (attachment,) = upstream["attachments"]
        assert attachment["name"] == "transcript" and (root / attachment["source"]).is_file()
    else:
        assert "statusDetails" not in upstream and "attachments" not in upstream


def test_spec_links_and_areas():
    assert A.spec_section("§4.3 item 14 [S1]") == "4.3" and A.spec_section("§2.4, §6 question 7") == "2.4"
    assert A.spec_section("no section") is None
    assert A.spec_anchor("4.3") == "43-event-ordering-within-one-response-same-rules-as-http-streaming"
    assert A.spec_anchor("3.10") == "310-the-websocket-error-event-responsewserror"
    assert A.spec_area("3.10") == "§3.10 The WebSocket error event"
    assert A.spec_area("6") == "§6 Open questions"


def test_spec_anchors_exist_in_docs_spec():
    spec = Path(__file__).resolve().parent.parent / "docs" / "spec.md"
    if not spec.is_file():
        pytest.skip("docs/spec.md is not in this checkout yet")
    headings = {re.sub(r"[^a-z0-9 _-]", "", ln.lstrip("#").strip().lower()).replace(" ", "-")
                for ln in spec.read_text(encoding="utf-8").splitlines() if ln.startswith("#")}
    from conformance import verdicts as V
    reg = V.ClauseRegistry.load(V.default_clauses_path())
    missing = {A.spec_anchor(s) for c in reg if (s := A.spec_section(c.source))} - headings
    assert not missing, f"docs/spec.md has no heading for {sorted(missing)}"


def test_lanes_and_steering_are_areas_of_their_own():
    from conformance import verdicts as V
    from conformance.report.allure import clause_area

    registry = V.ClauseRegistry.load(V.default_clauses_path())
    areas = {c.id: clause_area(c) for c in registry}
    # lane clauses from four spec sections share one area; the default lane's rule stays in §4.3
    assert {areas[i] for i in ("CREATE-INVALID-STREAM-ID", "LANE-TAGGED", "LANE-FIFO", "LANE-FORK",
                               "LANE-FORK-FAILURE-KEEPS-PARENT")} == {"Lanes (stream_id, P-lanes)"}
    assert areas["LANE-DEFAULT-UNTAGGED"].startswith("§4.3 ")
    assert {a for i, a in areas.items() if i.startswith("STEER-")} == {"§4.9 Steering"}
    assert areas["QUEUE-FIFO"] == "§4.4 Concurrency and queueing"


def test_step_outcome_names_the_error_code():
    nested = {"type": "error", "status": 400, "error": {"type": "invalid_request_error", "code": "x_code"}}
    assert A.error_outcome(nested) == "error x_code (status 400)"
    assert A.error_outcome({"type": "error", "code": "flat_code", "message": "m"}) == "error flat_code (no status)"
    no_code = {"type": "error", "status": 500, "error": {"type": "server_error", "code": None}}
    assert A.error_outcome(no_code) == "error without code (type server_error) (status 500)"
    assert A.error_outcome({"type": "error", "error": "text"}) == "error without code (no status)"
    assert "None" not in A.turn_step(1, type("RS", (), {"create": {}, "error": no_code})()).title
