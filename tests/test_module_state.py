"""The harness keeps no mutable module state (issue 16, item 2): the run's budget, liveness and
usage meter travel in a ``RunContext`` (``Target.run``), never in module globals of
``conformance/client.py`` that other modules overwrite. And client.py stays under 700 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from conformance.client import Connection, http_request
from conformance.runcontext import RunContext
from conformance.usage import UsageMeter

CLIENT = Path(__file__).resolve().parents[1] / "conformance" / "client.py"
# calls whose result cannot change: frozen sets and compiled patterns
CONSTANT_CALLS = frozenset({"frozenset", "re.compile"})
MUTABLE_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


def mutable_bindings(source: str) -> list[str]:
    """Module-level bindings of ``source`` that hold or await mutable state: a name bound to a
    call (other than ``CONSTANT_CALLS``), to a list/dict/set display, or to None (a slot some
    other module fills in), and every ``global`` statement."""
    tree = ast.parse(source)
    found = [f"line {node.lineno}: global {', '.join(node.names)}"
             for node in ast.walk(tree) if isinstance(node, ast.Global)]
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            value = node.value
            mutable = isinstance(value, MUTABLE_DISPLAYS) \
                or (isinstance(value, ast.Call) and _call_name(value) not in CONSTANT_CALLS) \
                or (isinstance(value, ast.Constant) and value.value is None) \
                or isinstance(node, ast.AugAssign)
            if mutable:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_client_has_no_mutable_module_bindings():
    found = mutable_bindings(CLIENT.read_text(encoding="utf-8"))
    assert not found, "mutable module state in conformance/client.py (use the RunContext):\n" + "\n".join(found)


def test_the_check_catches_the_old_globals():
    old = ("METER = UsageMeter()\nLIVENESS: Any = None\nBUDGET: Any = None\nSEEN = []\nCACHE = {}\n"
           "def f():\n    global METER\n")
    assert len(mutable_bindings(old)) == 6
    assert mutable_bindings("LIMIT = 3\nNAMES = frozenset({'a'})\nRE = re.compile('x')\nPAIR = ('a', 1)\n") == []


def test_client_is_under_700_lines():
    lines = len(CLIENT.read_text(encoding="utf-8").splitlines())
    assert lines < 700, f"conformance/client.py has {lines} lines; move a cohesive part into a module of its own"


def test_a_request_charges_the_run_context_of_its_target(reference_server_factory):
    """The budget, liveness and meter a connection uses are its target's, visible as ``conn.run``."""
    _, tgt = reference_server_factory()
    charged: list[str] = []

    class Budget:
        def take(self, kind: str) -> None:
            charged.append(kind)

    tgt.run = RunContext(budget=Budget(), meter=UsageMeter())
    with Connection.open(tgt) as conn:
        assert conn.run is tgt.run
        turn = conn.turn(input="Reply with the single word: ok", max_output_tokens=256)
    assert turn.status == "completed", turn.summary()
    http_request(tgt, "GET", tgt.http_url("/models"))
    assert charged == ["creates", "http"]
    assert tgt.run.meter.creates == 1 and tgt.run.meter.http_requests == 1
    assert tgt.run.meter.output_tokens > 0
