"""The reference server under ``--profile open-responses`` meets the published Open Responses
schema (docs/spec.md §5.1): every frame and HTTP body it sends validates against the P-open
schema set (schemas/p-open/), and a full suite run against it finds no schema violation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from srv_helpers import KEY_A, MODEL, WEATHER_TOOL, WS

from conformance.schemas import P_OPEN, get_schemas

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
COMPACT_PROFILE = REPO / "tests" / "data" / "profiles" / "open-responses-compact.toml"
NO_STRICT_TOOL = {k: v for k, v in WEATHER_TOOL.items() if k not in ("strict", "description")}


@pytest.fixture(scope="module")
def P():
    return get_schemas(P_OPEN)


@pytest.fixture()
def popen(make_server):
    return make_server(profile="open-responses")


def _http(srv, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(srv.base_url + path, method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _all_issues(P, events: list[dict]) -> list[str]:
    return [f"{e.get('type')}: {i}" for e in events for i in P.validate(e)]


def test_every_frame_of_text_tool_and_error_turns_validates(P, popen):
    with WS(popen.ws_url) as ws:
        turns = [
            ws.turn(input="hi", store=False),
            ws.turn(input="Weather in Paris?", store=False, tools=[NO_STRICT_TOOL],
                    tool_choice={"type": "function", "name": WEATHER_TOOL["name"]}),
            ws.turn(input="hi", store=False, reasoning={"summary": "auto"}, max_output_tokens=16),
            ws.turn(input="hi", previous_response_id="resp_unknown_0000"),
            ws.turn(input=[{"type": "function_call_output", "call_id": "call_orphan", "output": "{}"}]),
        ]
    events = [e for t in turns for e in t.events]
    assert any(e["type"] == "error" for e in events) and any(e["type"] == "response.completed" for e in events)
    assert _all_issues(P, events) == []
    tools = turns[1].response["tools"]
    assert tools[0]["strict"] is True and tools[0]["description"] is None  # filled in as echoed
    assert {"presence_penalty", "frequency_penalty"} <= set(turns[0].response)


def test_http_bodies_validate(P, popen):
    status, body = _http(popen, "/responses", {"model": MODEL, "input": "hi", "store": False,
                                               "tools": [NO_STRICT_TOOL]})
    assert status == 200 and P.validate_def("response", body) == []
    status, body = _http(popen, "/responses/compact", {"model": MODEL, "input": [
        {"role": "user", "content": "keep KIWI-7342"}, {"role": "assistant", "content": "noted"}]})
    assert status == 200 and P.validate_def("compact-resource", body) == []
    kept = body["output"][0]
    assert kept["id"].startswith("msg_") and kept["status"] == "completed"
    assert kept["content"] == [{"type": "input_text", "text": "keep KIWI-7342"}]


def test_defects_break_the_published_schema(P, make_server):
    """Each P-open defect makes the server's output invalid under P-open and only there."""
    O = get_schemas()
    srv = make_server(profile="open-responses", defects=("response-without-penalty", "tools-echo-without-strict",
                                                         "compact-items-as-given"))
    with WS(srv.ws_url) as ws:
        t = ws.turn(input="hi", store=False, tools=[NO_STRICT_TOOL])
    assert any("presence_penalty" in i for i in _all_issues(P, t.events))
    assert any("strict" in i for i in _all_issues(P, t.events))
    assert all(O.is_valid(e) for e in t.events)
    _, body = _http(srv, "/responses/compact", {"model": MODEL, "input": "keep KIWI-7342"})
    assert P.validate_def("compact-resource", body) != []


def test_full_suite_run_finds_no_schema_violation(tmp_path):
    """A full run of cases/ under P-open (with the compact endpoint claimed) validates every frame
    through the monitor and the compact body in COMPACT-ENDPOINT-SHAPE: all of them pass."""
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "cases"), "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "--target-config", str(COMPACT_PROFILE), "--report-dir", str(report)],
                          cwd=REPO, capture_output=True, text=True, timeout=110)
    cert = json.loads((report / "certificate.json").read_text())
    assert cert["spec_profiles"] == [P_OPEN]
    clauses = {c["id"]: c for c in cert["clauses"]}
    for cid in ("SCHEMA-SERVER-EVENT", "ERR-ENVELOPE", "COMPACT-ENDPOINT-SHAPE"):
        assert clauses[cid]["verdict"] == "PASS" and clauses[cid]["cases"], (cid, clauses[cid], proc.stdout[-2000:])
    assert proc.returncode == 0, proc.stdout[-3000:]
