"""Self-tests of the type dispatch trees in schemas/defs and schemas/p-open/defs (schemas/README.md,
"Type dispatch"; spec §3.1 extension tolerance, §3.8 items, parts and annotations).

A shape that depends on `type` dispatches on it with a tree of if/then/else that stands for a flat
``allOf`` of one ``if {required [type], type const X} then X`` per type (the form the defs had before;
the tree is cheaper to evaluate). These tests find every tree, check its shape, rebuild the flat
form from its leaves, and validate a generated mix of instances (every type found in the vectors
and examples, mutated: `type` removed, swapped for every other listed name or an unknown one,
fields removed or retyped, nested types broken, non-objects) with a schema set that has the trees
and one that has the flat forms: the verdicts and the issues (pointer, rule, message) must be the
same.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from conformance.schemas import SchemaSet

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "tests" / "data" / "examples"
# the directory (under schemas/) of each schema set
SETS = {"openai": ".", "p-open": "p-open"}
UNKNOWN_TYPES = ["x_unknown_type", "", 7, None]
RETYPED = [None, 0, -1, "s", True, [], {}, [{}]]
NON_OBJECTS = ["x", None, [], 3, True]
SEEDS_PER_NAME = 2
# named defs that reach a tree through another file: validated too, in that set
ALSO = {("defs/output-item.json", ""): [("p-open", "output-item")],
        ("p-open/defs/item.json", ""): [("p-open", "output-item")],
        ("defs/input-item.json", "/then"): [("openai", "input-item")]}


# -- the trees and their flat form -----------------------------------------------------------------

def _type_test(schema) -> list | None:
    """The names a dispatch test matches (`if` of a tree node), or None when it is not one."""
    if not isinstance(schema, dict) or set(schema) - {"required", "properties"} \
            or schema.get("required", ["type"]) != ["type"]:
        return None
    prop = schema.get("properties")
    if not isinstance(prop, dict) or list(prop) != ["type"] or len(prop["type"]) != 1:
        return None
    t = prop["type"]
    return [t["const"]] if "const" in t else list(t["enum"]) if "enum" in t else None


def _is_tree(schema) -> bool:
    return isinstance(schema, dict) and "else" in schema and _type_test(schema.get("if")) is not None


def _is_node(schema) -> bool:
    return isinstance(schema, dict) and "then" in schema and _type_test(schema.get("if")) is not None


def _is_leaf(node: dict) -> bool:
    """A leaf's `then` is a branch's constraints; an inner node's `then` is another node."""
    return not _is_node(node["then"])


def _leaves(node: dict) -> list[dict]:
    """The flat allOf branches a tree stands for, in order."""
    out = [{"if": node["if"], "then": node["then"]}] if _is_leaf(node) else _leaves(node["then"])
    return out + (_leaves(node["else"]) if "else" in node else [])


def _names(node: dict) -> list:
    return [n for leaf in _leaves(node) for n in _type_test(leaf["if"])]


