"""Root conftest: a checkout works like an installed suite.

An installed suite (``pip install -e .`` or a wheel) gets the plugin through its ``pytest11``
entry point ``responses_ws_conformance``. A bare checkout (the package not installed, e.g.
``PYTHONPATH=. pytest``, or ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) has no entry point to load:
this file registers ``conformance.plugin`` then, and only then, so the plugin is never
registered twice. ``testpaths`` in pyproject.toml makes a bare ``pytest`` (with or without
``--target``) collect ``cases/`` only; the self-tests run with ``pytest tests``.
"""

import sys

# pytest imports the entry-point plugins (and any ``-p`` plugins) before this file: when the
# plugin module is already loaded, it is registered
pytest_plugins = [] if "conformance.plugin" in sys.modules else ["conformance.plugin"]
