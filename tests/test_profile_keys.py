"""Every profile key is read (issue 15 item 11; conformance/claims.py): flipping any key of
the profile schema changes the plan (which cases run, what they may spend), a verdict, or
what the report header names. A key without an entry in FLIPS, or whose flip changes
nothing, fails here."""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from _standalone import KEY, ROOT, clause_verdicts, run_cases, standalone_server
from conformance import budget as B
from conformance import claims, options, plugin
from conformance.session import SESSION_KEY
from conformance.target import _DEFAULTS, profile_from_table
from conformance.verdicts import ClauseRegistry, default_clauses_path

REGISTRY = ClauseRegistry.load(default_clauses_path())
PLAN, HEADER, RUN = "plan", "header", "run"
BASE = {"name": "flip", "extends": "reference"}


@dataclass(frozen=True)
class Flip:
    alt: Any                        # the alternative value
    shows: str                      # PLAN: the case plan; HEADER: the report header; RUN: verdicts of a run
    base: dict = field(default_factory=dict)   # keys set in both profiles (dotted)
    args: tuple = ()                # RUN: the suite's arguments (a clause selection)
    server: tuple | None = None     # RUN against a standalone server started with these args


FLIPS: dict[str, Flip] = {
    "name": Flip("acme-gateway", HEADER),
    "description": Flip("a vendor gateway", HEADER),
    "extends": Flip("xai", PLAN),
    "spec_profiles": Flip(["P-legacy"], PLAN),
    "target.default_model": Flip("vendor-model-7", HEADER),
    "target.auth_header": Flip("api-key", HEADER),
    "target.keys_checked": Flip(False, PLAN),
    "target.multi_tenant": Flip(False, PLAN),
    "connection.lifetime_seconds": Flip(30, RUN, base={"connection.lifetime_seconds": 2, "features.test_controls": False},
                                        args=("--run-slow", "--clause", "LIFETIME-LIMIT-ERROR"),
                                        server=("--lifetime", "2")),
    "connection.limit_error_code": Flip("vendor_limit_reached", RUN, args=("--clause", "LIFETIME-LIMIT-ERROR")),
    "connection.max_frame_bytes": Flip(0, RUN, args=("--clause", "CLIENT-OVERSIZE-FRAME")),
    "concurrency.busy_policy": Flip("reject", PLAN),
    "concurrency.busy_error_code": Flip("vendor_busy", RUN,
                                        base={"concurrency.busy_policy": "reject", "concurrency.busy_error_code": "server_busy"},
                                        args=("--clause", "QUEUE-REJECT-CODE"),
                                        server=("--test-controls", "--busy-policy", "reject", "--busy-error-code", "server_busy")),
    "concurrency.max_active": Flip(4, RUN, args=("--clause", "LANE-ACTIVE-LIMIT")),
    "concurrency.max_named_lanes": Flip(8, RUN, args=("--clause", "LANE-NAMED-LIMIT")),
    "features.generate_false": Flip(False, PLAN),
    "features.stream_field": Flip("rejected", PLAN),
    "features.background_rejected": Flip(False, PLAN),
    "features.compact_endpoint": Flip(False, PLAN),
    "features.context_management": Flip(False, PLAN),
    "features.http_endpoint": Flip(False, PLAN),
    "features.lanes": Flip(False, PLAN),
    "features.lanes_concurrent": Flip(False, PLAN),
    "features.steering": Flip(False, PLAN),
    "features.test_controls": Flip(False, RUN, args=("--clause", "LIFETIME-LIMIT-ERROR")),
    "features.reference_engine": Flip(False, PLAN),
    "cache.store_true_hydrates": Flip(False, PLAN),
    "cache.zdr": Flip(True, PLAN),
    "cache.latest_only": Flip(False, RUN, args=("--clause", "CACHE-MISS-STORE-FALSE",
                                                "--reference-defect", "keeps-older-responses")),
    "errors.not_found_status": Flip(404, RUN, args=("--clause", "CACHE-MISS-STORE-FALSE")),
    "errors.not_found_as": Flip("error_or_failed", RUN, args=("--clause", "CACHE-MISS-STORE-FALSE",
                                                              "--reference-defect", "not-found-as-response-failed")),
    "errors.invalid_request_types": Flip(["invalid_request"], RUN, args=("--clause", "CACHE-MISS-STORE-FALSE")),
    "stream.setup_events": Flip("required", RUN, base={"stream.setup_events": "optional"},
                                args=("--clause", "CREATE-FLAT-PAYLOAD", "--reference-option", "omit-setup-events")),
    "deadlines.turn_timeout": Flip(7.0, HEADER),
    "deadlines.idle_after_done": Flip(3.0, HEADER),
    "stream.terminal_output": Flip("required", RUN, base={"stream.terminal_output": "optional"},
                                   args=("--clause", "CREATE-FLAT-PAYLOAD", "--reference-option", "omit-terminal-output")),
}


