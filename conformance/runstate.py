"""State shared by the processes of one run (the controller and its pytest-xdist workers):
small JSON files in the run's temporary directory, named after the run id the controller
hands to every worker, read and written under an exclusive lock. No pytest import here."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def run_dir(run_id: str) -> Path:
    """The run's private temporary directory (shared by the xdist workers of one run)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)
    return Path(tempfile.gettempdir()) / f"responses-ws-conformance-{safe}"


def read_json(path: Path, default: dict) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else dict(default)
    except (OSError, ValueError):
        return dict(default)


@contextmanager
def locked_json(path: Path, default: dict) -> Iterator[dict]:
    """Read ``path`` under an exclusive lock; what the block leaves in the dict is written back
    (atomically, and only if it changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = read_json(path, default)
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(state), encoding="utf-8")
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove(path: Path) -> None:
    """Remove a state file, its lock, and the run directory once it is empty."""
    for file in (path, path.with_suffix(".lock")):
        try:
            file.unlink()
        except OSError:
            pass
    try:
        path.parent.rmdir()
    except OSError:
        pass
