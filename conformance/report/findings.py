"""Findings grouped by clause, and one reason per non-passing case (issue 15 items 8 and 12).

A deviation the target makes everywhere (a Response object without a required field) shows up
as a finding in nearly every case. The terminal, ``index.html`` and allure say it once per
clause, with the cases it touched (``group_by_clause``), and each case's own line names its
clause and the reason in a sentence (``case_reason``), pointing to the clause instead of
repeating a finding the clause already says.

Input: certificate dicts (``cases[]`` with ``findings`` — the failing observations — and
``clauses[]`` rows, ``docs/certificate.md``); a case is read as a ``CaseRecord``
(``conformance.caserecord``; a certificate's case dict is read with its ``from_json``). Plain
data, no pytest, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance import caserecord
from conformance.caserecord import CaseRecord
from conformance.vocabulary import ERROR, FAIL, FLAKY, KNOWN, NON_STRICT, PASS


DEVIATIONS = (FAIL, NON_STRICT)                  # finding verdicts that are deviations
# clause verdicts whose findings are listed, in the order shown (KNOWN ones are the baseline's)
GROUPED = (FAIL, FLAKY, NON_STRICT)
# case verdicts that get one line each, in the order shown
NOT_PASSING = (FAIL, FLAKY, ERROR, NON_STRICT)
SENTENCE = 160                                   # characters of a reason on one line


@dataclass
class Group:
    """One clause's deviations: the cases they were seen in and the distinct messages."""

    clause: str
    level: str
    verdict: str                                 # the clause row's verdict
    requirement: str
    cases: list[str] = field(default_factory=list)
    messages: dict[str, list[str]] = field(default_factory=dict)   # message -> the cases it was seen in

    @property
    def headline(self) -> str:
        """The message seen in most cases (ties: the first seen)."""
        return max(self.messages, key=lambda m: len(self.messages[m])) if self.messages else ""

    def said(self, message: str) -> bool:
        """True when ``message`` is one this group says for several cases."""
        return self.shared and len(self.messages.get(sentence(message, 400), ())) > 1

    @property
    def shared(self) -> bool:
        return len(self.cases) > 1


def sentence(text: str, limit: int = SENTENCE) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    line = " ".join((text or "").strip().splitlines()[:1]).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def deviations(case: CaseRecord | dict) -> list[dict]:
    """A case's failing findings (FAIL, then NON-STRICT), one per clause and message: the
    clauses the case marks first (in their order), then the others as seen."""
    case = caserecord.of(case)
    marked = {c: i for i, c in enumerate(case.clauses)}
    seen: dict[tuple[str, str], dict] = {}
    for position, finding in enumerate(case.failing):
        if finding.get("verdict") not in DEVIATIONS:
            continue
        key = (finding["clause"], sentence(finding.get("message", ""), 400))
        seen.setdefault(key, dict(finding, _order=position))
    out = sorted(seen.values(), key=lambda f: (f["verdict"] != FAIL, marked.get(f["clause"], len(marked)),
                                               f["_order"]))
    return [{k: v for k, v in finding.items() if k != "_order"} for finding in out]


def group_by_clause(cert: dict) -> list[Group]:
    """One group per clause that reads FAIL, FLAKY or NON-STRICT: the non-KNOWN cases whose
    findings violate it and its distinct messages; most cases first within a verdict."""
    rows = {r["id"]: r for r in cert.get("clauses", []) if r["verdict"] in GROUPED}
    groups: dict[str, Group] = {}
    for case in caserecord.all_of(cert.get("cases", [])):
        if case.verdict in (KNOWN, PASS):
            continue
        messages: dict[str, set[str]] = {}
        for f in deviations(case):
            if f["clause"] in rows:
                messages.setdefault(f["clause"], set()).add(sentence(f.get("message", ""), 400))
        for cid, texts in messages.items():
            row = rows[cid]
            group = groups.setdefault(cid, Group(cid, row["level"], row["verdict"], row["requirement"]))
            group.cases.append(case.nodeid)
            for text in sorted(texts):
                group.messages.setdefault(text, []).append(case.nodeid)
    order = {v: i for i, v in enumerate(GROUPED)}
    return sorted(groups.values(), key=lambda group: (order[group.verdict], -len(group.cases), group.clause))


def primary(case: CaseRecord | dict) -> str | None:
    """The clause a non-passing case is filed under: its first deviation, else its first clause."""
    case = caserecord.of(case)
    devs = deviations(case)
    if devs:
        return devs[0]["clause"]
    return case.clauses[0] if case.clauses else None


def case_reason(case: CaseRecord | dict, groups: dict[str, Group] | None = None) -> tuple[str | None, str]:
    """(clause, reason in a sentence) of a non-passing case. A finding its clause's group
    already says for several cases is named, not repeated; other failing clauses are listed."""
    case = caserecord.of(case)
    groups = groups or {}
    verdict = case.verdict
    messages = [m for m in case.messages if m]
    devs = deviations(case)
    if verdict == ERROR or (not devs and verdict != FLAKY):
        text = next((m for m in messages if m.startswith((ERROR, "stopped:"))), messages[0] if messages else "")
        # the suite's generic exception name says nothing to a reader; a specific one does
        text = text.removeprefix("ERROR: ").removeprefix("HarnessError: ")
        return primary(case), sentence(text or "no reason recorded")
    if verdict == FLAKY:
        tries = next((m for m in messages if m.startswith("tries gave")), "the verdict changed between tries")
        clauses = sorted(case.failed_in_tries())
        return (clauses[0] if clauses else primary(case)), sentence(
            tries + (f" (failed: {', '.join(clauses)})" if clauses else ""))
    first = devs[0]
    group = groups.get(first["clause"])
    text = sentence(first.get("message", ""), 400)
    if group is not None and group.shared and text == group.headline:
        reason = f"as in {len(group.cases)} cases (the clause above)"
    else:
        reason = sentence(text)
    others = list(dict.fromkeys(f["clause"] for f in devs[1:] if f["clause"] != first["clause"]))
    if others:
        reason += "; also " + ", ".join(others)
    return first["clause"], reason

