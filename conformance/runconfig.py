"""The commands of a run kept in the ``--target-config`` file: its ``[client]`` and ``[gateway]``
tables (docs/clients.md "Config file"), each key the file's form of one command-line option.

They say what to run, not what the server is, so ``conformance.target.load_profile`` leaves them
out of the profile (and of its hash in the certificate's fingerprint); this module reads them
from the same file and checks them like the profile's own keys: a wrong type, an unknown key or
an empty command is a ``ProfileError`` naming the file and the key. The command line wins over
the file, option by option (``RunTables.pick``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from conformance.files import read_document
from conformance.target import ProfileError


@dataclass(frozen=True)
class FileKey:
    """One key of a run table: the option it stands for (pytest's dest and its flag) and its kind."""

    dest: str
    flag: str
    kind: str       # "command", "name" or "seconds"


# table -> key -> the option it sets (target.RUN_TABLES names the same tables)
KEYS: Mapping[str, Mapping[str, FileKey]] = MappingProxyType({
    "client": MappingProxyType({
        "command": FileKey("client_command", "--client-command", "command"),
        "test_command": FileKey("client_test_command", "--client-test-command", "command"),
        "test_scenario": FileKey("client_test_scenario", "--client-test-scenario", "name"),
        "claims": FileKey("client_claims", "--client-claims", "name"),
    }),
    "gateway": MappingProxyType({
        "command": FileKey("gateway_command", "--gateway-command", "command"),
        "start_timeout": FileKey("gateway_start_timeout", "--gateway-start-timeout", "seconds"),
        "upstream_scenario": FileKey("gateway_upstream_scenario", "--gateway-upstream-scenario", "name"),
    }),
})

CLIENT_DESTS = tuple(key.dest for key in KEYS["client"].values())


def _checked(source: str, dotted: str, kind: str, value: Any) -> Any:
    if kind == "seconds":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(source, dotted, f"must be a number of seconds, got {value!r}")
        if not value > 0:
            raise ProfileError(source, dotted, f"must be positive, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ProfileError(source, dotted, f"must be a string, got {value!r}")
    if kind == "command":
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ProfileError(source, dotted, f"{value!r}: {exc}") from None
        if not words:
            raise ProfileError(source, dotted, "empty: give the command to run")
    elif not value.strip():
        raise ProfileError(source, dotted, "empty: give a name")
    return value


@dataclass(frozen=True)
class RunTables:
    """The run tables of one file: option dest -> (value, the file's dotted key)."""

    source: str = ""
    given: Mapping[str, tuple[Any, str]] = field(default_factory=dict)

    def pick(self, dest: str, line_value: Any) -> Any:
        """The option's value: the command line's when given, else the file's, else None."""
        if line_value is not None or dest not in self.given:
            return line_value
        return self.given[dest][0]

    def where(self, dest: str, line_value: Any) -> str:
        """How a message names the option: its flag, or the file's key when the file set it."""
        if line_value is None and dest in self.given:
            return f"{self.given[dest][1]} in {self.source}"
        return next(key.flag for table in KEYS.values() for key in table.values() if key.dest == dest)


def load(path: str | Path | None) -> RunTables:
    """The ``[client]`` and ``[gateway]`` tables of ``path`` (none: no file). Raises ``ProfileError``."""
    if not path:
        return RunTables()
    source = str(path)
    raw = read_document(path, "TOML", lambda msg: ProfileError(source, "", msg[len(source) + 2:]))
    given: dict[str, tuple[Any, str]] = {}
    for table, keys in KEYS.items():
        if table not in raw:
            continue
        if not isinstance(raw[table], Mapping):
            raise ProfileError(source, table, f"must be a table, got {type(raw[table]).__name__}")
        for name, value in raw[table].items():
            dotted = f"{table}.{name}"
            if name not in keys:
                raise ProfileError(source, dotted, f"unknown key (known here: {', '.join(keys)})")
            given[keys[name].dest] = (_checked(source, dotted, keys[name].kind, value), dotted)
    return RunTables(source, MappingProxyType(given))
