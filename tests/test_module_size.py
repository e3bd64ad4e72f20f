"""No module in conformance/ grows past 700 lines (issue 16, "Done when"): a module that long
holds more than one part, and the next capability would land in it too.  Generated or data
modules could be exempt, each with its reason; there are none today."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 700

# path (relative to the repository) -> why it may be longer: generated or data files only
EXEMPT: dict[str, str] = {}


def too_long(paths: list[Path], limit: int = LIMIT) -> list[str]:
    """``"path: N lines"`` for each file over ``limit`` lines that EXEMPT does not name."""
    out = []
    for path in paths:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if lines > limit and name not in EXEMPT:
            out.append(f"{name}: {lines} lines")
    return out


def test_no_conformance_module_is_over_the_limit():
    modules = sorted((ROOT / "conformance").rglob("*.py"))
    assert len(modules) > 50      # the scan saw the package, not an empty directory
    offenders = too_long(modules)
    assert not offenders, f"modules over {LIMIT} lines (split them along a seam):\n" + "\n".join(offenders)


@pytest.mark.parametrize("lines, over", [(LIMIT, False), (LIMIT + 1, True)])
def test_the_check_fails_one_line_past_the_limit(tmp_path, lines, over):
    module = tmp_path / "big.py"
    module.write_text("x = 1\n" * lines, encoding="utf-8")
    assert too_long([module]) == ([f"{module}: {lines} lines"] if over else [])


def test_exemptions_name_existing_files_with_a_reason():
    assert all((ROOT / name).is_file() and reason for name, reason in EXEMPT.items())
