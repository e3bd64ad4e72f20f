"""Self-tests of the repository layout (issue 10 item 1): at the root, a bare ``pytest`` and
``pytest --target URL`` collect the conformance cases and nothing else, with the plugin loaded
once, whether it comes from the entry point or from the root ``conftest.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNUSED = "ws://127.0.0.1:9/v1/responses"     # collection opens no socket


def _collect(*args: str, autoload: bool = True) -> list[str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    if autoload:
        env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    else:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [ln for ln in proc.stdout.splitlines() if "::" in ln]


@pytest.fixture(scope="module")
def cases() -> list[str]:
    ids = _collect("cases")
    assert ids and all(i.startswith("cases/") for i in ids)
    return ids


@pytest.mark.parametrize("args", [(), ("--target", UNUSED)], ids=["bare", "target"])
def test_root_collects_only_cases(cases, args):
    assert _collect(*args) == cases


@pytest.mark.parametrize("extra", [(), ("-p", "conformance.plugin")], ids=["conftest", "explicit-p"])
def test_without_the_entry_point_the_root_conftest_registers_the_plugin_once(cases, extra):
    # --target is the plugin's option: accepted only if the plugin is registered; twice would be an error
    assert _collect("--target", UNUSED, *extra, autoload=False) == cases


def test_an_option_naming_an_existing_directory_does_not_widen_the_collection(cases, tmp_path):
    # pytest takes the existing directory for a path argument and then skips testpaths; it
    # may also take the common ancestor of that directory and the checkout for its rootdir,
    # which prefixes every node id (hence the README's advice to write --alluredir=DIR)
    ids = _collect("--alluredir", str(tmp_path), "--report-dir", str(tmp_path))
    assert [i[i.index("cases/"):] for i in ids] == cases


def test_an_option_written_with_equals_keeps_the_node_ids(cases, tmp_path):
    assert _collect(f"--alluredir={tmp_path}", f"--report-dir={tmp_path}") == cases


def test_self_tests_are_collected_from_tests():
    ids = _collect("tests/test_layout.py")
    assert ids and all(i.startswith("tests/") for i in ids)
