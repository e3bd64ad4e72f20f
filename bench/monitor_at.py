"""Load the streaming monitor as it was at a git revision, beside the current one.

``load_monitor_at(rev)`` imports ``conformance/monitor.py`` (or the ``conformance/monitor/``
package) of ``rev`` under a module name of its own, so that the differential fuzz and the
monitor benchmark can run the old and the new monitor side by side in one process.
"""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def load_monitor_at(rev: str) -> ModuleType:
    """The monitor module of ``rev`` (a commit, branch or tag of this repository)."""
    files = _git("ls-tree", "-r", "--name-only", rev, "conformance/monitor.py", "conformance/monitor").split()
    files = [f for f in files if f.endswith(".py")]
    if not files:
        raise SystemExit(f"{rev}: no conformance/monitor.py or conformance/monitor/ in that revision")
    name = "_monitor_at_" + re.sub(r"\W", "_", rev)
    tmp = Path(tempfile.mkdtemp(prefix="monitor_at_"))
    for f in files:
        text = _git("show", f"{rev}:{f}").replace("conformance.monitor", name)
        rel = Path(f).relative_to("conformance")  # monitor.py or monitor/<module>.py
        dest = tmp / (name + ".py" if rel.name == "monitor.py" and len(rel.parts) == 1
                      else Path(name, *rel.parts[1:]))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module(name)
    finally:  # every module of it is imported by now
        sys.path.remove(str(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