def _schema_keys(table: dict = _DEFAULTS, prefix: str = "") -> set[str]:
    out = set()
    for k, v in table.items():
        out |= _schema_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_every_schema_key_is_listed_with_its_effect_and_a_flip():
    keys = _schema_keys()
    assert set(claims.EFFECTS) == keys, "conformance/claims.py EFFECTS must list exactly the profile schema's keys"
    assert set(FLIPS) == keys, f"keys without a flip here: {sorted(keys - set(FLIPS))}"


def test_every_key_is_documented():
    doc = (ROOT / "docs" / "interfaces.md").read_text(encoding="utf-8")
    missing = [k for k in _schema_keys() if k.rpartition(".")[2] not in doc]
    assert not missing, f"profile keys not in docs/interfaces.md: {missing}"


# --- profiles as tables and files ------------------------------------------------------------

def _table(flip: Flip, key: str | None) -> dict:
    table: dict = dict(BASE)
    values = dict(flip.base)
    if key is not None:
        values[key] = flip.alt
    for dotted, value in values.items():
        head, _, leaf = dotted.rpartition(".")
        (table.setdefault(head, {}) if head else table)[leaf] = value
    return table


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write(table: dict, path: Path) -> Path:
    top = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())
              for k, v in table.items() if isinstance(v, dict)]
    path.write_text("\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n", encoding="utf-8")
    return path


# --- observable: the plan --------------------------------------------------------------------

def _catalog() -> list[tuple[str, list]]:
    """(name, marks) of every case function under cases/ (imported, not run)."""
    out = []
    for path in sorted((ROOT / "cases").glob("test_*.py")):
        name = f"_profile_keys_{path.stem}"
        mod = sys.modules.get(name)
        if mod is None:
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        for attr, fn in sorted(vars(mod).items()):
            if attr.startswith("test_") and callable(fn):
                out.append((f"{path.name}::{attr}", list(getattr(fn, "pytestmark", []))))
    return out


def _plan(table: dict) -> dict[str, str]:
    """Each case: its UNSUPPORTED reason, or what it may spend (the suite's own functions)."""
    profile = profile_from_table(table)
    plan = {}
    for name, marks in _catalog():
        clause_ids = [a for m in marks if m.name == "clause" for a in m.args]
        requires = [m for m in marks if m.name == "requires"]
        reason = claims.unsupported(clause_ids, requires, REGISTRY, profile)
        budget = next((m for m in marks if m.name == "max_requests"), None)
        plan[name] = reason or str(B.declared(budget, None, True, B.GENERATED_EMBEDDED, 1, profile=profile))
    return plan


# --- observable: the report header -----------------------------------------------------------

def _header(table: dict, tmp_path: Path) -> list[str]:
    path = _write(table, tmp_path / "header.toml")
    opts = {"target_config": str(path), "no_report": True, "max_output_tokens": 16, "preflight_timeout": 10.0}
    config = SimpleNamespace(getoption=lambda name: opts.get(name), option=SimpleNamespace(),
                             getini=lambda name: False, rootpath=ROOT)
    settings = options.build_settings(config)
    config.stash = {SESSION_KEY: SimpleNamespace(is_worker=False, settings=settings, preflight=None)}
    return [line.replace(str(path), "<file>") for line in plugin.pytest_report_header(config)]


# --- observable: verdicts of a run -----------------------------------------------------------

