"""What one case produced: its verdict, clauses, messages, findings, usage, tries and transcript,
as one typed record (issue 16 item 3; docs/design.md "Reports", docs/certificate.md).

``conformance.casereport`` builds a :class:`CaseRecord` at a case's teardown; the certificate,
baseline, JUnit, allure, the terminal summary and ``diff`` read its attributes, never its keys.
A record has two JSON forms:

=============  ===================================================================================
``to_json``    the case's entry in ``certificate.json`` (``schemas/certificate.json`` ``$defs/case``):
               failing observations as ``findings``, the transcript as its file's path
``to_dict``    the whole record (every observation, the transcript text, surface, perf, ...): what
               an xdist worker sends to the controller on the teardown report, what the proxy builds
=============  ===================================================================================

``from_json`` reads either form, and certificates written by earlier versions of the suite: a
missing key gets its default, an unknown key is kept in ``extra`` (never a crash). A dict with an
``observations`` key is the whole record; otherwise it is a certificate entry.

Data only: no pytest import, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from conformance import vocabulary

# the keys of a certificate entry, in the order the certificate writes them
_CERTIFICATE_KEYS = ("nodeid", "clauses", "verdict", "messages", "duration_s", "not_reached", "usage", "findings",
                     "tries", "known", "transcript")
# the keys of the whole record (to_dict) beyond those
_RECORD_KEYS = ("reached", "observations", "connections", "blocked", "surface", "retried_in_place", "perf")
MAX_FINDINGS = 50       # failing observations a certificate entry carries (schemas/certificate.json)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, (list, tuple)) else ()


def _list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def _mapping(value: Any) -> dict:
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class TryRecord:
    """One try of a case run with ``--retries``."""

    verdict: vocabulary.VerdictWord
    messages: tuple[str, ...] = ()
    failed_clauses: tuple[str, ...] = ()
    transient: str | None = None      # the transient reason this try ended ERROR for (its verdict does not count)
    backoff_s: float | None = None    # seconds waited before the next try

    def to_json(self) -> dict:
        out: dict = {"verdict": self.verdict, "messages": list(self.messages),
                     "failed_clauses": list(self.failed_clauses)}
        if self.transient is not None:
            out["transient"] = self.transient
        if self.backoff_s is not None:
            out["backoff_s"] = self.backoff_s
        return out

    @classmethod
    def from_json(cls, data: Any) -> TryRecord:
        data = _mapping(data)
        return cls(verdict=str(data.get("verdict", vocabulary.ERROR)), messages=_strings(data.get("messages")),
                   failed_clauses=_strings(data.get("failed_clauses")), transient=data.get("transient"),
                   backoff_s=data.get("backoff_s"))


@dataclass(frozen=True)
class KnownRecord:
    """A KNOWN case: its verdict before the baseline, the baseline entries (1-based) that matched
    and their reasons."""

    verdict: vocabulary.VerdictWord
    entries: tuple[int, ...] = ()
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "entries": list(self.entries), "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, data: Any) -> KnownRecord | None:
        if not isinstance(data, dict) or not data:
            return None
        entries = data.get("entries")
        return cls(verdict=str(data.get("verdict") or vocabulary.FAIL),
                   entries=tuple(n for n in entries if isinstance(n, int)) if isinstance(entries, list) else (),
                   reasons=_strings(data.get("reasons")))


@dataclass(frozen=True)
class CaseRecord:
    """What one case produced (the fields of a certificate entry, then those only a run has)."""

    nodeid: str
    verdict: vocabulary.VerdictWord                 # one of vocabulary.CASE_VERDICTS
    clauses: tuple[str, ...] = ()                   # the clauses the case marks
    messages: tuple[str, ...] = ()
    duration_s: float = 0.0
    not_reached: tuple[str, ...] = ()               # marked but not checked (verdicts.not_reached)
    usage: dict = field(default_factory=dict)       # the case's share of the run's usage meter
    # every observation as ``verdicts.Observation.as_dict`` (from a certificate: its findings only)
    observations: tuple[dict, ...] = ()
    tries: tuple[TryRecord, ...] = ()
    known: KnownRecord | None = None
    transcript: str = ""                            # the text (a run's record, on a non-pass)
    transcript_path: str = ""                       # its file in the report directory (certificate)
    reached: tuple[str, ...] | None = None          # clauses checked (None: not recorded, e.g. a certificate)
    connections: int = 0
    blocked: bool = False                           # the target's safety system blocked it (§3.10)
    surface: dict | None = None                     # conformance.drift's surface of its connections
    retried_in_place: tuple[str, ...] = ()          # reasons creates were sent again on their connection
    perf: dict | None = None
    extra: dict = field(default_factory=dict)       # keys this version does not know, kept as read

    # --- what readers derive -------------------------------------------------------------

    @property
    def own_verdict(self) -> vocabulary.VerdictWord:
        """How the case really ended: a KNOWN case's verdict before the baseline excused it."""
        if self.verdict == vocabulary.KNOWN:
            return self.known.verdict if self.known is not None else vocabulary.FAIL
        return self.verdict

    @property
    def failing(self) -> list[dict]:
        """Every failing observation (from a certificate: the findings it lists)."""
        return [obs for obs in self.observations if not obs.get("ok")]

    @property
    def findings(self) -> list[dict]:
        """The failing observations, as a certificate lists them (at most MAX_FINDINGS)."""
        return self.failing[:MAX_FINDINGS]

    @property
    def known_entries(self) -> tuple[int, ...]:
        return self.known.entries if self.known is not None else ()

    @property
    def name(self) -> str:
        """The case's name without its file (the last part of the node id)."""
        return self.nodeid.rpartition("::")[2]

    def failed_in_tries(self) -> set[str]:
        """The clauses any try failed."""
        return {clause for attempt in self.tries for clause in attempt.failed_clauses}

    def transient_reasons(self) -> list[str]:
        """Why tries were run again for a transient refusal, and creates sent again in place."""
        return [attempt.transient for attempt in self.tries if attempt.transient] + list(self.retried_in_place)

    # --- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The certificate's entry for the case (schemas/certificate.json ``$defs/case``)."""
        out = {"nodeid": self.nodeid, "clauses": list(self.clauses), "verdict": self.verdict,
               "messages": list(self.messages), "duration_s": self.duration_s,
               "not_reached": list(self.not_reached), "usage": dict(self.usage), "findings": self.findings}
        if self.tries:
            out["tries"] = [attempt.to_json() for attempt in self.tries]
        if self.known is not None:
            out["known"] = self.known.to_json()
        if self.transcript_path:
            out["transcript"] = self.transcript_path
        return out

    def to_dict(self) -> dict:
        """The whole record, JSON-able (``from_json`` reads it back unchanged)."""
        out = self.to_json()
        del out["findings"]
        out.pop("transcript", None)
        out |= {"reached": None if self.reached is None else list(self.reached),
                "observations": [dict(obs) for obs in self.observations], "transcript": self.transcript,
                "transcript_path": self.transcript_path, "connections": self.connections, "blocked": self.blocked,
                "surface": self.surface, "retried_in_place": list(self.retried_in_place), "perf": self.perf}
        return out | self.extra

    @classmethod
    def from_json(cls, data: Any) -> CaseRecord:
        """A record from a certificate entry (any version) or from ``to_dict``; tolerant."""
        data = _mapping(data)
        whole = "observations" in data
        observations = data.get("observations") if whole else data.get("findings")
        reached = data.get("reached")
        known = KnownRecord.from_json(data.get("known"))
        transcript = data.get("transcript") if isinstance(data.get("transcript"), str) else ""
        duration = data.get("duration_s")
        return cls(
            nodeid=str(data.get("nodeid", "")),
            verdict=str(data.get("verdict") or vocabulary.ERROR),     # never PASS for what says nothing
            clauses=_strings(data.get("clauses")),
            messages=_strings(data.get("messages")),
            duration_s=duration if isinstance(duration, (int, float)) else 0.0,
            not_reached=_strings(data.get("not_reached")),
            usage=_mapping(data.get("usage")),
            observations=tuple(obs for obs in observations if isinstance(obs, dict))
            if isinstance(observations, list) else (),
            tries=tuple(TryRecord.from_json(attempt) for attempt in _list(data.get("tries"))
                        if isinstance(attempt, dict)),
            known=known,
            transcript=transcript if whole else "",
            transcript_path=str(data.get("transcript_path") or "") if whole else transcript,
            reached=_strings(reached) if isinstance(reached, (list, tuple)) else None,
            connections=data.get("connections") if isinstance(data.get("connections"), int) else 0,
            blocked=bool(data.get("blocked")),
            surface=data.get("surface") if isinstance(data.get("surface"), dict) else None,
            retried_in_place=_strings(data.get("retried_in_place")),
            perf=data.get("perf") if isinstance(data.get("perf"), dict) else None,
            extra={key: value for key, value in data.items()
                   if key not in _CERTIFICATE_KEYS + _RECORD_KEYS + ("transcript_path",)},
        )


def of(record: CaseRecord | dict) -> CaseRecord:
    """``record`` as a CaseRecord: a dict (either JSON form) is read with ``from_json``."""
    return record if isinstance(record, CaseRecord) else CaseRecord.from_json(record)


def all_of(records: Iterable[CaseRecord | dict]) -> list[CaseRecord]:
    """Every record as a CaseRecord (see ``of``)."""
    return [of(record) for record in records]


def by_nodeid(records: Iterable[CaseRecord]) -> list[CaseRecord]:
    """The records sorted by node id (the order of a certificate's ``cases``)."""
    return sorted(records, key=lambda record: record.nodeid)
