"""The verdict vocabulary: every verdict word the suite writes, declared once (issue 16 item 3).

A verdict names what a case, a clause, a run (the certificate's ``overall``) or a baseline
entry came to. Here each word is spelled once, with everything the rest of the suite derives
from it: the pytest outcome of a case that ends so, the letter and word pytest prints for it,
its tier in ``diff`` (a move to a worse tier is a regression), its rank as a run's ``overall``,
and its colours (badge, HTML report, terminal). The rules that *choose* a verdict live where
they are (``conformance.verdicts`` for cases and clauses, ``conformance.retry`` for FLAKY,
``conformance.baseline`` for KNOWN/STALE/EXPIRED, ``conformance.report`` for ``overall``);
they use the names below, never the strings (``tests/test_vocabulary.py`` checks this).

Data only: no pytest import, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

PASS = "PASS"                   # nothing violated / the clause was checked and held
FAIL = "FAIL"                   # a MUST clause violated
NON_STRICT = "NON-STRICT"       # only SHOULD clauses violated (FAIL under --strict)
INFO = "INFO"                   # only MAY observations and extensions
UNSUPPORTED = "UNSUPPORTED"     # the profile does not claim what the clause requires
ERROR = "ERROR"                 # could not judge (unreachable, stalled, harness or case bug)
SKIPPED = "SKIPPED"             # not run (slow, perf, budget)
FLAKY = "FLAKY"                 # tries of one case gave different verdicts (conformance.retry)
KNOWN = "KNOWN"                 # a deviation the baseline accepts (conformance.baseline)
STALE = "STALE"                 # a baseline entry whose case or clause passes now
EXPIRED = "EXPIRED"             # a baseline entry past its ``until`` date: ignored
UNUSED = "UNUSED"               # a baseline entry nothing it covers matched
NOT_REACHED = "NOT-REACHED"     # clause: cases mark it and ran, none got to check it
UNTESTED = "UNTESTED"           # clause: no case marks it, or only skipped ones
RETIRED = "RETIRED"             # clause: the registry retired it
NOT_USABLE = "NOT-USABLE"       # overall: the preflight found the target untestable
ABSENT = "(absent)"             # diff: the clause or case is missing from one certificate
VerdictWord = str               # the type of a field that holds one of the words above

# what a verdict applies to
CASE, CLAUSE, OVERALL, ENTRY, DIFF = "case", "clause", "overall", "baseline entry", "diff"

# diff tiers, best first (docs/nightly.md defends the order): a move to a higher tier is a
# regression, to a lower one an improvement, inside a tier a change
HELD, KNOWN_DEVIATION, SHOULD_VIOLATED = "held", "known deviation", "SHOULD violated"
DOES_NOT_APPLY, NOT_JUDGED, UNSTABLE, MUST_VIOLATED = "does not apply", "not judged", "unstable", "MUST violated"
TIER_NAMES = (HELD, KNOWN_DEVIATION, SHOULD_VIOLATED, DOES_NOT_APPLY, NOT_JUDGED, UNSTABLE, MUST_VIOLATED)

_RED, _YELLOW, _PURPLE = {"red": True}, {"yellow": True}, {"purple": True}


@dataclass(frozen=True)
class Verdict:
    """One verdict word and what the suite derives from it (None: does not apply)."""

    name: str
    scopes: tuple[str, ...]
    tier: str | None                    # diff tier (one of TIER_NAMES; None: not a clause/case verdict)
    outcome: str | None = None          # pytest outcome of a case ending so
    letter: str | None = None           # pytest's progress letter, where pytest has none of its own
    letter_for: tuple[str, ...] = ()    # report outcomes the letter is shown for
    word_markup: dict | None = None     # colour of the word in ``-v`` (None: pytest's for the outcome)
    markup: dict | None = None          # colour in the end-of-run summary (conformance.report.terminal)
    overall_rank: int | None = None     # as a run's ``overall``, best first
    badge: str | None = None            # badge colour of a run whose ``overall`` it is
    html: str | None = None             # colour in the HTML report
    order: int = 9                      # position in the HTML clause table, worst first


# best first: the order of the diff's tiers and, inside a tier, of its error messages
_TABLE = (
    Verdict(PASS, (CASE, CLAUSE, OVERALL), HELD, "passed", overall_rank=0, badge="#4c1",
            html="#1a7f37", order=6),
    Verdict(INFO, (CASE,), HELD, "passed", html="#0969da"),
    Verdict(KNOWN, (CASE, CLAUSE, OVERALL, ENTRY), KNOWN_DEVIATION, "passed", "K",
            ("passed", "failed", "skipped"), _YELLOW, _YELLOW, overall_rank=0, badge="#9a6700",
            html="#6e7781", order=3),
    Verdict(STALE, (OVERALL, ENTRY), None, overall_rank=1, badge="#fe7d37", html="#9a6700"),
    Verdict(NON_STRICT, (CASE, CLAUSE, OVERALL), SHOULD_VIOLATED, "passed", "N", ("passed",), _YELLOW, _YELLOW,
            overall_rank=2, badge="#dfb317", html="#9a6700", order=2),
    Verdict(UNSUPPORTED, (CASE, CLAUSE), DOES_NOT_APPLY, "skipped", html="#6e7781", order=8),
    Verdict(RETIRED, (CLAUSE,), DOES_NOT_APPLY, html="#8c959f", order=9),
    Verdict(NOT_REACHED, (CLAUSE,), NOT_JUDGED, html="#bc4c00", order=5),
    Verdict(UNTESTED, (CLAUSE,), NOT_JUDGED, html="#8c959f", order=7),
    Verdict(ERROR, (CASE, CLAUSE, OVERALL), NOT_JUDGED, "error", "E", ("failed",), None, _PURPLE,
            overall_rank=5, badge="#8250df", html="#8250df", order=4),
    Verdict(SKIPPED, (CASE,), NOT_JUDGED, "skipped", html="#6e7781"),
    Verdict(ABSENT, (DIFF,), NOT_JUDGED),
    Verdict(EXPIRED, (ENTRY,), None),
    Verdict(UNUSED, (ENTRY,), None),
    Verdict(NOT_USABLE, (OVERALL,), None, overall_rank=6, badge="#9f9f9f"),
    Verdict(FLAKY, (CASE, CLAUSE, OVERALL), UNSTABLE, "failed", "Y", ("failed",), _YELLOW, _YELLOW,
            overall_rank=3, badge="#fe7d37", html="#bc4c00", order=1),
    Verdict(FAIL, (CASE, CLAUSE, OVERALL), MUST_VIOLATED, "failed", markup=_RED, overall_rank=4,
            badge="#e05d44", html="#cf222e", order=0),
)
VERDICTS: dict[str, Verdict] = {v.name: v for v in _TABLE}

# the certificate's ``counts`` (in this order, as certificates have always listed them)
CASE_VERDICTS = (PASS, FAIL, FLAKY, KNOWN, NON_STRICT, INFO, UNSUPPORTED, ERROR, SKIPPED)
CLAUSE_VERDICTS = (PASS, FAIL, FLAKY, KNOWN, NON_STRICT, ERROR, NOT_REACHED, UNSUPPORTED, UNTESTED)


def of(scope: str) -> tuple[str, ...]:
    """The verdicts that apply to ``scope`` (CASE, CLAUSE, OVERALL, ENTRY, DIFF), best first."""
    return tuple(v.name for v in _TABLE if scope in v.scopes)


# diff: (tier name, verdicts in it), best first; the tiers rank clause and case verdicts
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (tier, tuple(v.name for v in _TABLE if v.tier == tier)) for tier in TIER_NAMES)
OVERALL_RANK = {v.name: v.overall_rank for v in sorted(_TABLE, key=lambda v: v.overall_rank or 0)
                if v.overall_rank is not None}
BADGE_COLOURS = {v.name: v.badge for v in _TABLE if v.badge}
HTML_COLOURS = {v.name: v.html for v in _TABLE if v.html}
HTML_ORDER = {v.name: v.order for v in _TABLE}
MARKUP = {v.name: v.markup for v in _TABLE if v.markup}


def teststatus(verdict: str, report_outcome: str) -> tuple[str, str, object] | None:
    """pytest's (category, letter, word) for a case's call report, or None for pytest's own."""
    row = VERDICTS.get(verdict)
    if row is None or row.letter is None or report_outcome not in row.letter_for:
        return None
    return row.outcome, row.letter, (row.name, row.word_markup) if row.word_markup else row.name
