"""Baselines of known deviations (``--baseline FILE``, ``--write-baseline FILE``).

A baseline is TOML: one ``[[known]]`` table per deviation, naming a clause id *or* a case
node id, with a ``reason``, an optional ``verdict`` (only that verdict is known) and an
optional ``until`` date (from that day on the entry no longer applies)::

    [[known]]
    clause = "SEQ-FROM-ZERO-BY-ONE"
    reason = "vendor ticket 1234: numbers count per connection"
    verdict = "NON-STRICT"
    until = 2027-03-01

Rules (the case verdicts are those of ``conformance.verdicts`` and ``conformance.retry``):

==========================================================  ==================================
when                                                        result
==========================================================  ==================================
a case ends FAIL/NON-STRICT/ERROR/FLAKY and entries cover    case verdict KNOWN (shown; does
it: its node id, or every clause it failed (none failed:     not fail the run)
the clauses it marks), with a matching ``verdict``
an entry's case now passes, or its clause now PASSes         entry STALE: fails the run, named
                                                            in the summary ("remove it")
``until`` is today or earlier                               entry EXPIRED: ignored
==========================================================  ==================================

``--write-baseline FILE`` writes one entry per failed *clause* by default
(``--write-baseline-by clause``): three defects give about three entries however many cases
they touch, an entry outlives a renamed or re-parametrised case, and it names the
requirement a vendor's reason talks about. A case that failed no clause (ERROR, FLAKY
without a finding) gets a case entry. ``--write-baseline-by case`` writes one entry per case
(narrower: a new case failing the same clause is not covered). ``load`` reads both kinds.

No pytest import here; errors are ``BaselineError`` naming the file, the entry and the key.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from conformance import caserecord
from conformance.caserecord import CaseRecord
from conformance.files import read_document
from conformance.vocabulary import ERROR, EXPIRED, FAIL, FLAKY, INFO, KNOWN, NON_STRICT, PASS, STALE, UNUSED

NON_PASS = (FAIL, NON_STRICT, ERROR, FLAKY)
PASSING = (PASS, INFO)
_KEYS = ("clause", "case", "reason", "verdict", "until")


class BaselineError(ValueError):
    """A baseline file is unusable; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class Entry:
    index: int                  # 1-based position in the file
    clause: str | None
    case: str | None
    reason: str
    verdict: str | None
    until: datetime.date | None

    @property
    def label(self) -> str:
        return f"known #{self.index} ({'clause ' + self.clause if self.clause else 'case ' + str(self.case)})"

    def expired(self, today: datetime.date) -> bool:
        return self.until is not None and self.until <= today

    def as_dict(self) -> dict:
        return {"index": self.index, "clause": self.clause, "case": self.case, "reason": self.reason,
                "verdict": self.verdict, "until": self.until.isoformat() if self.until else None}


@dataclass
class Baseline:
    path: str
    entries: list[Entry]
    today: datetime.date

    def active(self) -> list[Entry]:
        return [e for e in self.entries if not e.expired(self.today)]

    # --- one case ------------------------------------------------------------------------
    def match(self, nodeid: str, verdict: str, marked: Iterable[str], failed: Iterable[str]) -> list[Entry]:
        """The entries that make this case KNOWN (empty: it stays as it is)."""
        if verdict not in NON_PASS:
            return []
        fits = [e for e in self.active() if e.verdict in (None, verdict)]
        by_case = [e for e in fits if e.case == nodeid]
        if by_case:
            return by_case
        clauses = sorted(set(failed)) or sorted(set(marked))
        by_clause = {c: [e for e in fits if e.clause == c] for c in clauses}
        if clauses and all(by_clause.values()):
            return [e for c in clauses for e in by_clause[c]]
        return []

    # --- the whole run -------------------------------------------------------------------
    def review(self, records: Iterable[CaseRecord | dict], rows: list[dict]) -> list[dict]:
        """Every entry with its status: KNOWN (used), STALE (what it covers passes now),
        EXPIRED, or UNUSED (nothing it covers ran, or it still deviates unmatched)."""
        records = caserecord.all_of(records)
        used = {i for r in records for i in r.known_entries}
        row_verdict = {r["id"]: r["verdict"] for r in rows}
        out = []
        for entry in self.entries:
            if entry.expired(self.today):
                status = EXPIRED
            elif entry.index in used:
                status = KNOWN
            elif entry.case is not None:
                ran = [r for r in records if r.nodeid == entry.case]
                status = STALE if ran and all(r.verdict in PASSING for r in ran) else UNUSED
            else:
                status = STALE if row_verdict.get(entry.clause) == PASS else UNUSED
            out.append(entry.as_dict() | {"status": status})
        return out


# --- reading and writing ----------------------------------------------------------------------

def load(path: str | Path, known_clauses: Iterable[str], *, today: datetime.date | None = None) -> Baseline:
    """Read and check a baseline file. Raises ``BaselineError``."""
    path = Path(path)
    src = str(path)
    data = read_document(path, "TOML", BaselineError, "baseline file")
    extra = sorted(set(data) - {"known"})
    if extra:
        raise BaselineError(f"{src}: unknown top-level key(s) {', '.join(extra)} (a baseline holds [[known]] tables)")
    raw = data.get("known", [])
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise BaselineError(f"{src}: known: must be an array of tables ([[known]])")
    clauses = set(known_clauses)
    entries = [_entry(src, n, item, clauses) for n, item in enumerate(raw, 1)]
    return Baseline(src, entries, today or datetime.date.today())


