"""Small items of issue 15 point 13: clause id suggestions for a mistyped ``--clause``, and
``allure-results/`` kept out of git. (``--list-defects | head``: tests/server/test_server_cli.py;
the oversize frame's NOT-REACHED reason: tests/test_clause_aggregation.py.)"""

from __future__ import annotations

from pathlib import Path

from conformance import verdicts as V

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = V.ClauseRegistry.load(V.default_clauses_path())


def test_suggest_a_clause_id():
    assert V.suggest(REGISTRY, "QUEUE-FIFI") == "QUEUE-FIFO"
    assert V.suggest(REGISTRY, "queue-fifo") == "QUEUE-FIFO"          # case
    assert V.suggest(REGISTRY, "SEQ_MONOTONIC") == "SEQ-MONOTONIC"    # underscores
    assert V.suggest(REGISTRY, "NOTHING-LIKE-IT-AT-ALL") is None


def test_unknown_ids_message_is_one_line():
    assert V.unknown_ids(REGISTRY, ["QUEUE-FIFO", "TURN-TEXT"]) is None
    msg = V.unknown_ids(REGISTRY, ["QUEUE-FIFI", "ZZZZZZ"])
    assert "\n" not in msg and msg.startswith("--clause: unknown clause id(s) QUEUE-FIFI, ZZZZZZ")
    assert "'QUEUE-FIFI' → did you mean QUEUE-FIFO?" in msg and "ZZZZZZ' →" not in msg


def test_allure_results_ignored():
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "allure-results/" in lines