def _flatten(schema):
    """The document with every tree replaced by the flat allOf it stands for."""
    if isinstance(schema, list):
        return [_flatten(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    if _is_tree(schema):
        out = {k: _flatten(v) for k, v in schema.items() if k not in ("if", "then", "else", "$comment")}
        assert "allOf" not in out, "a tree's owner has its own allOf; flattening would overwrite it"
        out["allOf"] = _leaves(schema)
        return out
    return {k: _flatten(v) for k, v in schema.items()}


def _trees(schema, pointer: str = "") -> list[tuple[str, dict]]:
    if isinstance(schema, list):
        return [t for i, v in enumerate(schema) for t in _trees(v, f"{pointer}/{i}")]
    if not isinstance(schema, dict):
        return []
    here = [(pointer, schema)] if _is_tree(schema) else []
    skip = ("if", "then", "else") if here else ()
    return here + [t for k, v in schema.items() if k not in skip for t in _trees(v, f"{pointer}/{k}")]


def _def_files() -> list[str]:
    return sorted(p.relative_to(SCHEMAS).as_posix()
                  for d in SETS.values() for p in (SCHEMAS / d / "defs").glob("*.json"))


def _load(rel: str) -> dict:
    return json.loads((SCHEMAS / rel).read_text(encoding="utf-8"))


TREES = [(rel, ptr, node) for rel in _def_files() for ptr, node in _trees(_load(rel))]
TREE_IDS = [f"{rel}#{ptr}" for rel, ptr, _ in TREES]


def test_trees_are_found():
    """The unions that made the per-frame check costly are trees (a refactoring that flattened
    them back would make the equivalence tests below vacuous)."""
    found = {(rel, ptr) for rel, ptr, _ in TREES}
    assert {("defs/output-item.json", ""), ("defs/content-part.json", ""), ("defs/annotation.json", ""),
            ("defs/input-item.json", "/then"), ("defs/tool.json", ""), ("defs/tool.json", "/$defs/tool_choice/else"),
            ("defs/steer.json", "/$defs/required_input"), ("p-open/defs/item.json", "")} <= found


@pytest.mark.parametrize("rel,pointer,node", TREES, ids=TREE_IDS)
def test_tree_shape(rel, pointer, node):
    """Leaves are whole former branches; an inner node's enum lists exactly the names below its
    `then` and none below its `else`; no name has two leaves."""
    names = _names(node)
    assert len(names) == len(set(names)), f"a name has two leaves: {names}"

    def check(n: dict, where: str) -> None:
        if _is_leaf(n):
            assert set(n["if"]) == {"required", "properties"}, f"{where}: a leaf keeps the branch's whole `if`"
            ref, leaf_names = n["then"].get("$ref"), _type_test(n["if"])
            if ref is not None and len(leaf_names) == 1:  # the defs name their shapes after the type
                assert ref.endswith(f"/$defs/{leaf_names[0]}"), f"{where}: type {leaf_names[0]!r} leads to {ref}"
        else:
            below = set(_names(n["then"]))
            assert set(_type_test(n["if"])) == below, f"{where}: routes {_type_test(n['if'])}, leaves below {sorted(below)}"
            assert "else" in n, f"{where}: a routing node without else drops the names it does not list"
            check(n["then"], where + "/then")
        if "else" in n:
            assert not set(_names(n["else"])) & set(_type_test(n["if"])), f"{where}: a name on both sides"
            check(n["else"], where + "/else")

    check(node, f"{rel}#{pointer}")


# -- the two schema sets ---------------------------------------------------------------------------

def _probe_name(rel: str, pointer: str) -> str:
    return "_dispatch." + (rel.removeprefix("p-open/").removeprefix("defs/").removesuffix(".json") + pointer).replace("/", ".")


def _set_of(rel: str) -> str:
    return "p-open" if rel.startswith("p-open/") else "openai"


def _write_copy(dest: Path, flat: bool) -> dict[str, SchemaSet]:
    shutil.copytree(SCHEMAS, dest)
    if flat:
        for rel in _def_files():
            doc = _load(rel)
            if _trees(doc):
                (dest / rel).write_text(json.dumps(_flatten(doc), indent=2), encoding="utf-8")
    # one extra def per tree: its owner schema, validated on its own
    for rel, pointer, _ in TREES:
        set_dir = dest / SETS[_set_of(rel)]
        name = _probe_name(rel, pointer)
        target = _load(rel)["$id"] + (f"#{pointer}" if pointer else "")
        probe = {"$id": f"https://responses-ws-conformance.dev/schemas/probe/{name}.json", "$ref": target}
        (set_dir / "defs" / f"{name}.json").write_text(json.dumps(probe), encoding="utf-8")
        index_path = set_dir / "index.json"
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index["defs"][name] = f"defs/{name}.json"
        index_path.write_text(json.dumps(index), encoding="utf-8")
    return {key: SchemaSet(dest / d) for key, d in SETS.items()}


@pytest.fixture(scope="module")
def tree_and_flat(tmp_path_factory):
    base = tmp_path_factory.mktemp("dispatch")
    return _write_copy(base / "tree", flat=False), _write_copy(base / "flat", flat=True)


def test_flat_copy_has_no_trees(tree_and_flat):
    _, flat = tree_and_flat
    root = flat["openai"].root
    assert not [rel for rel in _def_files() if _trees(json.loads((root / rel).read_text(encoding="utf-8")))]


# -- the instances ---------------------------------------------------------------------------------

def _walk_dicts(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk_dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_dicts(v)


def _corpus() -> list[dict]:
    docs = [json.loads(p.read_text(encoding="utf-8"))
            for d in ("vectors", "p-open/vectors") for p in sorted((SCHEMAS / d).rglob("*.json"))]
    docs += [json.loads(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.json"))]
    return [d for doc in docs for d in _walk_dicts(doc)]


CORPUS = _corpus()


def _seeds(names: list) -> list[dict]:
    out: dict[str, dict] = {}
    per_name: dict = {}
    for d in CORPUS:
        t = d.get("type")
        if isinstance(t, str) and t in names and per_name.get(t, 0) < SEEDS_PER_NAME:
            key = json.dumps(d, sort_keys=True)
            if key not in out:
                out[key] = d
                per_name[t] = per_name.get(t, 0) + 1
    for n in names:  # a listed type the corpus lacks still gets a (mostly invalid) instance
        out.setdefault(json.dumps({"type": n}), {"type": n})
    return list(out.values())


def _nested_type_paths(value, path=()):
    """Paths of the dicts with a `type` below the top level."""
    if isinstance(value, dict):
        if path and "type" in value:
            yield path
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for k, v in items:
        yield from _nested_type_paths(v, path + (k,))


def _at(value, path):
    for k in path:
        value = value[k]
    return value


def _instances(names: list) -> list:
    out = list(NON_OBJECTS)
    for seed in _seeds(names):
        out.append(seed)
        out.append({k: v for k, v in seed.items() if k != "type"})
        for t in [n for n in names if n != seed.get("type")] + UNKNOWN_TYPES:
            out.append(dict(seed, type=t))
        for k in [k for k in seed if k != "type"]:
            out.append({kk: v for kk, v in seed.items() if kk != k})
            out += [dict(seed, **{k: r}) for r in RETYPED]
        for path in _nested_type_paths(seed):
            for t in ("x_unknown_type", None):
                broken = copy.deepcopy(seed)
                _at(broken, path)["type"] = t
                out.append(broken)
            broken = copy.deepcopy(seed)
            del _at(broken, path)["type"]
            out.append(broken)
    unique: dict[str, object] = {}
    for x in out:
        unique.setdefault(json.dumps(x, sort_keys=True), x)
    return list(unique.values())


# -- equivalence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rel,pointer,node", TREES, ids=TREE_IDS)
def test_tree_validates_like_its_flat_form(tree_and_flat, rel, pointer, node):
    tree, flat = tree_and_flat
    names = _names(node)
    targets = [(_set_of(rel), _probe_name(rel, pointer))] + ALSO.get((rel, pointer), [])
    instances = _instances(names)
    differ, rejected = [], set()
    for set_key, def_name in targets:
        for x in instances:
            got = tree[set_key].validate_def(def_name, x)
            want = flat[set_key].validate_def(def_name, x)
            if got != want:
                differ.append((def_name, x, want, got))
            elif want and isinstance(x, dict):
                rejected.add(x.get("type"))
    assert not differ, "\n".join(f"{d} {json.dumps(x)[:200]}\n  flat: {w}\n  tree: {g}" for d, x, w, g in differ[:5]) \
        + f"\n({len(differ)} of {len(instances) * len(targets)} differ)"
    # every branch was exercised: for each listed name some instance failed (its `then` mattered)
    assert set(names) <= rejected, f"no rejected instance of {sorted(set(names) - rejected)}"
