"""Reading the files a user hands the suite: the clause registry, a profile, a baseline, a
certificate. One message for each way a read can fail, always naming the file, so every
reader reports bad input alike and loses nothing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Callable

_PARSERS: dict[str, tuple[Callable[[str], Any], type[Exception], str]] = {
    "TOML": (tomllib.loads, tomllib.TOMLDecodeError, "not valid TOML"),
    "JSON": (json.loads, ValueError, "not JSON"),
}


def read_document(path: str | Path, fmt: str, error: Callable[[str], Exception],
                  what: str = "file") -> Any:
    """Parse ``path`` as ``fmt`` ("TOML" or "JSON"); on failure raise ``error(message)``,
    where the message starts with the path ("acme.toml: not valid TOML: ...")."""
    parse, parse_error, bad = _PARSERS[fmt]
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return parse(text)
    except parse_error as exc:
        raise error(f"{path}: {bad}: {exc}") from None
