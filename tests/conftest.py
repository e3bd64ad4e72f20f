import os
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

# Many self-tests start whole suite runs as subprocesses. With PYTHONDONTWRITEBYTECODE set (as on
# many CI images) each of them would redo pytest's assertion rewriting of ~190 modules (about 1 s
# of CPU per run); letting them keep the rewritten bytecode in __pycache__ (git-ignored) saves a
# third of the self-test time.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# tests/ is on sys.path: rootdir-relative imports
from _markers import EXPECTED_SECONDS, SHARED_FIXTURE_MODULES, SUITE_RUNS  # noqa: E402


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n`` (xdist's ``load``) the self-tests are handed out one by one in their order
    (longest first, see below), except that each module of SHARED_FIXTURE_MODULES is one unit,
    so that its module fixture runs once. ``load`` would send chunks of ~190 neighbouring
    tests, all the long ones to one worker. (xdist's own ``loadgroup`` marks do not take
    effect with pytest 9.2, whose node ids xdist 3.8 cannot rewrite.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneByOne(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if Path(module).name in SHARED_FIXTURE_MODULES else nodeid

    config.option.loadscopereorder = False   # keep the longest-first order
    return OneByOne(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SUITE_RUNS:
            item.add_marker(pytest.mark.suite_run)
    # longest first (a stable sort: the rest, and each shared-fixture module, keep their order)
    items.sort(key=_expected_seconds, reverse=True)


def _expected_seconds(item: pytest.Item) -> float:
    nodeid = item.nodeid.removeprefix("tests/")
    return EXPECTED_SECONDS.get(nodeid.split("::")[0], 0) or EXPECTED_SECONDS.get(nodeid, 0)


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

