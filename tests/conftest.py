import os

import pytest

pytest_plugins = ["pytester"]

# Many self-tests start whole suite runs as subprocesses. With PYTHONDONTWRITEBYTECODE set (as on
# many CI images) each of them would redo pytest's assertion rewriting of ~190 modules (about 1 s
# of CPU per run); letting them keep the rewritten bytecode in __pycache__ (git-ignored) saves a
# third of the self-test time.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from _markers import SUITE_RUNS  # noqa: E402  (tests/ is on sys.path: rootdir-relative imports)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SUITE_RUNS:
            item.add_marker(pytest.mark.suite_run)


@pytest.fixture(autouse=True)
def _quiet_rewrite_warning(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root conftest puts the checkout on sys.path, where ``make install`` left
    ``responses_ws_conformance.egg-info``: pytester's in-process runs then find the package a
    second time and warn that the already imported ``conformance`` cannot be rewritten. The
    warning is about this outer process, not the run under test; it would only add to the
    warning counts the self-tests check. (pytester clears PYTEST_ADDOPTS, so set it after.)"""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
        opts = os.environ.get("PYTEST_ADDOPTS", "")
        monkeypatch.setenv("PYTEST_ADDOPTS", f"{opts} -W ignore::pytest.PytestAssertRewriteWarning".strip())
