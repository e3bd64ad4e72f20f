"""The verdict vocabulary (conformance/vocabulary.py, issue 16 item 3): every verdict word is
declared there once; no other module of the package spells one as a string literal."""

from __future__ import annotations

import ast
from pathlib import Path

from conformance import diff, exitcodes, report, vocabulary
from conformance.report import allure as allure_report
from conformance.report import badge, html, terminal

PACKAGE = Path(vocabulary.__file__).resolve().parent
# Python logging level names the reference server takes on its command line and in its config
LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
LOG_LEVEL_FILES = {"server/__main__.py", "server/config.py"}


def _literals(path: Path, rel: str) -> list[tuple[int, str]]:
    """(line, text) of the string constants in ``path`` that are verdict words, outside
    ``__all__`` (which names Python names, not verdicts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            exported |= {id(n) for n in ast.walk(node.value)}
    allowed = LOG_LEVELS if rel in LOG_LEVEL_FILES else set()
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in vocabulary.VERDICTS
            and id(node) not in exported and node.value not in allowed]


def test_no_verdict_literal_outside_the_vocabulary():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
             for path in sorted(PACKAGE.rglob("*.py")) if path != Path(vocabulary.__file__).resolve()
             for line, text in _literals(path, path.relative_to(PACKAGE).as_posix())]
    assert not found, "verdict words spelled outside conformance/vocabulary.py:\n" + "\n".join(found)


def test_the_scan_finds_a_literal(tmp_path):
    """The check above can fail: a module spelling a verdict is found."""
    module = tmp_path / "probe.py"
    module.write_text('X = "FLAKY"\n__all__ = ["INFO"]\nLEVEL = "WARNING"\n', encoding="utf-8")
    assert _literals(module, "probe.py") == [(1, "FLAKY")]
    module.write_text('LEVEL = "ERROR"\n', encoding="utf-8")
    assert _literals(module, "server/config.py") == [] and _literals(module, "report/x.py") == [(1, "ERROR")]


def test_every_verdict_once_with_what_is_derived():
    names = [verdict.name for verdict in vocabulary.VERDICTS.values()]
    assert len(names) == len(set(names))
    constants = {value for key, value in vars(vocabulary).items()
                 if key.isupper() and isinstance(value, str) and value in vocabulary.VERDICTS}
    assert constants == set(vocabulary.VERDICTS)
    assert set(vocabulary.CASE_VERDICTS) == set(vocabulary.of(vocabulary.CASE))
    assert set(vocabulary.CLAUSE_VERDICTS) | {vocabulary.RETIRED} == set(vocabulary.of(vocabulary.CLAUSE))
    for verdict in vocabulary.CASE_VERDICTS:     # every case verdict has a pytest outcome and a diff tier
        row = vocabulary.VERDICTS[verdict]
        assert row.outcome in ("passed", "failed", "skipped", "error") and row.tier in vocabulary.TIER_NAMES
    for verdict in vocabulary.of(vocabulary.OVERALL):   # every overall has a rank and a badge colour
        assert verdict in vocabulary.OVERALL_RANK and verdict in vocabulary.BADGE_COLOURS


def test_users_take_their_tables_from_the_vocabulary():
    assert diff.TIERS is vocabulary.TIERS and diff.OVERALL_RANK is vocabulary.OVERALL_RANK
    assert report.CASE_VERDICTS is vocabulary.CASE_VERDICTS
    assert badge.GREEN == vocabulary.BADGE_COLOURS[vocabulary.PASS]
    assert all(badge._COLORS[v] == vocabulary.BADGE_COLOURS[v] for v in badge._COLORS)
    assert html.HTML_COLOURS is vocabulary.HTML_COLOURS and terminal.MARKUP is vocabulary.MARKUP
    assert {category["name"].split(":")[0] for category in allure_report.categories()} <= set(vocabulary.VERDICTS)
    assert exitcodes.exit_code([vocabulary.FLAKY]) == exitcodes.ExitCode.NONCONFORMANT


def test_pytest_status_words():
    status = vocabulary.teststatus
    assert status(vocabulary.ERROR, "failed") == ("error", "E", "ERROR")
    assert status(vocabulary.KNOWN, "skipped") == ("passed", "K", ("KNOWN", {"yellow": True}))
    assert status(vocabulary.FLAKY, "failed") == ("failed", "Y", ("FLAKY", {"yellow": True}))
    assert status(vocabulary.NON_STRICT, "passed") == ("passed", "N", ("NON-STRICT", {"yellow": True}))
    assert status(vocabulary.NON_STRICT, "failed") is None      # --strict: pytest's own F
    assert status(vocabulary.FAIL, "failed") is None and status("nonsense", "passed") is None
