"""The case record (conformance/caserecord.py, issue 16 item 3): one typed record for what a
case produced. Its certificate form is what certificates have always held; it reads
certificates of earlier versions; no module reads a record by its keys."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jsonschema

from conformance import caserecord, diff
from conformance import vocabulary as vocab
from conformance.caserecord import CaseRecord, KnownRecord, TryRecord

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "conformance"
OLD_CERTIFICATE = ROOT / "tests" / "data" / "certificates" / "suite-1306fc7-flat-error-shape.json"
# the only modules that may read a record's keys: the record itself; the HTML report, which
# another change of issue 16 rewrites (it reads the certificate's case dicts until then); and
# the proxy, whose records are still dicts it builds (conformance/proxy/observe.py), also being
# changed by another helper at the same time
EXEMPT = {"caserecord.py"}


def _observation(clause: str, ok: bool, verdict: str) -> dict:
    return {"clause": clause, "level": "MUST", "ok": ok, "kind": "expect" if ok else "violation",
            "verdict": verdict, "message": "m", "evidence": "e", "response_id": None}


FULL = CaseRecord(
    nodeid="cases/test_x.py::test_y[a]", verdict=vocab.KNOWN, clauses=("A-ONE", "A-TWO"), messages=("first",),
    duration_s=1.25, not_reached=("A-TWO",), usage={"creates": 2, "input_tokens": 7},
    observations=(_observation("A-ONE", True, vocab.PASS), _observation("A-ONE", False, vocab.FAIL)),
    tries=(TryRecord(vocab.FAIL, ("x",), ("A-ONE",), backoff_s=1.0), TryRecord(vocab.FAIL, (), ("A-ONE",))),
    known=KnownRecord(vocab.FAIL, (1,), ("clause A-ONE: vendor says so",)), transcript="# ws://...\n>> {}",
    reached=("A-ONE",), connections=1, blocked=False, surface={"event_types": {"response.created": 1}},
    retried_in_place=("rate_limit",), perf={"ratio": 2.0})


# --- the two JSON forms ---------------------------------------------------------------------

def test_the_certificate_form_is_the_case_entry_of_the_schema():
    case = FULL.to_json()
    assert list(case) == ["nodeid", "clauses", "verdict", "messages", "duration_s", "not_reached", "usage",
                          "findings", "tries", "known"]
    assert case["findings"] == [FULL.observations[1]] and "transcript" not in case
    schema = json.loads((ROOT / "schemas" / "certificate.json").read_text(encoding="utf-8"))
    case_schema = {"$defs": schema["$defs"], **schema["$defs"]["case"]}
    jsonschema.validate(case, case_schema)
    with_file = CaseRecord.from_json(FULL.to_dict() | {"transcript_path": "transcripts/x.txt"})
    jsonschema.validate(with_file.to_json(), case_schema)
    assert with_file.to_json()["transcript"] == "transcripts/x.txt"


def test_both_forms_read_back_unchanged():
    assert CaseRecord.from_json(FULL.to_dict()) == FULL
    entry = FULL.to_json() | {"transcript": "transcripts/x.txt"}
    assert CaseRecord.from_json(entry).to_json() == entry
    assert json.loads(json.dumps(FULL.to_dict())) == FULL.to_dict()      # it travels from an xdist worker


def test_what_readers_derive():
    assert FULL.own_verdict == vocab.FAIL and FULL.known_entries == (1,) and FULL.name == "test_y[a]"
    assert FULL.failed_in_tries() == {"A-ONE"} and FULL.transient_reasons() == ["rate_limit"]
    assert CaseRecord("c::d", vocab.KNOWN).own_verdict == vocab.FAIL       # KNOWN without its block: not a pass


# --- tolerant reading ---------------------------------------------------------------------

def test_an_old_certificate_reads():
    """A certificate of suite 0.1.0 (format_version 1: cases without not_reached) reads case by
    case, and diff compares it with itself."""
    cert = json.loads(OLD_CERTIFICATE.read_text(encoding="utf-8"))
    assert "certificate_version" not in cert and all("not_reached" not in case for case in cert["cases"])
    records = [CaseRecord.from_json(case) for case in cert["cases"]]
    assert [r.nodeid for r in records] == [case["nodeid"] for case in cert["cases"]]
    assert {r.verdict for r in records} == {vocab.PASS, vocab.FAIL}
    failed = [r for r in records if r.verdict == vocab.FAIL]
    assert failed and all(r.transcript_path.startswith("transcripts/") and r.findings for r in failed)
    assert all(r.not_reached == () and r.reached is None and r.transcript == "" for r in records)
    assert {f["clause"] for r in failed for f in r.findings} >= {"ERR-CODE-NESTED"}
    for case, record in zip(cert["cases"], records):     # what the old entry said, said again
        assert {k: v for k, v in record.to_json().items() if k in case} == case
    assert diff.compare(cert, cert)["reasons"] == []


def test_missing_keys_get_defaults_and_never_a_pass():
    record = CaseRecord.from_json({"nodeid": "c::a"})
    assert record.verdict == vocab.ERROR        # a record that says nothing passed nothing
    assert (record.clauses, record.messages, record.usage, record.findings, record.tries) == ((), (), {}, [], ())
    assert record.known is None and record.duration_s == 0.0 and record.transcript_path == ""
    assert CaseRecord.from_json({}).nodeid == "" and CaseRecord.from_json(None).verdict == vocab.ERROR


def test_unknown_and_malformed_keys_never_crash():
    data = {"nodeid": "c::a", "verdict": vocab.PASS, "clauses": "not a list", "usage": [1], "duration_s": "x",
            "findings": [1, {"clause": "A", "ok": False}], "tries": [{"verdict": vocab.FAIL}, "junk"],
            "known": {"entries": ["1", 2]}, "severity": "high", "attachments": [{"a": 1}]}
    record = CaseRecord.from_json(data)
    assert record.clauses == () and record.usage == {} and record.duration_s == 0.0
    assert record.findings == [{"clause": "A", "ok": False}] and record.tries == (TryRecord(vocab.FAIL),)
    assert record.known == KnownRecord(vocab.FAIL, (2,))
    assert record.extra == {"severity": "high", "attachments": [{"a": 1}]}       # kept as read
    assert "severity" not in record.to_json()        # the certificate schema admits no unknown key
    assert record.to_dict()["severity"] == "high"


def test_any_value_of_any_key_reads():
    keys = list(FULL.to_dict()) + ["findings", "transcript"]
    for value in (None, 5, True, "text", [1, "x", None], {"a": 1}, [{"verdict": 3}]):
        for key in keys:
            for whole in (True, False):
                data = (FULL.to_dict() if whole else FULL.to_json()) | {key: value}
                record = CaseRecord.from_json(data)        # never raises, and stays JSON-able
                assert isinstance(record.nodeid, str) and isinstance(record.verdict, str)
                assert json.loads(json.dumps(record.to_json()))["nodeid"] == record.nodeid
                assert json.loads(json.dumps(record.to_dict()))["verdict"] == record.verdict


def test_readers_take_records_or_dicts():
    assert caserecord.of(FULL) is FULL and caserecord.of(FULL.to_dict()) == FULL
    assert [r.nodeid for r in caserecord.by_nodeid([FULL, CaseRecord("a::b", vocab.PASS)])] == ["a::b", FULL.nodeid]


# --- no module reads a record by its keys ---------------------------------------------------

RECORD_SEQUENCES = {"records", "recs", "cases"}      # names that hold records (or certificate cases)
RECORD_NAMES = {"rec", "record", "case"}              # parameters that hold one record
WRAPPERS = {"sorted", "list", "tuple", "reversed", "enumerate", "filter", "zip"}


def _holds_records(expr: ast.AST) -> bool:
    """Whether iterating ``expr`` gives case records: ``records``, ``sess.records``,
    ``cert["cases"]``, ``cert.get("cases", [])``, ``sorted(records, ...)``, ``x or records``."""
    if isinstance(expr, ast.Name):
        return expr.id in RECORD_SEQUENCES
    if isinstance(expr, ast.Attribute):
        return expr.attr in RECORD_SEQUENCES
    if isinstance(expr, ast.Subscript):
        return isinstance(expr.slice, ast.Constant) and expr.slice.value == "cases"
    if isinstance(expr, ast.BoolOp):
        return any(_holds_records(value) for value in expr.values)
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and expr.args:
            return isinstance(expr.args[0], ast.Constant) and expr.args[0].value == "cases"
        if isinstance(func, ast.Name) and func.id in WRAPPERS and expr.args:
            return any(_holds_records(arg) for arg in expr.args)
    return False


def _names(target: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(target) if isinstance(node, ast.Name)}


def _key_reads(nodes: list[ast.AST], names: set[str]) -> list[tuple[int, str]]:
    """(line, key) of every ``name["key"]`` and ``name.get("key", ...)`` below ``nodes``."""
    found = []
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in names \
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str) \
                    and isinstance(node.ctx, ast.Load):
                found.append((node.lineno, node.slice.value))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in names and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def key_reads(source: str) -> list[tuple[int, str]]:
    """Where ``source`` reads a case record by a key: a name bound to an element of a record
    sequence (loop, comprehension, ``sorted(records, key=lambda r: ...)``), a parameter named
    like a record, or what ``getattr(report, "conformance_record")`` returned."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.For, ast.AsyncFor)) and _holds_records(node.iter):
            found.update(_key_reads(node.body, _names(node.target)))
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            names = set().union(*(_names(gen.target) for gen in node.generators if _holds_records(gen.iter)))
            if names:
                found.update(_key_reads([node], names))
        elif isinstance(node, ast.Call) and any(_holds_records(arg) for arg in node.args):
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Lambda):
                    found.update(_key_reads([keyword.value.body], {a.arg for a in keyword.value.args.args}))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = {a.arg for a in node.args.args + node.args.kwonlyargs if a.arg in RECORD_NAMES}
            for statement in ast.walk(node):
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call) and any(
                        isinstance(arg, ast.Constant) and arg.value == "conformance_record"
                        for arg in statement.value.args):
                    names |= set().union(*(_names(target) for target in statement.targets))
            if names:
                found.update(_key_reads(node.body, names))
    return sorted(found)


def test_no_module_reads_a_record_by_its_keys():
    found = [f"conformance/{rel}:{line}: [{key!r}]"
             for path in sorted(PACKAGE.rglob("*.py"))
             if (rel := path.relative_to(PACKAGE).as_posix()) not in EXEMPT
             for line, key in key_reads(path.read_text(encoding="utf-8"))]
    assert not found, "case records read by key (use CaseRecord's attributes):\n" + "\n".join(found)


def test_the_scan_finds_key_reads():
    """The check above can fail: the ways records were read before CaseRecord are all found."""
    probe = '''
def a(records, rows):
    by_id = {r["nodeid"]: r for r in records}
    for case in cert["cases"]:
        x = case.get("transcript")
    y = [c for c in cert.get("cases", []) if c["verdict"] == "E"]
    z = sorted(records, key=lambda r: r["nodeid"])
    ok = [r["verdict"] for r in rows]
def b(rec):
    return rec["known"]
def c(report):
    record = getattr(report, "conformance_record", None)
    return record["verdict"]
'''
    assert [key for _, key in key_reads(probe)] == ["nodeid", "transcript", "verdict", "nodeid", "known", "verdict"]
