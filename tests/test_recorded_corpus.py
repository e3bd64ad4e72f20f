"""Integrity of the corpus of real recorded api.openai.com streams (tests/data/recorded/).

The corpus is regression data for the monitor (issue 8 item 10): recorded HTTP SSE streams
from public test fixtures of other projects, whose event payloads are the WebSocket payloads
(§3.2 in docs/spec.md). These tests check only that the data is what the README says it is:
enough streams, each with its provenance, each one whole response (``response.created``
first, one terminal event last, sequence numbers 0, 1, 2 ... with nothing cut out), no
credentials, and a README row per file. What the monitor says about them is measured by
bench/corpus_report.py.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
