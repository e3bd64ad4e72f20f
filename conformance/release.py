"""What pins the suite that judged a run, for the certificate (docs/certificate.md "Run and
suite", docs/certification.md steps 7-8): the release (``conformance.__version__``,
CHANGELOG.md), the git commit when the suite runs from a checkout, and the run's command line
and the options that shape verdicts, the key redacted. No pytest import: the plugin hands in
its settings."""

from __future__ import annotations

import functools
import hashlib
import shlex
import subprocess
from pathlib import Path
from typing import Any, Callable, Sequence

import conformance
from conformance.target import REDACTED

CHECKOUT = Path(conformance.__file__).resolve().parent.parent
GIT_TIMEOUT_S = 5.0
# options whose value is a secret whatever it looks like (the key also goes through redact())
SECRET_OPTIONS = ("--api-key",)


def suite_version() -> str:
    return conformance.__version__


def _git(*args: str, root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_S, check=True).stdout.strip()


@functools.lru_cache(maxsize=8)
def suite_git(root: Path = CHECKOUT) -> dict | None:
    """``{"commit", "dirty"}`` when the suite runs from a git checkout of itself (``dirty``: a
    tracked file differs from the commit, so the commit does not pin it); None for an
    installed package, without git, or when git fails."""
    if not (root / ".git").exists():
        return None
    try:
        top = _git("rev-parse", "--show-toplevel", root=root)
        if Path(top).resolve() != root.resolve():
            return None    # the package sits inside someone else's repository
        commit = _git("rev-parse", "HEAD", root=root)
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", root=root))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def command_line(args: Sequence[str], redact: Callable[[str], str]) -> str:
    """``pytest ARGS`` as the user gave them (``config.invocation_params.args``), the value of
    every secret option and any other occurrence of the key replaced."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif arg in SECRET_OPTIONS:
            out.append(arg)
            hide_next = True
        elif arg.split("=", 1)[0] in SECRET_OPTIONS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=" + REDACTED)
        else:
            out.append(redact(arg))
    return shlex.join(["pytest", *out])


def file_sha256(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def run_block(*, args: Sequence[str], redact: Callable[[str], str], options: dict[str, Any],
              baseline: str | Path | None, profile: dict[str, str]) -> dict:
    """The certificate's ``run``: the command line and what shaped the verdicts."""
    return {
        "command": command_line(args, redact),
        "options": options | {
            "profile": {"name": profile["profile"], "source": profile["profile_source"],
                        "sha256": profile["profile_sha256"]},
            "baseline": None if baseline is None else {"file": Path(baseline).name,
                                                        "sha256": file_sha256(baseline)},
        },
    }
