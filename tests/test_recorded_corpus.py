"""Integrity of the corpus of real recorded api.openai.com streams (tests/data/recorded/).

The corpus is regression data for the monitor (issue 8 item 10): recorded HTTP SSE streams
from public test fixtures of other projects, whose event payloads are the WebSocket payloads
(§3.2 in docs/spec.md). These tests check only that the data is what the README says it is:
enough streams, each with its provenance, each one whole response (``response.created``
first, one terminal event last, sequence numbers 0, 1, 2 ... with nothing cut out), no
credentials, and a README row per file. Then the monitor: each stream, replayed with the real
schemas under the ``openai`` profile's leniencies, gives no violation but the one finding the
README documents as production's real deviation for that stream (``EXPECTED`` below).
bench/corpus_report.py prints the findings per stream.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conformance.monitor import EXTENSION, VIOLATION, StreamMonitor
from conformance.schemas import get_schemas
from conformance.target import load_profile

CORPUS = Path(__file__).resolve().parent / "data" / "recorded"
FILES = sorted(CORPUS.glob("*.json"))
TERMINAL = {"response.completed", "response.failed", "response.incomplete"}
# an OpenAI key standing alone (not inside a base64 blob such as encrypted_content), a bearer
# token, or an api-key field
SECRET = re.compile(r"(?<![A-Za-z0-9_+/=-])sk-[A-Za-z0-9_-]{16,}|[Bb]earer\s+[A-Za-z0-9._~+/-]{12,}"
                    r"|\"api[_-]?key\"", re.I)
DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_enough_streams():
    assert len(FILES) >= 20, f"only {len(FILES)} recorded streams in {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_provenance(path):
    doc = _load(path)
    src = doc.get("source")
    assert isinstance(src, dict), "no source object"
    for key in ("repo", "path", "commit", "url"):
        assert isinstance(src.get(key), str) and src[key], f"source.{key} missing"
    assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]), "source.commit is not a full hash"
    assert src["url"].startswith(f"https://github.com/{src['repo']}/"), src["url"]
    assert isinstance(doc.get("recorded"), str) and DATE.match(doc["recorded"]), doc.get("recorded")
    assert isinstance(doc.get("model"), str) and doc["model"]
    assert doc.get("transport") == "sse"
    assert isinstance(doc.get("features"), list) and all(isinstance(f, str) for f in doc["features"])


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_one_whole_response(path):
    events = _load(path).get("events")
    assert isinstance(events, list) and events, "no events"
    for i, ev in enumerate(events):
        assert isinstance(ev, dict) and isinstance(ev.get("type"), str), f"event {i} has no string type"
        assert type(ev.get("sequence_number")) is int, f"event {i} ({ev['type']}) has no sequence_number"
    assert [ev["sequence_number"] for ev in events] == list(range(len(events))), \
        "sequence numbers are not 0, 1, 2 ...: the recording was cut or edited"
    assert events[0]["type"] == "response.created"
    terminals = [i for i, ev in enumerate(events) if ev["type"] in TERMINAL]
    assert terminals == [len(events) - 1], f"terminal events at {terminals} of {len(events)}"
    assert "[DONE]" not in {ev["type"] for ev in events}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_no_credentials(path):
    m = SECRET.search(path.read_text(encoding="utf-8"))
    assert m is None, f"credential-like text at offset {m.start()}"


def test_readme_lists_every_stream():
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)\.json` \|", readme, re.M))
    assert listed == {p.stem for p in FILES}


# production's documented deviations (tests/data/recorded/README.md, "What the monitor says"):
# stream -> the violation findings it gives, one each. Every stream with a
# function_call_arguments.done without name gives FC-DONE-NAME (SHOULD) besides; see _expected.
EXPECTED = {
    "dotnet-extensions_reasoning-o4-mini": {"STREAM-DELTAS-ADD-UP"},  # summary deltas lack the closing **
    "prism_text-gpt-4": {"SCHEMA-SERVER-EVENT"},  # output_text.delta/.done without logprobs (2025-06)
    "pydantic-ai_mcp-three-servers": {"STREAM-ITEM-DONE-BEFORE-TERMINAL"},  # §4.3 item 16b
}
# unknown event types (extensions, never violations)
EXTENSIONS = {
    "vercel-ai_apply-patch": {"response.apply_patch_call_operation_diff.delta",
                              "response.apply_patch_call_operation_diff.done"},
}


def _expected(stem: str, events: list) -> set:
    want = set(EXPECTED.get(stem, ()))
    if any(ev["type"] == "response.function_call_arguments.done" and "name" not in ev for ev in events):
        want.add("FC-DONE-NAME")
    return want


def _replay(events: list) -> StreamMonitor:
    created = events[0].get("response") or {}
    mon = StreamMonitor(get_schemas(), **load_profile("openai").monitor_options())
    create = {"type": "response.create", "model": created.get("model") or "unknown", "input": "(recorded)"}
    if created.get("background"):
        create["background"] = True
    mon.sent(create)
    for ev in events:
        mon.feed(json.dumps(ev))
    mon.finish()
    assert not mon.internal_errors, mon.internal_errors
    return mon


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_monitor_accepts_production(path):
    events = _load(path)["events"]
    mon = _replay(events)
    got = [f.clause for f in mon.findings if f.kind == VIOLATION]
    want = _expected(path.stem, events)
    assert sorted(got) == sorted(want), [(f.clause, f.message) for f in mon.findings if f.kind == VIOLATION]
    ext = {f.message.split("'")[1] for f in mon.findings if f.kind == EXTENSION and f.pointer == "/type"}
    assert ext == EXTENSIONS.get(path.stem, set())
    assert [rs.state for rs in mon.requests] == ["done"], "the stream is not one whole response"


def test_readme_counts_the_streams_checked():
    readme = (CORPUS.parent.parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"checked against {len(FILES)} real" in readme.replace("\n", " "), \
        "README.md must say how many real streams the monitor is checked against"