def _run(table: dict, args: list[str], url: str | None, tmp_path: Path, tag: str) -> dict:
    path = _write(table, tmp_path / f"{tag}.toml")
    # the generated conversations mark many clauses; they are slow and shrink on a failure
    args = ["-p", "no:xdist", "--target-config", str(path), "-k", "not generated_conversations", *args]
    if url:
        args += ["--target", url, "--api-key", KEY, "--retries", "0", "--turn-timeout", "10"]
    proc, cert, _ = run_cases(args, tmp_path / tag, timeout=120)
    # 7 (INCOMPLETE): a flip that leaves nothing to judge, e.g. every selected case unsupported
    assert cert is not None and proc.returncode in (0, 1, 7), proc.stdout[-2000:] + proc.stderr[-2000:]
    return cert


def _selected(cert: dict, clause: str) -> tuple:
    """The verdicts of the cases marking ``clause``, and that clause's verdict."""
    cases = tuple(sorted((c["nodeid"], c["verdict"]) for c in cert["cases"] if clause in c["clauses"]))
    assert cases, f"no case of {clause} ran"
    return cases, clause_verdicts(cert).get(clause)


def _shared(flip: Flip) -> bool:
    """Flips against the embedded server from the plain base profile share one base run."""
    return flip.shows == RUN and flip.server is None and not flip.base and len(flip.args) == 2


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory) -> dict:
    clauses = sorted({f.args[1] for f in FLIPS.values() if _shared(f)})
    args = [a for c in clauses for a in ("--clause", c)]
    return _run(dict(BASE), args, None, tmp_path_factory.mktemp("shared"), "base")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key", sorted(FLIPS))
def test_flipping_the_key_changes_what_the_suite_does(key: str, tmp_path: Path, request):
    flip = FLIPS[key]
    base, alt = _table(flip, None), _table(flip, key)
    if key == "extends":
        assert base["extends"] != flip.alt
    if flip.shows == PLAN:
        before, after = _plan(base), _plan(alt)
        changed = {n: (before[n], after[n]) for n in before if before[n] != after[n]}
        assert changed, f"{key} = {flip.alt!r} changes no case's plan"
    elif flip.shows == HEADER:
        assert _header(base, tmp_path) != _header(alt, tmp_path), f"{key} = {flip.alt!r} changes nothing in the header"
    else:
        clause = flip.args[flip.args.index("--clause") + 1]
        if _shared(flip):
            before = _selected(request.getfixturevalue("shared_base"), clause)
            after = _selected(_run(alt, list(flip.args), None, tmp_path, "alt"), clause)
        elif flip.server is None:
            before = _selected(_run(base, list(flip.args), None, tmp_path, "base"), clause)
            after = _selected(_run(alt, list(flip.args), None, tmp_path, "alt"), clause)
        else:
            with standalone_server(args=flip.server) as url:
                before = _selected(_run(base, list(flip.args), url, tmp_path, "base"), clause)
                after = _selected(_run(alt, list(flip.args), url, tmp_path, "alt"), clause)
        assert before != after, f"{key} = {flip.alt!r} changes no verdict: {before}"


def test_keys_checked_false_makes_the_wrong_key_case_unsupported():
    plan = _plan(_table(FLIPS["target.keys_checked"], "target.keys_checked"))
    assert plan["test_transport.py::test_auth_refused_with_wrong_key"].startswith("UNSUPPORTED: ")
    assert "keys_checked" in plan["test_transport.py::test_auth_refused_with_wrong_key"]
    assert not plan["test_transport.py::test_auth_refused_without_key"].startswith("UNSUPPORTED")


def test_lane_limits_set_the_declared_budget():
    table = _table(Flip(None, PLAN, base={"concurrency.max_active": 64, "concurrency.max_named_lanes": 128}), None)
    plan = _plan(table)
    assert plan["test_lanes.py::test_active_limit_queues"] == str(B.Declared(66, 0))
    assert plan["test_lanes.py::test_named_limit"] == str(B.Declared(131, 0))


# --- one way to read a fact, one way to be UNSUPPORTED (issue 16 item 5) ----------------------

CASES = ROOT / "cases"


