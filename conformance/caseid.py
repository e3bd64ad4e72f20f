"""Case ids that do not depend on where pytest puts its root directory (issue 15 item 6).

pytest names a test file relative to its rootdir, and finds the rootdir from the command
line before the suite's options are known: the value of ``--target-config /elsewhere/x.toml``
(or ``--alluredir DIR``, ``--baseline FILE``) given with a space looks like a path argument,
and the rootdir moves to a common ancestor of it and the checkout, so every id gains a
``repo/cases/...`` prefix. Certificates, JUnit, allure and baselines key on these ids, so a
baseline would stop matching from one night to the next.

The suite therefore names a case module by its path from the innermost ``cases`` folder
that holds it (``cases/test_lanes.py``), whatever the rootdir and the current directory: the
plugin gives that id to the module when pytest collects it, so the node ids of its cases
(and everything written from them) are the same in every run. With the checkout as rootdir
this is exactly what pytest itself would say. A module outside any ``cases`` folder keeps
pytest's own id.
"""

from __future__ import annotations

from pathlib import Path

CASES_DIR = "cases"


def module_id(path: Path) -> str | None:
    """``cases/<path below the innermost cases folder>`` for a module in one, else None."""
    parts = Path(path).parts
    folders = parts[:-1]
    if CASES_DIR not in folders:
        return None
    start = len(folders) - 1 - folders[::-1].index(CASES_DIR)
    return "/".join(parts[start:])
