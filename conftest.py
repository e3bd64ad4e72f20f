"""Root conftest: a checkout works like an installed suite, and a bare ``pytest`` at the root
runs the conformance cases only.

An installed suite (``pip install -e .`` or a wheel) gets the plugin through its ``pytest11``
entry point ``responses_ws_conformance``. A bare checkout (the package not installed, e.g.
``PYTHONPATH=. pytest``, or ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) has no entry point to load:
this file registers ``conformance.plugin`` then, and only then, so the plugin is never
registered twice.

``testpaths`` in pyproject.toml makes a bare ``pytest`` (with or without ``--target``)
collect ``cases/``; the self-tests run with ``pytest tests``. pytest skips ``testpaths`` when
it takes the value of an option for a path (``--alluredir /existing/dir`` outside the
checkout becomes the root directory); ``pytest_ignore_collect`` keeps such a run to
``cases/`` too.
"""

import sys
from pathlib import Path

import pytest

# pytest imports the entry-point plugins (and any ``-p`` plugins) before this file: when the
# plugin module is already loaded, it is registered
pytest_plugins = [] if "conformance.plugin" in sys.modules else ["conformance.plugin"]

_ROOT = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # no path was given, and pytest collects the whole invocation directory: only cases/ here
    if (config.args_source is pytest.Config.ArgsSource.INVOCATION_DIR and collection_path.parent == _ROOT
            and collection_path.is_dir() and collection_path.name != "cases"):
        return True
    return None