def _profile_reads_by_key(tree: ast.AST) -> list[int]:
    """Lines where a profile fact is read by dotted key or subscript (``profile.get("a.b")``,
    ``profile["a"]``, ``profile.features["x"]``) instead of as an attribute."""
    def is_profile(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "profile")
                or (isinstance(node, ast.Name) and node.id == "profile"))

    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and is_profile(node.func.value)):
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and (
                is_profile(node.value) or (isinstance(node.value, ast.Attribute) and is_profile(node.value.value)
                                           and node.value.attr in ("features", "cache", "stream", "data"))):
            lines.append(node.lineno)
    return lines


def _unsupported_while_running(tree: ast.AST) -> list[int]:
    """Lines where a case decides UNSUPPORTED while it runs from what the profile claims
    (``if not target.has(...): verdict.unsupported(...)``) or skips with an UNSUPPORTED text."""
    def says_unsupported(call: ast.Call) -> bool:
        first = call.args[0] if call.args else None
        if isinstance(first, ast.JoinedStr):
            first = first.values[0] if first.values else None
        return isinstance(first, ast.Constant) and str(first.value).startswith("UNSUPPORTED")

    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "skip"
                and says_unsupported(node)):
            lines.append(node.lineno)
        if isinstance(node, ast.If):
            asks_profile = any((isinstance(n, ast.Attribute) and n.attr in ("has", "profile", "capabilities"))
                               for n in ast.walk(node.test))
            calls = [n for body in node.body for n in ast.walk(body)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "unsupported"]
            if asks_profile and calls:
                lines += [call.lineno for call in calls]
    return lines


def _case_files() -> list[Path]:
    """The cases and the helpers only cases use (docs/design.md layout)."""
    helpers = [ROOT / "conformance" / name for name in ("casekit.py", "probes.py", "statemachine.py")]
    return sorted(CASES.rglob("*.py")) + helpers


def test_cases_read_profile_facts_one_way():
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in _case_files()
           for line in _profile_reads_by_key(ast.parse(path.read_text(encoding="utf-8")))]
    assert not bad, "read profile facts as attributes of target.profile (or target.has):\n" + "\n".join(bad)


def test_cases_are_unsupported_only_through_requires():
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in _case_files()
           for line in _unsupported_while_running(ast.parse(path.read_text(encoding="utf-8")))]
    assert not bad, "use @pytest.mark.requires(capability, reason=...) instead:\n" + "\n".join(bad)


def test_the_scanners_catch_the_other_ways():
    sample = ast.parse(
        'x = target.profile.get("concurrency.max_active")\n'
        'y = target.profile.features["lanes"]\n'
        'z = profile["stream"]\n'
        'ok = target.profile.max_active\n'
        'if not target.has("lanes"):\n'
        '    verdict.unsupported("no lanes")\n'
        'pytest.skip("UNSUPPORTED: no lanes")\n'
        'pytest.skip(f"UNSUPPORTED: {why}")\n'
        'if turn.status == "error":\n'
        '    verdict.unsupported("the target rejected it")\n')
    assert _profile_reads_by_key(sample) == [1, 2, 3]
    assert sorted(_unsupported_while_running(sample)) == [6, 7, 8]


def test_requires_marks_keep_their_reasons():
    """A ``requires`` mark with a reason is the UNSUPPORTED text users saw when the case
    decided it while running; the case never starts."""
    plan = _plan(_table(Flip(None, PLAN, base={"features.reference_engine": False, "features.test_controls": False}),
                        None))
    assert plan["test_stream_grammar.py::test_two_message_stream"] == (
        "UNSUPPORTED: two messages in one response need the reference engine's [[multi]] trigger")
    assert plan["test_eviction.py::test_failed_response_evicts"] == (
        "UNSUPPORTED: a response that fails mid-stream can only be provoked on the reference server "
        "([[fail]] trigger)")
    assert plan["test_transport.py::test_silence_then_normal_end_passes"] == (
        "UNSUPPORTED: a mid-response pause needs the X-Conformance-Pause-Ms test control "
        "(profile 'flip' has no test controls)")
    reference = _plan(_table(Flip(None, PLAN), None))
    assert not reference["test_stream_grammar.py::test_two_message_stream"].startswith("UNSUPPORTED")
