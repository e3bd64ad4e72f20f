"""The client kill matrix (issue 18): each deliberately broken client of tests/clients/broken.py
fails its client clause and only its clause; the example and the correct clients pass.

Each row runs client mode (``pytest --client-command``) on the scenarios named in the row,
in a subprocess with its own report directory, and reads the certificate: the row's clause is
FAIL (MUST) or NON-STRICT (SHOULD), no other clause is, and the generated key appears in no
report file. A hanging break (ignores-error) shows a scenario ends within its deadline. The
broken clients and the SDK example claim lanes and steering (``--client-claims``); without the
claims those scenarios do not run and their clauses read UNSUPPORTED.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import verdicts as V
from conformance.clientmode import scenarios as S
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "python tests/clients/broken.py"
RUN_DEADLINE_S = 300            # a hang guard: 17 scenarios of at most 11 s each, on a loaded machine
CORRECT_DEADLINE_S = 30         # per scenario for the SDK example: importing openai takes seconds under load
AGENTS_DEADLINE_S = 900         # openai-agents: --client-deadline 60 per scenario
EXPECTED = {"MUST": V.FAIL, "SHOULD": V.NON_STRICT}
CLAIMS = ("--client-claims", "lanes,steering")     # what the broken clients and the SDK example do
LANE_CLAUSES = {S.LANE_NAMES, S.LANE_COUNT, S.LANES_IN_FLIGHT, S.LANE_OWN_CHAIN, S.STEERS_ACTIVE}

# break -> (the clause it fails, the scenarios it runs: a -k expression)
MATRIX = {
    "trailing-garbage": (S.TEXT_JSON, "tool-loop"),
    "nested-create": (S.CREATE_FLAT, "tool-loop"),
    "stream-field": (S.CREATE_NO_STREAM, "tool-loop"),
    "key-in-url": (S.KEY_IN_HEADER, "tool-loop"),
    "drops-chain": (S.CHAIN, "tool-loop"),
    "full-history": (S.NEW_INPUT_ONLY, "tool-loop"),
    "no-tool-output": (S.TOOL_OUTPUT, "tool-loop"),
    "socket-per-turn": (S.ONE_SOCKET, "tool-loop"),
    "stops-early": (S.FINISHES, "tool-loop"),
    "loops-on-dead-id": (S.EVICTION, "eviction"),
    "no-reconnect": (S.RECONNECTS, "lifetime or idle-close or close-mid-response or idle-limit"),
    "tight-reconnect": (S.RETRIES_SPACED, "reconnect-refused"),
    "ignores-error": (S.ERROR_ENDS, "top-level-error"),
    "ignores-failed": (S.FAILED_ENDS, "response-failed or response-incomplete"),
    "unknown-breaks": (S.UNKNOWN_EVENTS, "unknown-events"),
    "caps-1mib": (S.LARGE_FRAMES, "large-terminal"),
    "impatient": (S.WAITS_FOR_SLOW, "slow-first-token"),
    "pipelines": (S.ONE_IN_FLIGHT, "busy-reject"),
    "stale-store-false": (S.STORE_FALSE, "store-false-reconnect"),
    "reads-abandoned": (S.IGNORES_ABANDONED, "abandoned"),
    "forgets-lost-request": (S.NO_LOST_REQUEST, "close-mid-response"),
    "bad-lane-name": (S.LANE_NAMES, "lanes"),
    "too-many-lanes": (S.LANE_COUNT, "lanes"),
    "serial-lanes": (S.LANES_IN_FLIGHT, "lanes"),
    "crossed-lanes": (S.LANE_OWN_CHAIN, "lanes"),
    "steers-finished": (S.STEERS_ACTIVE, "steering"),
    # a client profile (--profile) sets what the same habit costs: a MUST under P-open
    "stream-field/open-responses": (S.CREATE_NO_STREAM, "tool-loop"),
    "pipelines/open-responses": (S.ONE_IN_FLIGHT, "busy-reject"),
}


def _run(command: str, report: Path, *extra: str, deadline_s: float = RUN_DEADLINE_S
         ) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--client-command", command, "--report-dir", str(report), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=deadline_s)
    cert_path = report / "certificate.json"
    assert cert_path.exists(), f"exit {proc.returncode}, no certificate\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return proc, json.loads(cert_path.read_text())


def _no_key_in(report: Path) -> None:
    for path in report.rglob("*"):
        if path.is_file():
            assert "sk-conformance-client-" not in path.read_text(errors="replace"), f"key in {path}"


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_broken_client_fails_its_clause_only(name, tmp_path):
    clause, scenarios = MATRIX[name]
    name, _, profile = name.partition("/")      # a row named BREAK/PROFILE runs under --profile PROFILE
    started = time.monotonic()
    proc, cert = _run(f"{BROKEN} {name}", tmp_path, "-k", scenarios, *CLAIMS,
                      *(("--profile", profile) if profile else ()))
    rows = {r["id"]: r for r in cert["clauses"]}
    level = rows[clause]["level"]
    if profile == "open-responses":
        assert level == "MUST" and cert["profile"] == profile, cert["profile"]
    assert rows[clause]["verdict"] == EXPECTED[level], (rows[clause], proc.stdout[-2000:])
    others = {cid: r["verdict"] for cid, r in rows.items() if cid != clause and r["verdict"] in (V.FAIL, V.NON_STRICT)}
    assert not others, f"{name} also broke {others}"
    assert cert["mode"] == "client" and cert["certification"]["certified"] is False
    assert proc.returncode == (1 if level == "MUST" else 0)
    _no_key_in(tmp_path)
    if name == "ignores-error":     # a hung client ends with its scenario's deadline
        assert time.monotonic() - started < S.BY_NAME["top-level-error"].deadline_s + 30


# each runs every scenario, a client process each (~20 s of CPU; the SDK example imports the
# official SDK once per scenario): selftest-heavy and CI; test_without_claims_... and the broken
# clients' own runs keep the correct client in make selftest
@pytest.mark.heavy
@pytest.mark.parametrize("command, profile", [(BROKEN + " correct", "openai"),
                                              ("python examples/sdk_client.py", "openai"),
                                              (BROKEN + " correct", "open-responses")])
def test_correct_clients_pass_every_scenario(command, profile, tmp_path):
    # a correct client is judged on what it sends, not on how fast a loaded machine imports the SDK
    deadline = ("--client-deadline", str(CORRECT_DEADLINE_S)) if "sdk_client" in command else ()
    proc, cert = _run(command, tmp_path, "--profile", profile, *deadline, *CLAIMS)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert cert["client"]["claims"] == ["lanes", "steering"]
    assert cert["overall"] == V.PASS and cert["certification"]["certified"] is True
    assert {r["id"] for r in cert["clauses"]} == set(S.client_clauses())
    assert all(r["verdict"] == V.PASS for r in cert["clauses"]), [(r["id"], r["verdict"]) for r in cert["clauses"]]
    assert len(cert["cases"]) == len(S.SCENARIOS)
    # the summary speaks of scenarios, and of no spending: a client run sends nothing to a paid target
    assert f"client mode: {len(S.SCENARIOS)} scenarios: {len(S.SCENARIOS)} PASS" in proc.stdout, proc.stdout[-2000:]
    assert "spent:" not in proc.stdout
    _no_key_in(tmp_path)


def test_without_claims_the_lane_and_steering_clauses_are_unsupported(tmp_path):
    """A client that claims neither lanes nor steering is not played those scenarios: their
    cases and clauses read UNSUPPORTED (not claimed), never FAIL, and the run passes."""
    proc, cert = _run(f"{BROKEN} correct", tmp_path, "-k", "tool-loop or lanes or steering")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert cert["client"]["claims"] == []
    cases = {c["nodeid"].rsplit("[", 1)[1].rstrip("]"): c["verdict"] for c in cert["cases"]}
    assert cases == {"tool-loop": V.PASS, "lanes": V.UNSUPPORTED, "steering": V.UNSUPPORTED}, cases
    rows = {r["id"]: r for r in cert["clauses"]}
    assert {cid for cid, r in rows.items() if r["verdict"] == V.UNSUPPORTED} == LANE_CLAUSES
    assert not any(rows[cid]["claimed"] for cid in LANE_CLAUSES)
    why = {c["nodeid"].rsplit("[", 1)[1].rstrip("]"): " ".join(c["messages"]) for c in cert["cases"]}
    assert "(--client-claims lanes)" in why["lanes"] and "(--client-claims steering)" in why["steering"], why
    # the page names the client and its claims; the reference server only plays the scenarios
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f"<title>Conformance PASS — {BROKEN} correct</title>" in page
    assert "client conformance certificate" in page
    assert "claims none beyond the contract" in page
    assert "<td>Target</td>" not in page and "(embedded reference server)" not in page
    assert "<td>Server capabilities</td>" in page and "<td>Capabilities</td>" not in page


def test_the_header_names_the_client_and_its_claims(tmp_path):
    """The run's first line says which client is judged, not that the reference server is the target."""
    proc, _ = _run(f"{BROKEN} correct", tmp_path, "-k", "tool-loop", "--client-claims", "lanes", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (f"conformance client: '{BROKEN} correct' (claims: lanes); against the embedded reference server"
            in proc.stdout), proc.stdout[:2000]
    assert "conformance target:" not in proc.stdout


def test_every_client_clause_is_checked_and_killed():
    """100 % of the registry's client clauses: a scenario checks each, a broken client kills each."""
    registry = V.ClauseRegistry.load(V.default_clauses_path()).side(V.CLIENT)
    ids = {c.id for c in registry}
    assert ids == set(S.client_clauses()), "every client clause has a scenario, every scenario clause is registered"
    assert ids == {clause for clause, _ in MATRIX.values()}, "every client clause has a broken client"


@pytest.mark.heavy      # ~25 s of CPU: the Agents SDK is imported once per scenario (CI: make selftest-heavy)
def test_agents_example_gets_the_verdicts_docs_clients_md_explains(tmp_path):
    """openai-agents 0.24.0: the three FAILs, the one NON-STRICT (stream: true, which OpenAI's
    own SDKs send), the one NOT-REACHED (it drains a cancelled run's response, so it never
    abandons a request on the wire) and the five lane and steering clauses UNSUPPORTED (it claims
    neither) docs/clients.md explains, and no other non-pass."""
    pytest.importorskip("agents")
    proc, cert = _run("python examples/agents_client.py", tmp_path, "--client-deadline", "60",
                      deadline_s=AGENTS_DEADLINE_S)
    not_passed = {r["id"]: r["verdict"] for r in cert["clauses"] if r["verdict"] != V.PASS}
    assert not_passed == {S.CREATE_NO_STREAM: V.NON_STRICT, S.EVICTION: V.FAIL, S.RECONNECTS: V.FAIL,
                          S.STORE_FALSE: V.FAIL, S.IGNORES_ABANDONED: V.NOT_REACHED,
                          **{clause: V.UNSUPPORTED for clause in LANE_CLAUSES}}, \
        proc.stdout[-3000:]
    assert proc.returncode == 1
    _no_key_in(tmp_path)


@pytest.mark.heavy      # imports the Agents SDK (CI: make selftest-heavy)
def test_agents_example_under_open_responses_fails_for_stream(tmp_path):
    """Under --profile open-responses (P-open forbids stream) the stream: true that openai-agents
    sends is a FAIL of the MUST, where the OpenAI profiles make it NON-STRICT."""
    pytest.importorskip("agents")
    proc, cert = _run("python examples/agents_client.py", tmp_path, "--client-deadline", "60",
                      "--profile", "open-responses", "-k", "tool-loop")
    rows = {r["id"]: r for r in cert["clauses"]}
    assert rows[S.CREATE_NO_STREAM]["level"] == "MUST" and rows[S.CREATE_NO_STREAM]["verdict"] == V.FAIL
    assert {cid for cid, r in rows.items() if r["verdict"] in (V.FAIL, V.NON_STRICT)} == {S.CREATE_NO_STREAM}
    assert proc.returncode == 1