def _entry(src: str, number: int, item: dict, clauses: set[str]) -> Entry:
    name = item.get("clause") or item.get("case") or "?"
    where = f"{src}: known #{number} ({name})"
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise BaselineError(f"{where}: {unknown[0]}: unknown key (known keys: {', '.join(_KEYS)})")
    for key in ("clause", "case", "reason", "verdict"):
        if key in item and not isinstance(item[key], str):
            raise BaselineError(f"{where}: {key}: must be a string, got {item[key]!r}")
    if ("clause" in item) == ("case" in item):
        raise BaselineError(f"{where}: clause/case: give exactly one of clause (a clause id) or case (a node id)")
    clause, case = item.get("clause"), item.get("case")
    if clause is not None and clause not in clauses:
        raise BaselineError(f"{where}: clause: unknown clause id {clause!r} (not in the clause registry)")
    if case is not None and "::" not in case:
        raise BaselineError(f"{where}: case: {case!r} is not a node id (path::name, as pytest prints it)")
    if not item.get("reason", "").strip():
        raise BaselineError(f"{where}: reason: missing (say why the deviation is known)")
    verdict = item.get("verdict")
    if verdict is not None and verdict not in NON_PASS:
        raise BaselineError(f"{where}: verdict: must be one of {', '.join(NON_PASS)}, got {verdict!r}")
    until = item.get("until")
    if until is not None:
        if isinstance(until, str):
            try:
                until = datetime.date.fromisoformat(until)
            except ValueError:
                raise BaselineError(f"{where}: until: {item['until']!r} is not a date (YYYY-MM-DD)") from None
        elif isinstance(until, datetime.datetime) or not isinstance(until, datetime.date):
            raise BaselineError(f"{where}: until: must be a date (YYYY-MM-DD), got {until!r}")
    return Entry(number, clause, case, item["reason"].strip(), verdict, until)


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def prepare_output(path: str | Path) -> Path:
    """Check (creating its folder) that ``--write-baseline`` can write ``path``, before the run
    spends anything. Raises ``BaselineError`` with a one-line reason."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise BaselineError(f"{out}: is a directory (give a file name, e.g. {out / 'baseline.toml'})")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BaselineError(f"{out}: cannot create its folder {out.parent}: {exc.strerror or exc}") from None
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise BaselineError(f"{out}: not writable")
    return out


WRITE_BY = ("clause", "case")     # --write-baseline-by; the first is the default


def _failed_clauses(rec: CaseRecord) -> list[str]:
    """The clauses a case record failed (FAIL or NON-STRICT findings), as ``Baseline.match`` sees them."""
    return sorted({o["clause"] for o in rec.observations if o.get("clause")
                   and (o["verdict"] in (FAIL, NON_STRICT) if "verdict" in o else not o["ok"])})


def _deviations(records: Iterable[CaseRecord | dict]) -> list[tuple[CaseRecord, str]]:
    """(record, verdict before any baseline) of every case that did not pass, by node id."""
    out = []
    for rec in caserecord.by_nodeid(caserecord.all_of(records)):
        verdict = rec.known.verdict if rec.known is not None else rec.verdict
        if verdict in NON_PASS:
            out.append((rec, verdict))
    return out


def render(records: Iterable[CaseRecord | dict], today: datetime.date | None = None, by: str = "clause") -> str:
    """A baseline covering every case of this run that did not pass.

    ``by="clause"``: one entry per failed clause (with the case verdict when every case that
    failed it agrees), and a case entry only for a case that failed no clause (ERROR, FLAKY);
    ``by="case"``: one entry per case."""
    if by not in WRITE_BY:
        raise ValueError(f"by: one of {', '.join(WRITE_BY)}, got {by!r}")
    day = (today or datetime.date.today()).isoformat()
    lines = ["# Known deviations (responses-ws-conformance --baseline); written by --write-baseline",
             f"# on {day} (one entry per {by}). Edit the reasons; add `until = YYYY-MM-DD` to make an entry lapse.",
             ""]
    by_clause: dict[str, list[tuple[CaseRecord, str]]] = {}
    for rec, verdict in _deviations(records):
        failed = _failed_clauses(rec)
        if by == "clause" and failed:
            for c in failed:
                by_clause.setdefault(c, []).append((rec, verdict))
            continue
        first = next(iter(rec.messages), "")[:200]
        lines += ["[[known]]", f"case = {_toml_str(rec.nodeid)}",
                  f"reason = {_toml_str(f'seen {day}: {verdict} ' + (', '.join(failed) + ': ' if failed else '') + first)}",
                  f"verdict = {_toml_str(verdict)}", ""]
    for clause, seen in sorted(by_clause.items()):
        verdicts = sorted({v for _, v in seen})
        message = next((o.get("message", "") for o in seen[0][0].observations
                        if o.get("clause") == clause and not o.get("ok")), "")[:200]
        cases = ", ".join(r.name for r, _ in seen[:3]) + (", ..." if len(seen) > 3 else "")
        reason = f"seen {day}: {'/'.join(verdicts)} in {len(seen)} case(s) ({cases}): {message}"
        lines += ["[[known]]", f"clause = {_toml_str(clause)}", f"reason = {_toml_str(reason)}"]
        if len(verdicts) == 1:
            lines.append(f"verdict = {_toml_str(verdicts[0])}")
        lines.append("")
    return "\n".join(lines)
