"""Names in conformance/ are spelled out (issue 16, item 6): no module alias and no function
parameter under three characters.  Lambdas keep their short parameters (they are one
expression long); a name that plain English or the protocol gives its meaning may be allowed
below, each with its reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHORTEST = 3

# parameter names under three characters that say what they are, and why each may stay
ALLOWED_PARAMETERS = {
    "by": "reads as English at the call: baseline.render(records, by='case') (--write-baseline-by)",
}


def short_names(source: str, filename: str = "<source>") -> list[tuple[int, str, str]]:
    """``(line, "alias" | "parameter", name)`` for each module alias and each parameter of a
    ``def`` shorter than SHORTEST characters and not in ALLOWED_PARAMETERS."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, "alias", alias.asname) for alias in node.names
                      if alias.asname is not None and len(alias.asname) < SHORTEST]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                     *(arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None)]
            found += [(arg.lineno, "parameter", arg.arg) for arg in every
                      if len(arg.arg) < SHORTEST and arg.arg not in ALLOWED_PARAMETERS]
    return sorted(found)


def _modules() -> list[Path]:
    return sorted((ROOT / "conformance").rglob("*.py"))


def test_conformance_spells_out_aliases_and_parameters():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {kind} {name!r}"
                 for path in _modules()
                 for line, kind, name in short_names(path.read_text(encoding="utf-8"), str(path))]
    assert len(_modules()) > 50      # the scan saw the package, not an empty directory
    assert not offenders, "short names (spell them out, or allow one with a reason):\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("import datetime as dt\n", [(1, "alias", "dt")]),
    ("from conformance import verdicts as V\n", [(1, "alias", "V")]),
    ("def f(self, ws, *rs, t=None, **kw):\n    pass\n",
     [(1, "parameter", "kw"), (1, "parameter", "rs"), (1, "parameter", "t"), (1, "parameter", "ws")]),
    ("class C:\n    async def run(self, n):\n        pass\n", [(2, "parameter", "n")]),
    ("def outer():\n    def inner(x, /, *, ev):\n        pass\n",
     [(2, "parameter", "ev"), (2, "parameter", "x")]),
])
def test_the_scan_finds_short_aliases_and_parameters(source, expected):
    assert short_names(source) == expected


@pytest.mark.parametrize("source", [
    "import datetime\nfrom conformance import verdicts\nimport json as json_module\n",
    "square = lambda x: x * x\nrows = [n for n in range(3)]\n",
    "def render(records, by='clause'):\n    pass\n",
    "def send(self, event, websocket, now=None):\n    pass\n",
])
def test_the_scan_lets_spelled_out_and_allowed_names_pass(source):
    assert short_names(source) == []


def test_every_allowed_parameter_has_a_reason():
    assert all(len(name) < SHORTEST and reason for name, reason in ALLOWED_PARAMETERS.items())
