"""``junit.xml`` from the case records (docs/design.md "Reports").

One ``<testcase>`` per case with properties ``clause`` (one per id) and ``verdict``; FAIL and
NON-STRICT-under-strict are ``<failure>``, ERROR is ``<error>``, UNSUPPORTED/SKIPPED are
``<skipped>``; the redacted transcript of every non-passing case is its ``<system-out>``.
Written from the records (not by pytest's --junitxml) so that it works the same under
pytest-xdist; a user's own ``--junitxml`` still gets the properties via ``user_properties``.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable
from xml.etree import ElementTree

from conformance import caserecord
from conformance.caserecord import CaseRecord

from conformance.vocabulary import ERROR, FAIL, INFO, NON_STRICT, PASS, SKIPPED, UNSUPPORTED

_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)}


def _clean(text: str) -> str:
    return str(text).translate(_CONTROL)


def render_junit(cert: dict, records: Iterable[CaseRecord | dict]) -> str:
    """The JUnit XML of a run: ``cert`` gives the run's facts, ``records`` the cases."""
    records = caserecord.by_nodeid(caserecord.all_of(records))
    counts = Counter(r.verdict for r in records)
    strict = cert.get("strict", False)
    failures = counts[FAIL] + (counts[NON_STRICT] if strict else 0)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(suites, "testsuite", {
        "name": "responses-ws-conformance", "tests": str(len(records)), "failures": str(failures),
        "errors": str(counts[ERROR]), "skipped": str(counts[UNSUPPORTED] + counts[SKIPPED]),
        "time": str(cert.get("duration_s", 0)), "timestamp": cert.get("started", "")})
    props = ElementTree.SubElement(suite, "properties")
    for key, value in (("profile", cert["profile"]), ("suite_version", cert["suite_version"]),
                       ("run_id", cert["run_id"]), ("overall", cert["overall"]),
                       ("target_host", cert["target"].get("ws_host", "")),
                       ("model", cert["target"].get("model", ""))):
        ElementTree.SubElement(props, "property", {"name": key, "value": _clean(value)})
    for case in records:
        path, _, name = case.nodeid.rpartition("::")
        testcase = ElementTree.SubElement(suite, "testcase", {"classname": path.replace("/", ".").removesuffix(".py"),
                                                              "name": _clean(name or case.nodeid),
                                                              "time": str(case.duration_s)})
        case_props = ElementTree.SubElement(testcase, "properties")
        for cid in case.clauses:
            ElementTree.SubElement(case_props, "property", {"name": "clause", "value": cid})
        ElementTree.SubElement(case_props, "property", {"name": "verdict", "value": case.verdict})
        msg = _clean("\n".join(case.messages))
        verdict = case.verdict
        if verdict == FAIL or (verdict == NON_STRICT and strict):
            element = ElementTree.SubElement(testcase, "failure", {"message": msg.split("\n")[0][:500], "type": verdict})
            element.text = msg
        elif verdict == ERROR:
            element = ElementTree.SubElement(testcase, "error", {"message": msg.split("\n")[0][:500], "type": ERROR})
            element.text = msg
        elif verdict in (UNSUPPORTED, SKIPPED):
            ElementTree.SubElement(testcase, "skipped", {"message": msg.split("\n")[0][:500] or verdict})
        if case.transcript and verdict not in (PASS, INFO):
            ElementTree.SubElement(testcase, "system-out").text = _clean(case.transcript)
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
