"""The modules of conformance/ import one another without a cycle (issue 16, item 1): every
import counts, also the lazy ones inside functions, so a late ``from conformance.plugin import``
cannot hide an arrow running back up (as ``allure_plugin`` -> ``plugin`` once did)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "conformance"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The conformance modules ``name`` imports anywhere in its source (a name imported from a
    package counts as its submodule when there is one)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, path.name == "__init__.py")
            subs = {f"{base}.{alias.name}" for alias in node.names} & known
            found.update(subs or {base})
    return {m for m in found if m in known and m != name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()
    for start in sorted(graph):
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        if start in done:
            continue
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                on_path.pop()
                done.add(node)
            elif nxt in on_path:
                return on_path[on_path.index(nxt):] + [nxt]
            elif nxt not in done:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                on_path.append(nxt)
    return None


def test_conformance_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_old_plugin_allure_circle_is_caught(tmp_path: Path):
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("def configure():\n    from conformance.allure_plugin import AllureHooks\n")
    (pkg / "allure_plugin.py").write_text("class AllureHooks:\n    def annotate(self):\n"
                                          "        from conformance.plugin import case_state\n")
    assert find_cycle(import_graph(tmp_path)) == ["conformance.allure_plugin", "conformance.plugin",
                                                  "conformance.allure_plugin"]


def test_relative_and_package_imports_are_followed(tmp_path: Path):
    pkg = tmp_path / PACKAGE
    (pkg / "report").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "__init__.py").write_text("from .terminal import line\n")
    (pkg / "report" / "terminal.py").write_text("from .. import session\n")
    (pkg / "session.py").write_text("def f():\n    from conformance.report import terminal\n")
    graph = import_graph(tmp_path)
    assert graph["conformance.report.terminal"] == {"conformance.session"}
    assert graph["conformance.session"] == {"conformance.report.terminal"}
    assert find_cycle(graph) is not None


def test_a_graph_without_cycle_passes():
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_nothing_in_conformance_imports_the_plugin_back():
    importers = sorted(name for name, deps in import_graph().items() if "conformance.plugin" in deps)
    assert importers == []


def test_plugin_holds_only_hooks_options_and_fixtures():
    """pytest-xdist's shape (issue 16, item 1): the plugin module stays small; its work lives
    in modules of its own (options, session, collection, casestate, tries, judging, ...)."""
    lines = len((ROOT / PACKAGE / "plugin.py").read_text(encoding="utf-8").splitlines())
    assert lines < 400, f"conformance/plugin.py has {lines} lines; move the work into a module named for it"
