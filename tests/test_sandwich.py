"""The gateway sandwich (``--gateway-command``, docs/clients.md "Gateways"): the server cases
drive a gateway whose upstream is the reference server, and the gateway's upstream traffic is
judged by the client clauses in the same run and certificate.

examples/gateway_relay.py (a pass-through relay) passes both sides, also under pytest-xdist;
each gateway of tests/clients/broken_gateway.py fails its client clause and only it (and,
for one that drops previous_response_id, the server clause its relayed answers break); a gateway
that never listens ends the run NOT-USABLE (exit 6) in one line within its start timeout. With
--gateway-upstream-scenario the upstream plays a scenario on each connection: the relay passes
both sides under two of them, and a gateway that reads its upstream with a 1 MiB message limit
FAILs CLIENT-READS-LARGE-FRAMES under large-terminal (and the server clauses its client sees
break) but nothing without it, one that gives a connection up at an event type it does not
know FAILs CLIENT-TOLERATES-UNKNOWN-EVENTS under unknown-events, and one that sends a create
again when its response has not begun in 1.5 s FAILs CLIENT-WAITS-FOR-SLOW-RESPONSE under
slow-first-token. No run leaves the gateway
running or the key in a report file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from conformance import verdicts
from conformance.vocabulary import NOT_USABLE
from conformance.clientmode import scenarios
from conformance.clientmode.anytraffic import ANY_TRAFFIC
from conformance.clientmode.sandwich import UPSTREAM_NODEID
import _forkrun as forkrun

ROOT = Path(__file__).resolve().parent.parent
RELAY = "python examples/gateway_relay.py"
BROKEN = "python tests/clients/broken_gateway.py"
PROFILE = ("--target-config", "examples/gateway_relay.toml")
RUN_DEADLINE_S = 240
# the server clauses a broken gateway also fails, seen by the server cases through it
SERVER_SIDE = {"new-chain": ("PREVIOUS-ID-ECHOED",)}


def _running(marker: str) -> list[str]:
    """Processes whose command line holds ``marker`` (the gateway of one run)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def _run(command: str, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    marker = "--sandwich-run-" + secrets.token_hex(4)         # the gateways ignore their arguments
    cmd = [sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider",
           "--gateway-command", f"{command} {marker}", "--report-dir", str(report), *extra]
    if "-n" not in extra:
        cmd[5:5] = ["-p", "no:xdist"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = forkrun.run(cmd, cwd=ROOT, env=env, timeout=RUN_DEADLINE_S)
    assert not _running(marker), "the gateway outlived its run"
    cert_path = report / "certificate.json"
    assert cert_path.exists(), f"exit {proc.returncode}, no certificate\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    cert = json.loads(cert_path.read_text())
    schema = json.loads((ROOT / "schemas" / "certificate.json").read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(cert)]
    assert not errors, errors[:3]
    for path in report.rglob("*"):
        if path.is_file():
            assert "sk-conformance-gateway-" not in path.read_text(errors="replace"), f"key in {path}"
    return proc, cert


def _failing(cert: dict) -> dict:
    bad = (verdicts.FAIL, verdicts.NON_STRICT, verdicts.ERROR)
    return {r["id"]: r["verdict"] for r in cert["clauses"] if r["verdict"] in bad}


@pytest.mark.heavy      # a whole server suite through the gateway (CI: make selftest-heavy)
def test_the_relay_passes_both_sides_under_xdist(tmp_path):
    proc, cert = _run(RELAY, tmp_path / "report", *PROFILE, "-n", "2", "--alluredir", str(tmp_path / "allure"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert cert["overall"] == verdicts.PASS and not _failing(cert)
    rows = {r["id"]: r for r in cert["clauses"]}
    client_side = {cid for cid, r in rows.items() if cid.startswith("CLIENT-") and cid in scenarios.client_clauses()}
    assert {cid for cid in client_side if rows[cid]["verdict"] == verdicts.PASS} == set(ANY_TRAFFIC)
    assert {rows[cid]["verdict"] for cid in client_side - set(ANY_TRAFFIC)} == {verdicts.UNTESTED}
    assert all(rows[cid]["cases"] == [UPSTREAM_NODEID] for cid in ANY_TRAFFIC)
    server_passed = [cid for cid, r in rows.items() if cid not in client_side and r["verdict"] == verdicts.PASS]
    assert len(server_passed) > 50         # the server cases judged the gateway as a server
    # the chain clause says what it checked (its allure step): the continuations, and the
    # requests without previous_response_id against the cases' continuations
    (upstream,) = [json.loads(path.read_text()) for path in (tmp_path / "allure").glob("*-result.json")
                   if "test_gateway_upstream_client_clauses" in path.read_text()]
    (chain,) = [step["name"] for step in upstream["steps"] if step["name"].startswith(scenarios.CHAIN + ": PASS")]
    assert re.search(r"\(\d+ continuation\(s\) right after a completed response on the same connection, each "
                     r"naming that response in previous_response_id; \d+ request\(s\) without", chain), chain
    gateway = cert["gateway"]
    assert gateway["client_side"]["clauses"] == list(ANY_TRAFFIC)
    assert gateway["upstream"]["connections"] > 10 and gateway["upstream"]["relayed_as_sent"] > 0
    assert gateway["exit"] is None
    assert cert["certification"]["certified"] is False       # nine client clauses need a scenario


@pytest.mark.parametrize("name, clause, extra", [
    ("key-in-url", scenarios.KEY_IN_HEADER, ("--clause", scenarios.KEY_IN_HEADER, "--clause", "TURN-TEXT")),
    # a whole server suite through the gateway (CI: make selftest-heavy)
    pytest.param("full-history", scenarios.NEW_INPUT_ONLY, (), marks=pytest.mark.heavy),
    # the client side sees the new chains; the server side sees the id no longer echoed
    pytest.param("new-chain", scenarios.CHAIN, ("-n", "2"), marks=pytest.mark.heavy),
])
def test_a_broken_gateway_fails_its_client_clause_only(name, clause, extra, tmp_path):
    proc, cert = _run(f"{BROKEN} {name}", tmp_path, *PROFILE, *extra)
    level = {r["id"]: r["level"] for r in cert["clauses"]}
    failing = {cid: verdicts.FAIL if level[cid] == "MUST" else verdicts.NON_STRICT
               for cid in (clause, *SERVER_SIDE.get(name, ()))}
    assert _failing(cert) == failing, proc.stdout[-3000:]
    assert proc.returncode == (1 if verdicts.FAIL in failing.values() else 0)
    (upstream,) = [c for c in cert["cases"] if c["nodeid"] == UPSTREAM_NODEID]
    assert upstream["verdict"] in (verdicts.FAIL, verdicts.NON_STRICT)
    if name == "new-chain":
        assert "a new chain (no previous_response_id" in " ".join(upstream["messages"])


@pytest.mark.heavy      # a whole server suite through the gateway (CI: make selftest-heavy)
@pytest.mark.parametrize("scenario, clause, checked", [
    ("unknown-events", scenarios.UNKNOWN_EVENTS, r"sent on \d+ upstream connection\(s\); the gateway closed none"),
    ("large-terminal", scenarios.LARGE_FRAMES, r"sent on \d+ upstream connection\(s\); the gateway closed none"),
    # 3 s for the second response of each connection: about a minute on 2 workers
    ("slow-first-token", scenarios.WAITS_FOR_SLOW, r"^[^:]+: PASS.*\b\d+ slowed request\(s\) waited"),
], ids=["unknown-events", "large-terminal", "slow-first-token"])
def test_the_relay_passes_both_sides_while_the_upstream_plays_a_scenario(scenario, clause, checked, tmp_path):
    proc, cert = _run(RELAY, tmp_path / "report", *PROFILE, "-n", "2", "--gateway-upstream-scenario", scenario,
                      "--alluredir", str(tmp_path / "allure"))
    assert proc.returncode == 0 and not _failing(cert), proc.stdout[-3000:]
    rows = {r["id"]: r for r in cert["clauses"]}
    assert rows[clause]["verdict"] == verdicts.PASS and rows[clause]["cases"] == [UPSTREAM_NODEID]
    gateway = cert["gateway"]
    assert gateway["upstream_scenario"] == scenario
    assert gateway["client_side"]["clauses"] == [*ANY_TRAFFIC, clause]
    assert clause not in gateway["client_side"]["not_judged"]
    # the clause's PASS says what it checked (its allure step)
    (upstream,) = [json.loads(path.read_text()) for path in (tmp_path / "allure").glob("*-result.json")
                   if "test_gateway_upstream_client_clauses" in path.read_text()]
    (seen,) = [step["name"] for step in upstream["steps"] if step["name"].startswith(clause + ": PASS")]
    assert re.search(checked, seen), seen
    assert f"the upstream playing scenario {scenario}" in proc.stdout


def _upstream_play(command: str, scenario: str | None, options: tuple, failing: dict, pattern: str,
                   tmp_path: Path) -> None:
    """Run ``command`` as the gateway with the upstream playing ``scenario`` (None: behaving
    normally); the failing clauses are ``failing``, and when the scenario played, the upstream
    case FAILs with a message matching ``pattern`` or PASSes."""
    extra = ("--gateway-upstream-scenario", scenario) if scenario else ()
    proc, cert = _run(command, tmp_path, *options, *extra)
    assert _failing(cert) == failing, proc.stdout[-3000:]
    assert proc.returncode == (1 if failing else 0)
    if scenario is None:
        return      # --clause names no clause the upstream case judges without the scenario
    (upstream,) = [c for c in cert["cases"] if c["nodeid"] == UPSTREAM_NODEID]
    if failing:
        assert upstream["verdict"] == verdicts.FAIL
        assert re.search(pattern, " ".join(upstream["messages"])), upstream["messages"]
    else:
        assert upstream["verdict"] == verdicts.PASS


# the run's cases: the function-call turns (two creates on a connection: the second's terminal
# event is the large one) and the upstream case
LARGE = ("--target-config", "examples/gateway_relay.toml", "--clause", scenarios.LARGE_FRAMES,
         "--clause", "TURN-FUNCTION-CALL")


@pytest.mark.parametrize("command, scenario, failing", [
    (RELAY, "large-terminal", {}),
    (f"{BROKEN} frame-cap", None, {}),      # without the scenario nothing shows the cap
    # its upstream socket fails on the frame (1009) and its client's turn ends without a terminal
    (f"{BROKEN} frame-cap", "large-terminal", {scenarios.LARGE_FRAMES: verdicts.FAIL,
                                               "TURN-FUNCTION-CALL": verdicts.FAIL,
                                               "STREAM-ONE-TERMINAL": verdicts.FAIL}),
], ids=["relay", "frame-cap-normal-upstream", "frame-cap-large-terminal"])
def test_a_gateway_with_a_frame_limit_fails_only_under_large_terminal(command, scenario, failing, tmp_path):
    _upstream_play(command, scenario, LARGE, failing,
                   r"CLIENT-READS-LARGE-FRAMES: connection \d+ closed by the gateway with 1009", tmp_path)


# it breaks every response under unknown-events, the preflight's too: without --no-preflight
# that run ends NOT-USABLE before any case; the turns it leaves hanging end at the turn timeout
UNKNOWN = ("--target-config", "examples/gateway_relay.toml", "--clause", scenarios.UNKNOWN_EVENTS,
           "--clause", "TURN-FUNCTION-CALL", "--no-preflight", "--turn-timeout", "2")


@pytest.mark.parametrize("command, scenario, failing", [
    (RELAY, "unknown-events", {}),
    (f"{BROKEN} known-types", None, {}),
    # it gives the connection up at the first control event: upstream closed at once, the turn hangs
    (f"{BROKEN} known-types", "unknown-events", {scenarios.UNKNOWN_EVENTS: verdicts.FAIL,
                                                 "TURN-FUNCTION-CALL": verdicts.FAIL,
                                                 "CREATE-ANSWERED": verdicts.FAIL}),
], ids=["relay", "known-types-normal-upstream", "known-types-unknown-events"])
def test_a_gateway_that_gives_up_on_unknown_events_fails_only_under_them(command, scenario, failing, tmp_path):
    _upstream_play(command, scenario, UNKNOWN, failing,
                   r"CLIENT-TOLERATES-UNKNOWN-EVENTS: connection \d+ closed by the gateway with 1000 [\d.]+ s "
                   r"after the first unknown event, its client had not closed", tmp_path)


SLOW = ("--target-config", "examples/gateway_relay.toml", "--clause", scenarios.WAITS_FOR_SLOW,
        "--clause", "TURN-FUNCTION-CALL")


@pytest.mark.parametrize("command, scenario, failing", [
    (RELAY, "slow-first-token", {}),
    (f"{BROKEN} impatient", None, {}),
    # it sends the create again 1.5 s after it went upstream; its client still gets its answer
    (f"{BROKEN} impatient", "slow-first-token", {scenarios.WAITS_FOR_SLOW: verdicts.FAIL}),
], ids=["relay", "impatient-normal-upstream", "impatient-slow-first-token"])
def test_a_gateway_with_a_first_event_timeout_fails_only_under_slow_first_token(command, scenario, failing, tmp_path):
    _upstream_play(command, scenario, SLOW, failing,
                   r"CLIENT-WAITS-FOR-SLOW-RESPONSE: connection \d+, request 2: the gateway sent "
                   r"response.create 1.5\d s after the create", tmp_path)


@pytest.mark.parametrize("command, words", [
    (f"{BROKEN} never-listens", "nothing listened within 2 s"),
    ("python -c 'raise SystemExit(3)'", "exited 3 before listening"),
])
def test_a_gateway_that_does_not_listen_is_not_usable_in_one_line(command, words, tmp_path):
    started = time.monotonic()
    proc, cert = _run(command, tmp_path, "--gateway-start-timeout", "2")
    assert time.monotonic() - started < 60
    assert proc.returncode == 6, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "GATEWAY NOT USABLE" in line]
    assert len(lines) == 1 and words in lines[0] and "CONFORMANCE_GATEWAY_LISTEN" in lines[0], proc.stdout
    assert cert["overall"] == NOT_USABLE and cert["preflight"]["usable"] is False
    assert "gateway" not in cert and not cert["cases"]


def test_a_gateway_that_dies_ends_the_run_in_bounded_time(tmp_path):
    started = time.monotonic()
    proc, cert = _run(f"{BROKEN} dies", tmp_path, *PROFILE)
    assert time.monotonic() - started < 120
    assert proc.returncode == 7, proc.stdout[-2000:]       # cases that could not reach it: ERROR
    assert cert["gateway"]["exit"] == 3
    (upstream,) = [c for c in cert["cases"] if c["nodeid"] == UPSTREAM_NODEID]
    assert upstream["verdict"] == verdicts.ERROR and "exited 3" in " ".join(upstream["messages"])


def test_a_slow_upgrade_does_not_shorten_the_lifetime_wait(tmp_path):
    """The upstream's clock starts when the gateway opens it, 0.8 s into its client's
    handshake: the lifetime case waits from the end of the handshake (it once counted from
    its start, and a slow gateway on a loaded machine failed LIFETIME-LIMIT-ERROR)."""
    proc, cert = _run(f"{BROKEN} slow-upgrade", tmp_path, "--target-config", "examples/gateway_relay.toml",
                      "--clause", "LIFETIME-LIMIT-ERROR")
    assert _failing(cert) == {}, proc.stdout[-3000:]
    rows = {row["id"]: row for row in cert["clauses"]}
    assert rows["LIFETIME-LIMIT-ERROR"]["verdict"] == verdicts.PASS
