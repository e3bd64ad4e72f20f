"""Exit codes of a suite run, and the one function that picks a run's code.

The contract every script and workflow relies on (README "Exit codes", docs/nightly.md):
0 CONFORMANT, 1 NONCONFORMANT, 4 USAGE_ERROR, 6 NOT_USABLE, 7 INCOMPLETE; pytest's own 2
(interrupted), 3 (internal error) and 5 (no tests collected) keep their meaning. A run that
tested nothing is never 0. No pytest import: ``exit_code`` is a pure function of the run's
outcome, applied by the plugin at the end of the session (in the controller under xdist).

Rules, first match wins:

=============================================  =================
outcome                                        code
=============================================  =================
the preflight found the target not usable      NOT_USABLE (6)
pytest: interrupted / internal / usage error   pytest's code
no conformance case ran                        pytest's code
a FAIL or FLAKY case, a STALE baseline entry,  NONCONFORMANT (1)
a NON-STRICT case under --strict
an ERROR case ("cannot judge", stalled)        INCOMPLETE (7)
no case judged anything (all skipped or        INCOMPLETE (7)
unsupported)
pytest says a (non-case) test failed           NONCONFORMANT (1)
otherwise (PASS, KNOWN, NON-STRICT, INFO ...)  CONFORMANT (0)
=============================================  =================
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

from conformance.vocabulary import ERROR, FAIL, FLAKY, INFO, KNOWN, NON_STRICT, PASS


class ExitCode(IntEnum):
    CONFORMANT = 0
    NONCONFORMANT = 1
    USAGE_ERROR = 4         # pytest's own USAGE_ERROR: bad option or unusable user file
    NOT_USABLE = 6
    INCOMPLETE = 7


# pytest's codes that say the run itself did not finish normally: never overridden
PYTEST_INTERRUPTED, PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR, PYTEST_NO_TESTS = 2, 3, 4, 5
_PYTEST_KEEPS = (PYTEST_INTERRUPTED, PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR)

_NONCONFORMANT = frozenset({FAIL, FLAKY})
_CANNOT_JUDGE = frozenset({ERROR})
# a case with one of these verdicts ran against the target and judged something
_JUDGED = frozenset({PASS, FAIL, FLAKY, KNOWN, NON_STRICT, INFO, ERROR})


def exit_code(verdicts: Iterable[str], *, stale: int = 0, strict: bool = False, usable: bool = True,
              pytest_status: int = 0) -> int:
    """The run's exit code from its case verdicts (one per case), the number of STALE
    baseline entries, ``--strict``, whether the preflight found the target usable, and the
    status pytest would exit with."""
    if not usable:
        return ExitCode.NOT_USABLE
    if int(pytest_status) in _PYTEST_KEEPS:
        return int(pytest_status)
    seen = list(verdicts)
    if not seen:
        return int(pytest_status)
    kinds = set(seen)
    if kinds & _NONCONFORMANT or stale > 0 or (strict and NON_STRICT in kinds):
        return ExitCode.NONCONFORMANT
    if kinds & _CANNOT_JUDGE or not kinds & _JUDGED:
        return ExitCode.INCOMPLETE
    if int(pytest_status) == ExitCode.NONCONFORMANT:
        return ExitCode.NONCONFORMANT
    return ExitCode.CONFORMANT


def name(code: int) -> str:
    """The contract's name of ``code`` (pytest's own codes by their pytest names)."""
    try:
        return ExitCode(code).name
    except ValueError:
        return {PYTEST_INTERRUPTED: "INTERRUPTED", PYTEST_INTERNAL_ERROR: "INTERNAL_ERROR",
                PYTEST_NO_TESTS: "NO_TESTS_COLLECTED"}.get(int(code), str(code))
