"""Clause registry, expectations and verdicts.

Implements the "Verdicts" and "Clauses" sections of ``docs/design.md`` and the clause
``requires`` seam of ``docs/interfaces.md``: ``cases/clauses.toml`` is loaded once; a case
states ``expect(clause_id, condition, evidence, message)``; expectations and the monitor's
findings of every connection the case opened combine into one verdict:

=============  ======================================================  ==================
verdict        when                                                    pytest outcome
=============  ======================================================  ==================
PASS           nothing violated                                        passed
FAIL           a MUST clause violated (expectation or finding)         failed
NON-STRICT     only SHOULD clauses violated                            passed + warning
                                                                       (failed if strict)
INFO           only MAY observations / extensions                      passed
UNSUPPORTED    a marked clause needs what the target lacks             skipped
ERROR          could not judge (unreachable, harness or case bug)      error
=============  ======================================================  ==================

The verdict words themselves (and their pytest outcomes, letters, colours) are declared in
``conformance.vocabulary``. No pytest import here: the plugin wires this to pytest; the logic
is plain and unit-tested.
"""

from __future__ import annotations

import contextvars
import difflib
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from conformance import caserecord
from conformance.caserecord import CaseRecord
from conformance.files import read_document
from conformance.vocabulary import (ERROR, FAIL, FLAKY, INFO, KNOWN, NON_STRICT, NOT_REACHED, PASS, RETIRED,
                                    SKIPPED, UNSUPPORTED, UNTESTED)

LEVELS = ("MUST", "SHOULD", "MAY")
# which side of the wire a clause judges (its ``side`` in the registry): a server (default), or
# a client (client mode, docs/clients.md, docs/spec.md §4.11)
SERVER, CLIENT = "server", "client"
SIDES = (SERVER, CLIENT)
_RANK = {PASS: 0, INFO: 1, NON_STRICT: 2, FAIL: 3}


class RegistryError(ValueError):
    """cases/clauses.toml (or --clauses FILE) is unusable; names the file and the entry."""


class ClauseViolation(AssertionError):
    """A MUST clause failed: raised at once from ``expect`` (and at the end of a case when the
    monitor found a MUST violation)."""


class UnknownClause(LookupError):
    """A clause id that is not in the registry (a typo in a case or the monitor)."""


@dataclass(frozen=True)
class Clause:
    id: str
    level: str
    requirement: str
    source: str
    profiles: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    retired: bool = False
    side: str = SERVER
    # a MUST that is only a SHOULD when the profile claims all these capabilities (what the
    # server tolerates decides how bad a client's habit is, docs/spec.md §4.11 item 54)
    should_when: tuple[str, ...] = ()


