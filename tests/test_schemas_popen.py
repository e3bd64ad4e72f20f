"""Self-tests of the P-open schema set, schemas/p-open/ (docs/spec.md §5.1).

The P-open set adds what the published Open Responses schema requires to the OpenAI shapes.
Its vectors carry two verdicts: ``valid`` under P-open and ``valid_openai`` under the OpenAI set
(``null`` where the OpenAI set has no such shape, e.g. the compact-resource definition), so each
difference between the two profiles is pinned in both directions.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from conformance.schemas import P_OPEN, get_schemas, schemas_for
from conformance.target import load_profile

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
ROOT = SCHEMAS / "p-open"
BASE = "https://responses-ws-conformance.dev/schemas/"


def _index() -> dict:
    return json.loads((ROOT / "index.json").read_text(encoding="utf-8"))


def _own_files() -> list[Path]:
    return sorted(p for d in ("defs", "server") for p in (ROOT / d).glob("*.json"))


def _vectors() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((ROOT / "vectors").glob("*.json")):
        for i, v in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            slug = re.sub(r"[^A-Za-z0-9]+", "-", v["description"]).strip("-")[:60]
            out.append((f"{path.stem}#{i}-{slug}", v))
    return out


VECTORS = _vectors()


@pytest.fixture(scope="module")
def P():
    return get_schemas(P_OPEN)


@pytest.fixture(scope="module")
def O():
    return get_schemas()


@pytest.mark.parametrize("path", _own_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_schema_is_valid_draft_2020_12(path: Path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == BASE + path.relative_to(SCHEMAS).as_posix()
    text = path.read_text(encoding="utf-8")
    assert '"additionalProperties": false' not in text and '"unevaluatedProperties": false' not in text


def test_index_lists_own_files_and_every_event():
    index = _index()
    assert index["variant"] == P_OPEN
    assert "openresponses/openresponses@" in index["source"]
    listed = {e["schema"] for e in index["events"].values()} | set(index["defs"].values())
    own = {p.relative_to(ROOT).as_posix() for p in _own_files()}
    assert own <= listed
    for rel in listed:
        assert (ROOT / rel).is_file(), rel
    main = json.loads((SCHEMAS / "index.json").read_text(encoding="utf-8"))
    assert set(index["events"]) == set(main["events"])
    assert index["vectors"] == [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "vectors").glob("*.json"))]


def test_profiles_select_their_schema_set():
    assert schemas_for(load_profile("open-responses")).variant == P_OPEN
    for name in ("openai", "reference", "xai", "openai-2026-02"):
        assert schemas_for(load_profile(name)).variant is None
    assert schemas_for(None).variant is None


def test_every_difference_has_vectors():
    descs = " | ".join(v["description"] for _, v in VECTORS)
    for word in ("presence_penalty", "frequency_penalty", "strict", "without status", "error.type",
                 "without id", "compacted window"):
        assert word in descs, word
    assert any(v["valid"] and v["valid_openai"] is False for _, v in VECTORS)  # valid only under P-open
    assert any(not v["valid"] and v["valid_openai"] for _, v in VECTORS)  # valid only under OpenAI


@pytest.mark.parametrize("vector", [v for _, v in VECTORS], ids=[i for i, _ in VECTORS])
def test_vector(P, O, vector):
    inst = vector["instance"]
    if "def" in vector:
        issues = P.validate_def(vector["def"], inst)
    else:
        issues = P.validate(inst)
        assert P.is_valid(inst) is vector["valid"], issues
        assert P.is_known(vector["event_type"])
    assert (issues == []) is vector["valid"], issues
    if "expect" in vector:
        want = vector["expect"]
        assert any(i.pointer == want["pointer"] and i.rule == want["rule"] for i in issues), issues
    if vector["valid_openai"] is not None:
        assert O.is_valid(inst) is vector["valid_openai"], O.validate(inst)


@pytest.mark.parametrize("vector", [v for _, v in VECTORS if "def" not in v],
                         ids=[i for i, v in VECTORS if "def" not in v])
def test_fast_and_precise_paths_agree(P, vector):
    inst = vector["instance"]
    precise = list(P._precise_validator(P._uri_for(inst)).iter_errors(inst))
    assert P.is_valid(inst) is (not precise)
