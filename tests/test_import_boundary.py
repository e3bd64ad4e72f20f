"""The reference server is an independent implementation (docs/design.md): nothing under
conformance/server/ may import the suite's monitor, model, client, plugin, case helpers or cases."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "conformance" / "server"
FORBIDDEN = ("conformance.monitor", "conformance.model", "conformance.client", "conformance.plugin",
             "conformance.statemachine", "conformance.casekit", "cases")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
                yield node.lineno, base
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
            elif node.level >= 2:  # from .. import monitor / from ..monitor import X
                mod = node.module or ""
                if mod:
                    yield node.lineno, "conformance." + mod
                else:
                    for alias in node.names:
                        yield node.lineno, "conformance." + alias.name
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_server_sources_exist():
    assert (SERVER / "__init__.py").is_file()
    assert len(list(SERVER.glob("*.py"))) >= 5


def test_server_does_not_import_the_suite():
    bad = []
    for path in sorted(SERVER.rglob("*.py")):
        for lineno, name in _imports(path):
            if _forbidden(name):
                bad.append(f"{path.relative_to(SERVER.parent.parent)}:{lineno}: {name}")
    assert not bad, "the reference server imports suite modules:\n" + "\n".join(bad)


def test_the_scanner_catches_violations(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import conformance.monitor\nfrom conformance import model\nfrom ..client import C\n"
                      "from cases.foo import bar\n__import__('conformance.plugin')\nfrom . import engine\n")
    names = [n for _, n in _imports(sample) if _forbidden(n)]
    assert len({n.split(".")[1] if n.startswith("conformance") else n.split(".")[0] for n in names}) == 5