class ClauseRegistry:
    def __init__(self, clauses: Iterable[Clause], path: str = "", version: int = 1):
        self.path, self.version = path, version
        self._whole_digest: str | None = None    # a side's view names the whole registry
        self.clauses: dict[str, Clause] = {}
        for c in clauses:
            self.clauses[c.id] = c

    @classmethod
    def load(cls, path: str | Path) -> "ClauseRegistry":
        path = Path(path)
        data = read_document(path, "TOML", RegistryError, "clause registry")
        out = []
        seen: set[str] = set()
        for index, raw in enumerate(data.get("clause", [])):
            where = f"{path}: clause #{index + 1}"
            cid = raw.get("id")
            if not isinstance(cid, str) or not cid:
                raise RegistryError(f"{where}: missing id")
            where = f"{path}: clause {cid}"
            if cid in seen:
                raise RegistryError(f"{where}: duplicate id")
            seen.add(cid)
            level = raw.get("level")
            if level not in LEVELS:
                raise RegistryError(f"{where}: level must be one of {', '.join(LEVELS)}, got {level!r}")
            for key in ("requirement", "source"):
                if not isinstance(raw.get(key, ""), str):
                    raise RegistryError(f"{where}: {key} must be a string")
            for key in ("profiles", "requires", "should_when"):
                val = raw.get(key, [])
                if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
                    raise RegistryError(f"{where}: {key} must be a list of strings")
            side = raw.get("side", SERVER)
            if side not in SIDES:
                raise RegistryError(f"{where}: side must be one of {', '.join(SIDES)}, got {side!r}")
            if raw.get("should_when") and level != "MUST":
                raise RegistryError(f"{where}: should_when lowers a MUST; the level is {level}")
            out.append(Clause(cid, level, raw.get("requirement", ""), raw.get("source", ""),
                              tuple(raw.get("profiles", [])), tuple(raw.get("requires", [])),
                              bool(raw.get("retired", False)), side, tuple(raw.get("should_when", []))))
        return cls(out, str(path), int(data.get("version", 1)))

    def __contains__(self, cid: str) -> bool:
        return cid in self.clauses

    def __getitem__(self, cid: str) -> Clause:
        try:
            return self.clauses[cid]
        except KeyError:
            raise UnknownClause(f"unknown clause id {cid!r} (not in {self.path or 'the registry'})") from None

    def __iter__(self):
        return iter(self.clauses.values())

    def __len__(self) -> int:
        return len(self.clauses)

    def side(self, side: str) -> "ClauseRegistry":
        """The clauses that judge one side of the wire (``SERVER`` or ``CLIENT``): what a run of
        that mode reports on; its ``digest`` stays the whole registry's."""
        view = ClauseRegistry([c for c in self.clauses.values() if c.side == side], self.path, self.version)
        view._whole_digest = self.digest()
        return view

    def for_profile(self, capabilities: frozenset) -> "ClauseRegistry":
        """The levels under a profile: a clause's ``should_when`` capabilities, all claimed,
        make its MUST a SHOULD; its ``digest`` stays the whole registry's."""
        view = ClauseRegistry([replace(c, level="SHOULD") if c.should_when and set(c.should_when) <= capabilities
                               else c for c in self.clauses.values()], self.path, self.version)
        view._whole_digest = self.digest()
        return view

    def digest(self) -> str:
        """sha256 of the clauses' content (ids, levels, requirements, sources, profiles,
        requires, retired; not the file's comments or layout): names the registry a
        certificate was judged against."""
        if self._whole_digest is not None:
            return self._whole_digest
        rows = [[c.id, c.level, c.requirement, c.source, list(c.profiles), list(c.requires), c.retired]
                + ([c.side] if c.side != SERVER else [])
                + (["should_when", list(c.should_when)] if c.should_when else [])
                for c in sorted(self.clauses.values(), key=lambda c: c.id)]
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def suggest(registry: ClauseRegistry, cid: str) -> str | None:
    """The registered clause id a mistyped ``cid`` most likely meant (None: nothing close)."""
    ids = [c.id for c in registry if not c.retired]
    upper = {i.upper(): i for i in ids}
    if cid.upper() in upper:
        return upper[cid.upper()]
    close = difflib.get_close_matches(cid.upper().replace("_", "-"), ids, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_ids(registry: ClauseRegistry, ids: Iterable[str], option: str = "--clause") -> str | None:
    """One line naming the ids that are not in the registry, each with a suggestion where one
    is close (None: all known)."""
    unknown = [c for c in ids if c not in registry]
    if not unknown:
        return None
    hints = [f"{c!r} → did you mean {s}?" for c in unknown if (s := suggest(registry, c))]
    return (f"{option}: unknown clause id(s) {', '.join(unknown)} (not in {registry.path})"
            + (": " + "; ".join(hints) if hints else ""))


def default_clauses_path(rootdir: str | Path | None = None) -> Path | None:
    """Where the registry is: a checkout's ``cases/clauses.toml`` next to the package, the
    copy a wheel ships in ``conformance/_data/``, or ``<rootdir>/cases/clauses.toml``."""
    pkg = Path(__file__).resolve().parent
    candidates = [pkg.parent / "cases" / "clauses.toml", pkg / "_data" / "clauses.toml"]
    if rootdir is not None:
        candidates.append(Path(rootdir) / "cases" / "clauses.toml")
    for c in candidates:
        if c.is_file():
            return c
    return None


def unsupported_reason(clause: Clause, capabilities: frozenset, spec_profiles: frozenset,
                       profile_name: str) -> str | None:
    """Why ``clause`` does not apply to the target, or None when it does."""
    missing = [r for r in clause.requires if r not in capabilities]
    if missing:
        return (f"UNSUPPORTED: {clause.id} requires {', '.join(missing)}, "
                f"which profile {profile_name!r} does not claim")
    if clause.profiles and spec_profiles and not (set(clause.profiles) & set(spec_profiles)):
        return (f"UNSUPPORTED: {clause.id} applies to {', '.join(clause.profiles)}; "
                f"profile {profile_name!r} claims {', '.join(sorted(spec_profiles))}")
    return None


# --- evidence ------------------------------------------------------------------------------

def summarize(evidence: Any, redact: Callable[[str], str] = lambda s: s, limit: int = 400) -> str:
    """A short, key-free line describing ``evidence`` (a Turn, Connection, exception, dict…)."""
    if evidence is None:
        return ""
    try:
        if hasattr(evidence, "summary") and callable(evidence.summary):
            text = evidence.summary()
        elif hasattr(evidence, "status") and hasattr(evidence, "body") and hasattr(evidence, "headers"):
            text = f"HTTP {evidence.status} body={str(evidence.body)[:200]!r}"
        elif hasattr(evidence, "transcript") and hasattr(evidence, "messages"):
            types = [m.get("type", "?") for m in evidence.messages[-5:]]
            text = (f"connection closed={evidence.closed} close_code={evidence.close_code} "
                    f"last events: {', '.join(types) or 'none'}")
        elif isinstance(evidence, BaseException):
            text = f"{type(evidence).__name__}: {evidence}"
        elif isinstance(evidence, (list, tuple)) and evidence and all(hasattr(e, "summary") for e in evidence):
            text = " | ".join(e.summary() for e in evidence)
        elif isinstance(evidence, (dict, list)):
            text = json.dumps(evidence, default=str, separators=(",", ":"))
        else:
            text = str(evidence)
    except Exception as exc:  # noqa: BLE001 - evidence is decoration, never a crash
        text = f"<evidence unprintable: {type(exc).__name__}>"
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- per-case recording --------------------------------------------------------------------

@dataclass
class Observation:
    """One expectation or one monitor finding, resolved against the registry."""

    clause: str
    level: str
    ok: bool
    kind: str                 # "expect" | "violation" | "extension" | "info"
    message: str
    evidence: str = ""
    response_id: str | None = None
    # a monitor finding's frame: (connection number in the case, received-frame index on it)
    frame: tuple[int, int] | None = None

    @property
    def verdict(self) -> str:
        if self.ok:
            return PASS
        if self.kind in ("extension", "info") or self.level == "MAY":
            return INFO
        return FAIL if self.level == "MUST" else NON_STRICT

    def as_dict(self) -> dict:
        return {"clause": self.clause, "level": self.level, "ok": self.ok, "kind": self.kind,
                "verdict": self.verdict, "message": self.message, "evidence": self.evidence,
                "response_id": self.response_id} | (
                    {"frame": {"connection": self.frame[0], "index": self.frame[1]}} if self.frame else {})


@dataclass
class CaseRecorder:
    """Expectations and findings of one case."""

    registry: ClauseRegistry
    clauses: tuple[str, ...] = ()
    redact: Callable[[str], str] = field(default=lambda s: s)
    observations: list[Observation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # harness-level problems → ERROR
    notes: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)       # clauses the monitor applied to frames

    def reached(self) -> set[str]:
        """The clauses this case checked: an expectation was evaluated, the monitor applied
        the clause to frames it received (``checked``), or a finding names the clause."""
        return self.checked | {o.clause for o in self.observations if o.kind in ("expect", "violation")}

    def expect(self, clause_id: str, condition: Any, evidence: Any = None, message: str = "") -> bool:
        """Record that ``clause_id`` held (``condition`` truthy) or not. A failed MUST raises
        ``ClauseViolation`` at once; a failed SHOULD/MAY is recorded and the case goes on."""
        __tracebackhide__ = True
        clause = self.registry[clause_id]
        held = bool(condition)
        summary = summarize(evidence, self.redact)
        msg = self.redact(message or "")
        self.observations.append(Observation(clause.id, clause.level, held, "expect", msg, summary,
                                             getattr(evidence, "response_id", None) if evidence is not None else None))
        if not held and clause.level == "MUST":
            raise ClauseViolation(self.violation_text(clause, msg, summary))
        return held

    def info(self, message: str, clause_id: str = "") -> None:
        """An observation (measurement, curiosity) shown in the report; never a failure."""
        level = self.registry[clause_id].level if clause_id else "MAY"
        self.observations.append(Observation(clause_id, level, False, "info", self.redact(message)))

    def add_findings(self, findings: Iterable[Any], connection: int | None = None) -> None:
        """Monitor findings; ``connection``: the case's connection they came from (its number)."""
        for finding in findings:
            cid = getattr(finding, "clause", "")
            kind = getattr(finding, "kind", "violation") or "violation"
            msg = self.redact(str(getattr(finding, "message", "")))
            if getattr(finding, "pointer", None):
                msg += f" (at {finding.pointer})"
            if cid not in self.registry:
                self.errors.append(f"monitor finding names unknown clause {cid!r}: {msg}")
                continue
            level = self.registry[cid].level
            kind = kind if kind in ("extension", "info") else "violation"  # info: a tolerated observation
            index = getattr(finding, "frame_index", None)
            frame = (connection, index) if connection is not None and index is not None else None
            self.observations.append(Observation(cid, level, False, kind, msg, "",
                                                 getattr(finding, "response_id", None), frame))

    def violation_text(self, clause: Clause, message: str, evidence: str) -> str:
        text = f"[{clause.level}] {clause.id}: {clause.requirement}"
        if message:
            text += f"\n  {message}"
        if evidence:
            text += f"\n  evidence: {evidence}"
        return self.redact(text)

    def verdict(self) -> str:
        if self.errors:
            return ERROR
        worst = PASS
        for o in self.observations:
            v = o.verdict
            if _RANK[v] > _RANK[worst]:
                worst = v
        return worst

    def failures(self, at_least: str = NON_STRICT) -> list[Observation]:
        return [o for o in self.observations if _RANK[o.verdict] >= _RANK[at_least]]

    def failure_text(self, at_least: str = NON_STRICT, limit: int = 8) -> str:
        lines = []
        seen = set()
        for observation in self.failures(at_least):
            key = (observation.clause, observation.message)
            if key in seen:
                continue
            seen.add(key)
            clause = self.registry[observation.clause]
            line = (f"[{clause.level}] {clause.id}: {clause.requirement}\n"
                    f"    {observation.kind}: {observation.message}")
            if observation.evidence:
                line += f"\n    evidence: {observation.evidence}"
            lines.append(line)
        more = len(seen) - limit
        text = "\n".join(lines[:limit]) + (f"\n  ... and {more} more" if more > 0 else "")
        return self.redact(text)


# --- the case currently running (for the module-level expect) ------------------------------

_current: contextvars.ContextVar[CaseRecorder | None] = contextvars.ContextVar("conformance_case", default=None)


def bind(recorder: CaseRecorder | None) -> contextvars.Token:
    return _current.set(recorder)


def unbind(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> CaseRecorder:
    rec = _current.get()
    if rec is None:
        raise RuntimeError("conformance.verdicts.expect() called outside a running conformance case")
    return rec


def expect(clause_id: str, condition: Any, evidence: Any = None, message: str = "") -> bool:
    """Module-level ``expect`` bound to the case that is running (same as the fixture)."""
    __tracebackhide__ = True
    return current().expect(clause_id, condition, evidence, message)


# --- aggregation over cases (certificate clause table) -------------------------------------

# case outcomes whose checks count: the case ran to its end or stopped at a violation
JUDGED = (PASS, FAIL, NON_STRICT, INFO)


def _reached(rec: CaseRecord) -> set[str]:
    """What a record says its case checked (records without ``reached``: its expectations)."""
    return set(rec.reached or ()) | {o["clause"] for o in rec.observations if o["kind"] in ("expect", "violation")}


def outcome(rec: CaseRecord) -> str:
    """How the case really ended: a KNOWN case's own verdict (the baseline only excuses it)."""
    return rec.own_verdict


def not_reached(rec: CaseRecord | dict) -> list[str]:
    """Clauses the case marks but did not check (none for a case that did not run)."""
    rec = caserecord.of(rec)
    if rec.verdict in (UNSUPPORTED, SKIPPED):
        return []
    reached = _reached(rec) if outcome(rec) in JUDGED else set()
    return [c for c in rec.clauses if c not in reached]


def _violated(rec: CaseRecord) -> dict[str, str]:
    """clause -> FAIL / NON-STRICT for what the case violated (any try of a FLAKY case)."""
    out: dict[str, str] = {}
    for o in rec.observations:
        if not o["ok"] and o["verdict"] in (FAIL, NON_STRICT) and o.get("clause"):
            out[o["clause"]] = FAIL if FAIL in (o["verdict"], out.get(o["clause"])) else NON_STRICT
    if FLAKY in (rec.verdict, outcome(rec)):
        for attempt in rec.tries:
            for cid in attempt.failed_clauses:
                out.setdefault(cid, FAIL)
    return out


def clause_verdict(touches: list[tuple[str, str, bool, str | None]]) -> str:
    """The verdict of one clause from what each case did with it.

    ``touches``: one ``(case verdict, its own outcome, reached, violation)`` per case that marks,
    checked or violated the clause; ``violation`` is FAIL/NON-STRICT or None. See
    ``clause_table`` for the rules."""
    plain = [v for cv, _, _, v in touches if v and cv not in (FLAKY, KNOWN)]
    if FAIL in plain:
        return FAIL
    if any(cv == FLAKY for cv, *_ in touches):
        return FLAKY
    if plain:
        return NON_STRICT
    if any(cv == KNOWN and (v or own == FLAKY) for cv, own, _, v in touches):
        return KNOWN
    if any(reached and own in JUDGED for _, own, reached, _ in touches):
        return PASS
    ran = [own for _, own, _, _ in touches if own not in (UNSUPPORTED, SKIPPED)]
    if ran:
        return ERROR if all(own == ERROR for own in ran) else NOT_REACHED
    if touches and all(own == UNSUPPORTED for _, own, _, _ in touches):
        return UNSUPPORTED
    return UNTESTED


def clause_table(registry: ClauseRegistry, records: Iterable[CaseRecord | dict]) -> list[dict]:
    """One row per clause: the cases that mark or checked it, verdict, findings against it.

    A clause is checked ("reached") by a case when an expectation for it was evaluated or the
    monitor applied it to frames the case received (``conformance.reach``). A check counts only
    in a case whose own outcome (a KNOWN case's: the verdict the baseline excused) is judged:
    PASS, FAIL, NON-STRICT or INFO; a case that ended ERROR ("cannot judge", a stalled or
    unreachable target, a harness bug), SKIPPED (slow, perf, budget) or UNSUPPORTED vouches for
    nothing, whatever it evaluated before. A violation counts in any case. First row that applies:

    ============  ==================================================================
    FAIL          a MUST violated in a case that is neither FLAKY nor KNOWN
    FLAKY         a FLAKY case marks, checked or violated it (in any try)
    NON-STRICT    a SHOULD violated in a case that is neither FLAKY nor KNOWN
    KNOWN         violated only in KNOWN cases (or a KNOWN case was FLAKY on it)
    PASS          a judged case checked it, and nothing above applies
    ERROR         the cases that mark or checked it and ran all ended ERROR
    NOT-REACHED   cases mark it and ran, but none checked it (e.g. one stopped at an
                  earlier violation, or the target gave it nothing to check)
    UNSUPPORTED   every case marking it was UNSUPPORTED
    UNTESTED      no case marks it, or only skipped ones (slow, perf, budget)
    RETIRED       the registry retired it (whatever the cases did)
    ============  ==================================================================

    So a clause is PASS only when a case checked it and it held (tests/test_verdicts.py proves
    this with a property test). ``reason`` says in a sentence why a row is not PASS.
    """
    by_clause: dict[str, dict] = {c.id: {"cases": set(), "touches": [], "not_reached": set(),
                                         "findings": [], "recs": []} for c in registry}
    for rec in caserecord.all_of(records):
        marked, reached, violated = set(rec.clauses), _reached(rec), _violated(rec)
        own = outcome(rec)
        for cid in marked | reached | set(violated):
            if cid not in by_clause:
                continue
            info = by_clause[cid]
            info["cases"].add(rec.nodeid)
            info["touches"].append((rec.verdict, own, cid in reached, violated.get(cid)))
            info["recs"].append(rec)
        for cid in not_reached(rec):
            if cid in by_clause:
                by_clause[cid]["not_reached"].add(rec.nodeid)
        for o in rec.observations:
            if o["clause"] in by_clause and not o["ok"]:
                by_clause[o["clause"]]["findings"].append(dict(o, nodeid=rec.nodeid))
    rows = []
    for clause in registry:
        info = by_clause[clause.id]
        verdict = RETIRED if clause.retired else clause_verdict(info["touches"])
        rows.append({
            "id": clause.id, "level": clause.level, "requirement": clause.requirement, "source": clause.source,
            "profiles": list(clause.profiles), "requires": list(clause.requires),
            "cases": sorted(info["cases"]), "verdict": verdict,
            "reason": clause_reason(clause.id, verdict, info["recs"]),
            "not_reached": sorted(info["not_reached"]),
            "findings": info["findings"][:50], "findings_total": len(info["findings"]),
        })
    return rows


def clause_reason(cid: str, verdict: str, recs: list[CaseRecord]) -> str:
    """Why a clause is not PASS, in a sentence ("" for PASS and the violated verdicts, whose
    findings say why)."""
    def names(sel: list[CaseRecord]) -> str:
        ids = sorted({r.nodeid.split("::")[-1] for r in sel})
        return ", ".join(ids[:3]) + (" …" if len(ids) > 3 else "")

    if verdict == ERROR:
        errs = [r for r in recs if outcome(r) == ERROR]
        first = next((m for r in errs for m in r.messages if m), "")
        return (f"cannot judge: {names(errs)} ended ERROR" + (f" ({first[:300]})" if first else "")
                + "; see docs/certification.md on clauses that cannot be judged")
    if verdict == NOT_REACHED:
        ran = [r for r in recs if cid in not_reached(r)]
        stopped = [r for r in ran if outcome(r) in (FAIL, NON_STRICT)]
        said = [o["message"] for r in ran for o in r.observations
                if o["clause"] == cid and o["kind"] == "info" and o["message"]]
        if said:          # the case said why it did not check the clause (e.g. a profile fact)
            return said[0][:240] if said[0].startswith("not checked") else f"not checked: {said[0][:240]}"
        if stopped:
            return f"not checked: {names(stopped)} stopped at an earlier violation; fix the first failure and run again"
        if any(outcome(r) == ERROR for r in ran):
            return f"not checked: {names(ran)} ended ERROR or without checking it"
        return f"not checked: {names(ran)} ran to its end without anything to check for it"
    if verdict == UNTESTED:
        skipped = [r for r in recs if r.verdict == SKIPPED]
        if skipped:
            first = next((m for r in skipped for m in r.messages if m), "skipped")
            return f"not run: {names(skipped)} skipped ({first[:160]})"
        return "no case checks it"
    if verdict == UNSUPPORTED:
        return "the profile does not claim what it requires"
    if verdict == FLAKY:
        return "a case that marks or checked it gave different verdicts on its tries"
    if verdict == KNOWN:
        return "violated only in cases the baseline knows"
    return ""


def coverage(rows: list[dict]) -> dict:
    def cov(sel: list[dict]) -> dict:
        tested = [r for r in sel if r["cases"]]
        judged = [r for r in sel if r["verdict"] in (PASS, FAIL, NON_STRICT)]
        return {"clauses": len(sel), "with_cases": len(tested), "judged": len(judged),
                "ratio": round(len(tested) / len(sel), 4) if sel else 0.0}
    active = [r for r in rows if r["verdict"] != RETIRED]
    out = {"all": cov(active)}
    for level in LEVELS:
        out[level] = cov([r for r in active if r["level"] == level])
    return out
