"""The built-in profiles: the one list of their names (issue 16 item 5; docs/design.md
"Profiles and targets").

Each built-in suite profile is a file ``conformance/profiles/<name>.toml`` (its facts) and a
row here: its name and the reference server profile (``conformance/server/config.py``) that
behaves like it, which the embedded server is started with. Everything else derives from
this table: the ``--profile`` help, the server's ``--profile`` choices, the suite's mapping
to the server (``session.server_profile``). ``tests/test_target.py`` checks that the table
and the TOML files name the same profiles.

Pure data, no imports: the reference server reads it too (tests/test_import_boundary.py).
"""

from __future__ import annotations

# suite profile -> the reference server profile that plays it, in the order the help names them
BUILTIN_PROFILES: dict[str, str] = {
    "openai": "openai",
    "openai-2026-02": "openai",
    "xai": "xai",
    "open-responses": "open-responses",
    "reference": "openai",
}

# the reference server's own profiles (``--profile`` of ``python -m conformance.server``)
SERVER_PROFILES: tuple[str, ...] = tuple(dict.fromkeys(BUILTIN_PROFILES.values()))

# the server profile of a vendor file whose ``extends`` names no built-in one
DEFAULT_SERVER_PROFILE = "openai"
