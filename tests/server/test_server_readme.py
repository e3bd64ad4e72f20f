"""The README's "Reference server" section documents every defect, trigger and option."""

from __future__ import annotations

import re
from pathlib import Path

from conformance.server import DEFECTS
from conformance.server.__main__ import build_parser
from conformance.server.config import PROFILES

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Reference server")
    nxt = text.find("\n## ", start + 5)
    return text[start:] if nxt == -1 else text[start:nxt]


def test_every_defect_is_in_the_readme_table():
    rows = {}
    for line in section().splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \| `([A-Z0-9-]+)` \| (MUST|SHOULD|MAY) \| (.+) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    assert set(rows) == set(DEFECTS), sorted(set(rows) ^ set(DEFECTS))
    for name, d in DEFECTS.items():
        assert rows[name] == (d.clause, d.level, d.summary), name


def test_triggers_probes_profiles_and_options_are_documented():
    s = section()
    for word in ("[[refuse]]", "[[fail]]", "[[multi]]", "[[parallel]]", "record_nonces",
                 r"\b[A-Z]{3,12}-[0-9]{4,8}\b", "X-Conformance-Lifetime", "X-Conformance-Turn-Delay-Ms",
                 "X-Conformance-Pause-Ms", "[[misaligned]]", "[[misaligned-mid]]",
                 "max_output_tokens", "generate:false", "ServerThread", "ReferenceServer"):
        assert word in s, word
    for profile in PROFILES:
        assert f"`{profile}`" in s, profile
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                assert opt in s, opt
