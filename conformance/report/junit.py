"""``junit.xml`` from the case records (docs/design.md "Reports").

One ``<testcase>`` per case with properties ``clause`` (one per id) and ``verdict``; FAIL and
NON-STRICT-under-strict are ``<failure>``, ERROR is ``<error>``, UNSUPPORTED/SKIPPED are
``<skipped>``; the redacted transcript of every non-passing case is its ``<system-out>``.
Written from the records (not by pytest's --junitxml) so that it works the same under
pytest-xdist; a user's own ``--junitxml`` still gets the properties via ``user_properties``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from conformance.vocabulary import ERROR, FAIL, INFO, NON_STRICT, PASS, SKIPPED, UNSUPPORTED

_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)}


def _clean(text: str) -> str:
    return str(text).translate(_CONTROL)


def render_junit(cert: dict, records: list[dict]) -> str:
    by_id = {r["nodeid"]: r for r in records}
    counts = Counter(r["verdict"] for r in records)
    strict = cert.get("strict", False)
    failures = counts[FAIL] + (counts[NON_STRICT] if strict else 0)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": "responses-ws-conformance", "tests": str(len(records)), "failures": str(failures),
        "errors": str(counts[ERROR]), "skipped": str(counts[UNSUPPORTED] + counts[SKIPPED]),
        "time": str(cert.get("duration_s", 0)), "timestamp": cert.get("started", "")})
    props = ET.SubElement(suite, "properties")
    for k, v in (("profile", cert["profile"]), ("suite_version", cert["suite_version"]),
                 ("run_id", cert["run_id"]), ("overall", cert["overall"]),
                 ("target_host", cert["target"].get("ws_host", "")), ("model", cert["target"].get("model", ""))):
        ET.SubElement(props, "property", {"name": k, "value": _clean(v)})
    for case in cert["cases"]:
        rec = by_id.get(case["nodeid"], {})
        path, _, name = case["nodeid"].rpartition("::")
        tc = ET.SubElement(suite, "testcase", {"classname": path.replace("/", ".").removesuffix(".py"),
                                               "name": _clean(name or case["nodeid"]),
                                               "time": str(case.get("duration_s", 0))})
        tp = ET.SubElement(tc, "properties")
        for cid in case["clauses"]:
            ET.SubElement(tp, "property", {"name": "clause", "value": cid})
        ET.SubElement(tp, "property", {"name": "verdict", "value": case["verdict"]})
        msg = _clean("\n".join(case.get("messages", [])))
        verdict = case["verdict"]
        if verdict == FAIL or (verdict == NON_STRICT and strict):
            el = ET.SubElement(tc, "failure", {"message": msg.split("\n")[0][:500], "type": verdict})
            el.text = msg
        elif verdict == ERROR:
            el = ET.SubElement(tc, "error", {"message": msg.split("\n")[0][:500], "type": ERROR})
            el.text = msg
        elif verdict in (UNSUPPORTED, SKIPPED):
            ET.SubElement(tc, "skipped", {"message": msg.split("\n")[0][:500] or verdict})
        if rec.get("transcript") and verdict not in (PASS, INFO):
            ET.SubElement(tc, "system-out").text = _clean(rec["transcript"])
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
