import os

import pytest

pytest_plugins = ["pytester"]


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
