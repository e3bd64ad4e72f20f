"""The self-test markers of tests/_markers.py name files that exist, so that a renamed module
cannot slip from `make selftest` into `make check` unnoticed."""

from pathlib import Path

from _markers import SUITE_RUNS

TESTS = Path(__file__).resolve().parent


def test_every_suite_run_module_exists() -> None:
    missing = sorted(name for name in SUITE_RUNS if not (TESTS / name).is_file())
    assert not missing, f"tests/conftest.py SUITE_RUNS names files that do not exist: {missing}"
