"""Self-tests of schemas/ and conformance.schemas (spec §2, §3 of docs/spec.md)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conformance.schemas import ENV_VAR, SchemaIssue, SchemaSet, get_schemas, schemas_dir

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "tests" / "data" / "examples"
SPEC_MD = REPO / "docs" / "spec.md"
BASE = "https://responses-ws-conformance.dev/schemas/"

# spec §3.4, transcribed: 58 shared streaming events, 4 WebSocket-only, 2 beta.
SHARED_EVENTS = [
    "response.queued", "response.created", "response.in_progress", "response.completed",
    "response.failed", "response.incomplete", "response.output_item.added",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done",
    "response.output_text.annotation.added", "response.refusal.delta", "response.refusal.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
    "response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
    "response.reasoning_text.delta", "response.reasoning_text.done",
    "response.web_search_call.in_progress", "response.web_search_call.searching",
    "response.web_search_call.completed", "response.file_search_call.in_progress",
    "response.file_search_call.searching", "response.file_search_call.completed",
    "response.code_interpreter_call.in_progress", "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed", "response.code_interpreter_call_code.delta",
    "response.code_interpreter_call_code.done", "response.image_generation_call.in_progress",
    "response.image_generation_call.generating", "response.image_generation_call.partial_image",
    "response.image_generation_call.completed", "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done", "response.mcp_call.in_progress",
    "response.mcp_call.completed", "response.mcp_call.failed",
    "response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
    "response.mcp_list_tools.failed", "response.shell_call_command.added",
    "response.shell_call_command.delta", "response.shell_call_command.done",
    "response.shell_call_output_content.delta", "response.shell_call_output_content.done",
    "response.audio.delta", "response.audio.done", "response.audio.transcript.delta",
    "response.audio.transcript.done", "response.compaction.compacting",
]
WS_ONLY_EVENTS = ["error", "response.steer.accepted", "response.steer.pending", "response.steer.failed"]
BETA_EVENTS = ["response.inject.created", "response.inject.failed"]
CLIENT_EVENTS = {"response.create": "websocket", "response.steer": "websocket", "response.inject": "beta"}


@pytest.fixture(scope="module")
def S() -> SchemaSet:
    return get_schemas()


def _index() -> dict:
    return json.loads((SCHEMAS / "index.json").read_text(encoding="utf-8"))


def _schema_files() -> list[Path]:
    return sorted(p for d in ("client", "server", "defs") for p in (SCHEMAS / d).glob("*.json"))


def _vectors() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((SCHEMAS / "vectors").rglob("*.json")):
        rel = path.relative_to(SCHEMAS / "vectors").with_suffix("").as_posix()
        for i, v in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            slug = re.sub(r"[^A-Za-z0-9]+", "-", v["description"]).strip("-")[:60]
            out.append((f"{rel}#{i}-{slug}", v))
    return out


VECTORS = _vectors()


# -- the schema files ------------------------------------------------------------------------


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.relative_to(SCHEMAS).as_posix())
def test_schema_is_valid_draft_2020_12(path: Path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE + path.relative_to(SCHEMAS).as_posix()


def test_index_lists_every_schema_file_and_nothing_else():
    index = _index()
    assert index["version"] == 1
    listed = {e["schema"] for e in index["events"].values()} | set(index["defs"].values())
    on_disk = {p.relative_to(SCHEMAS).as_posix() for p in _schema_files()}
    assert listed == on_disk
    for t, e in index["events"].items():
        assert e["direction"] in ("client", "server")
        assert e["surface"] in ("shared", "websocket", "beta")
        assert e["schema"] == f"{e['direction']}/{t}.json"
        schema = json.loads((SCHEMAS / e["schema"]).read_text(encoding="utf-8"))
        assert schema["title"] == t
    for name, rel in index["defs"].items():
        assert rel == f"defs/{name}.json"
    assert sorted(index["vectors"]) == sorted(
        p.relative_to(SCHEMAS).as_posix() for p in (SCHEMAS / "vectors").rglob("*.json"))


def test_no_closed_objects():
    """Extension tolerance: no schema forbids unknown fields."""
    for path in _schema_files():
        assert '"additionalProperties": false' not in path.read_text(encoding="utf-8"), path
        assert '"unevaluatedProperties": false' not in path.read_text(encoding="utf-8"), path


def test_generated_files_are_up_to_date():
    proc = subprocess.run([sys.executable, str(SCHEMAS / "tools" / "build.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- coverage of spec §3.4 -------------------------------------------------------------------


def test_transcribed_event_list_has_the_spec_counts():
    assert len(SHARED_EVENTS) == len(set(SHARED_EVENTS)) == 58
    assert len(WS_ONLY_EVENTS) == 4 and len(BETA_EVENTS) == 2


def _spec_section_3_4() -> str:
    text = SPEC_MD.read_text(encoding="utf-8")
    m = re.search(r"^### 3\.4 .*?$(.*?)^### 3\.5 ", text, re.S | re.M)
    assert m, "spec §3.4 not found"
    return m.group(1)


def test_transcribed_list_matches_spec_markdown():
    section = _spec_section_3_4()
    shared_part, _, rest = section.partition("WebSocket-only:")
    shared_part = shared_part.split("):", 1)[1]  # drop the heading "Shared (58 incl. `...`):"
    ws_part, _, rest = rest.partition("beta-only:")
    beta_part = rest.split("Seen in the wild")[0]
    ticked = lambda s: re.findall(r"`([a-z_.]+)`", s)  # noqa: E731
    assert ticked(shared_part) == SHARED_EVENTS
    assert ticked(ws_part) == WS_ONLY_EVENTS
    assert ticked(beta_part) == BETA_EVENTS


@pytest.mark.parametrize("event_type", SHARED_EVENTS + WS_ONLY_EVENTS + BETA_EVENTS + list(CLIENT_EVENTS))
def test_every_event_type_has_a_schema_and_vectors(S, event_type):
    assert S.is_known(event_type)
    if event_type in CLIENT_EVENTS:
        assert S.direction(event_type) == "client"
        assert S.surface(event_type) == CLIENT_EVENTS[event_type]
    else:
        assert S.direction(event_type) == "server"
        expected_surface = "shared" if event_type in SHARED_EVENTS else "websocket" if event_type in WS_ONLY_EVENTS else "beta"
        assert S.surface(event_type) == expected_surface
    mine = [v for _, v in VECTORS if v["event_type"] == event_type]
    assert any(v["valid"] for v in mine), "no valid vector"
    invalid = [v for v in mine if not v["valid"]]
    assert invalid, "no invalid vector"
    # an invalid vector must break a structural rule, not just carry an odd value
    assert any(v.get("expect", {}).get("rule") in ("required", "type") for v in invalid)


def test_no_schema_without_a_spec_event(S):
    assert set(S.event_types("server")) == set(SHARED_EVENTS + WS_ONLY_EVENTS + BETA_EVENTS)
    assert set(S.event_types("client")) == set(CLIENT_EVENTS)
    assert S.event_types() == sorted(S.event_types("server") + S.event_types("client"))


# -- vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [v for _, v in VECTORS], ids=[i for i, _ in VECTORS])
def test_vector(S, vector):
    inst = vector["instance"]
    if "def" in vector:  # a control event: an extension in a stream, its known fields in a definition
        assert S.is_valid(inst) and not S.is_known(vector["event_type"])
        issues = S.validate_def(vector["def"], inst)
    else:
        issues = S.validate(inst)
        assert S.is_valid(inst) is vector["valid"], issues
    assert (issues == []) is vector["valid"], issues
    if vector.get("extension"):
        assert not S.is_known(inst["type"])
    elif vector["event_type"] is not None:
        assert S.is_known(vector["event_type"])
        assert inst.get("type", vector["event_type"]) == vector["event_type"]
    if "expect" in vector:
        want = vector["expect"]
        assert any(i.pointer == want["pointer"] and i.rule == want["rule"] for i in issues), issues


@pytest.mark.parametrize("vector", [v for _, v in VECTORS], ids=[i for i, _ in VECTORS])
def test_fast_and_precise_paths_agree(S, vector):
    inst = vector["instance"]
    if "def" in vector:
        precise = list(S._precise_validator(S._defs[vector["def"]]).iter_errors(inst))
        assert S._def_fast[vector["def"]](inst) is (not precise)
        return
    precise = list(S._precise_validator(S._uri_for(inst)).iter_errors(inst))
    if isinstance(inst, dict) and isinstance(inst.get("type"), str) and not S.is_known(inst["type"]):
        assert S.is_valid(inst) and not precise  # extension: only the envelope applies
    else:
        assert S.is_valid(inst) is (not precise)


# -- the constructed examples of tests/data/examples -----------------------------------------------


def _example_messages() -> list[tuple[str, str, dict]]:
    out = []
    for path in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "frames" in doc:
            for i, frame in enumerate(doc["frames"]):
                direction = {"client_to_server": "client", "server_to_client": "server"}[frame["direction"]]
                out.append((f"{path.stem}#{i}-{frame['message']['type']}", direction, frame["message"]))
        else:
            out.append((path.stem, "server", doc))
    return out


EXAMPLE_MESSAGES = _example_messages()


@pytest.mark.parametrize("name,direction,message", EXAMPLE_MESSAGES, ids=[n for n, _, _ in EXAMPLE_MESSAGES])
def test_example_frame(S, name, direction, message):
    assert S.is_known(message["type"]), "examples use only spec event types"
    assert S.direction(message["type"]) == direction
    issues = S.validate(message)
    if name == "error-legacy-flat-shape":
        assert not S.is_valid(message)
        assert [i.rule for i in issues] == ["required"]
        assert issues[0].pointer == "/error" and "'error'" in issues[0].message
        assert S.validate_def("ws-error", message) == issues
    else:
        assert issues == []
        assert S.is_valid(message)


def test_examples_were_found():
    assert len(EXAMPLE_MESSAGES) > 50
    assert any(n == "error-legacy-flat-shape" for n, _, _ in EXAMPLE_MESSAGES)


def test_example_responses_validate_as_definitions(S):
    responses = [m["response"] for _, _, m in EXAMPLE_MESSAGES if "response" in m and isinstance(m["response"], dict)]
    assert responses
    for r in responses:
        assert S.validate_def("response", r) == []
        if r.get("usage"):
            assert S.validate_def("usage", r["usage"]) == []
        for item in r["output"]:
            assert S.validate_def("output-item", item) == []


# -- API behaviour ---------------------------------------------------------------------------


def test_unknown_type_is_an_extension(S):
    event = {"type": "response.done", "whatever": 1}
    assert not S.is_known("response.done")
    assert S.direction("response.done") is None
    assert S.is_valid(event) and S.validate(event) == []


@pytest.mark.parametrize("instance", [None, 5, "error", [], {}, {"type": None}, {"type": ["error"]}, {"type": {"a": 1}}])
def test_non_events_are_invalid(S, instance):
    assert S.is_valid(instance) is False
    issues = S.validate(instance)
    assert issues and all(isinstance(i, SchemaIssue) for i in issues)


def test_validate_def(S):
    usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1,
             "output_tokens_details": {"reasoning_tokens": 0}}
    assert S.validate_def("usage", usage) == [SchemaIssue("/total_tokens", "required", "required property 'total_tokens' is missing")]
    assert S.validate_def("usage", dict(usage, total_tokens=2)) == []
    with pytest.raises(KeyError):
        S.validate_def("no-such-def", {})
    assert {"response", "usage", "output-item", "ws-error", "event"} <= set(S.def_names())


def test_issue_messages_stay_short(S):
    event = {"type": "response.completed", "sequence_number": 1, "response": ["x" * 10000] * 100}
    (issue,) = S.validate(event)
    assert issue.pointer == "/response" and issue.rule == "type" and len(issue.message) < 300
    assert str(issue).startswith("/response: ")


def test_get_schemas_is_cached(S):
    assert get_schemas() is S


def test_schemas_dir_env_override(monkeypatch, tmp_path):
    assert schemas_dir().resolve() == SCHEMAS.resolve()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert schemas_dir() == tmp_path


def test_env_override_loads_another_copy(monkeypatch, tmp_path):
    import shutil

    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    # a stricter copy: deltas must not be empty
    path = copy / "server" / "response.output_text.delta.json"
    doc = json.loads(path.read_text())
    doc["properties"]["delta"]["minLength"] = 1
    path.write_text(json.dumps(doc))
    monkeypatch.setenv(ENV_VAR, str(copy))
    other = get_schemas()
    assert other is not get_schemas.__globals__["_CACHE"].get(None)
    event = {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "m", "output_index": 0,
             "content_index": 0, "delta": "", "logprobs": []}
    assert not other.is_valid(event)
    monkeypatch.delenv(ENV_VAR)
    assert get_schemas().is_valid(event)


def test_vector_descriptions_are_unique_per_file():
    for path in (SCHEMAS / "vectors").rglob("*.json"):
        descriptions = [v["description"] for v in json.loads(path.read_text(encoding="utf-8"))]
        assert len(descriptions) == len(set(descriptions)), path
