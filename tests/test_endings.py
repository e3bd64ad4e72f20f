"""Bounded time and calm verdicts whatever the target does (issue 21): deadlines that fit the
work (conformance/deadlines.py), and end-to-end runs against a standalone reference server
behind a relay with an adversarial ending (tests/_endings.py): terminal events dropped,
renamed, doubled, delayed, generating responses that never go on, and a 429 on the first
create of every fourth connection.

The end-to-end runs use a small ``--turn-timeout`` (marked ``endings``; about 20 s each);
bench/bench_endings.py runs the same endings with the default options and prints how long each
run took (docs/nightly.md, "Bounded time").
"""

from __future__ import annotations

from types import SimpleNamespace

from pathlib import Path

import pytest

from _endings import ending_relay
from _standalone import KEY, clause_verdicts, run_cases, standalone_server
from conformance.deadlines import IDLE_AFTER_DONE, output_done, quiet_period, turn_timeouts
from conformance.target import load_profile

# the clause each ending breaks
BROKEN = {
    "drop": "STREAM-ONE-TERMINAL",
    "rewrite-id": "STREAM-TERMINAL-RESPONSE",
    "twice": "STREAM-ONE-TERMINAL",
    "delay": "STREAM-ONE-TERMINAL",
    "errors-only": "STREAM-ONE-TERMINAL",
}
# cases that need no generating turn (a handshake, a create refused with an error, HTTP only):
# the stalled-target breaker must never stop them
NO_GENERATING_TURN = (
    "test_transport.py::test_auth_refused_with_wrong_key", "test_transport.py::test_auth_refused_without_key",
    "test_transport.py::test_background_rejected", "test_errors.py::test_error_envelope[",
    "test_lanes.py::test_invalid_stream_id[", "test_cache.py::test_miss_unknown_id",
)


# --- deadlines (no I/O) -----------------------------------------------------------------------

def test_turn_timeouts_from_the_command_line_the_profile_and_the_defaults():
    openai = load_profile("openai")
    assert turn_timeouts(None, openai, embedded=False) == (60.0, IDLE_AFTER_DONE)
    assert turn_timeouts(None, openai, embedded=True) == (10.0, 10.0)
    assert turn_timeouts(2.0, openai, embedded=False) == (2.0, 2.0)       # never longer than the idle one
    vendor = SimpleNamespace(get=lambda key, default=None: {"deadlines.turn_timeout": 120,
                                                             "deadlines.idle_after_done": 20}.get(key, default))
    assert turn_timeouts(None, vendor, embedded=False) == (120.0, 20.0)
    assert turn_timeouts(30.0, vendor, embedded=False) == (30.0, 20.0)    # --turn-timeout wins
    off = SimpleNamespace(get=lambda key, default=None: 0 if key == "deadlines.idle_after_done" else default)
    assert turn_timeouts(None, off, embedded=False) == (60.0, 60.0)       # 0: no shorter deadline


def _rs(events, items_done=(True,)):
    grammar = SimpleNamespace(order=[SimpleNamespace(done=d) for d in items_done])
    return SimpleNamespace(events=events, grammar=grammar)


def test_output_done_only_after_a_final_item():
    msg_done = {"type": "response.output_item.done", "item": {"type": "message"}}
    assert output_done(_rs([{"type": "response.created"}, msg_done]))
    assert output_done(_rs([{"type": "response.output_item.done", "item": {"type": "function_call"}}]))
    assert not output_done(_rs([msg_done], items_done=(True, False)))          # another item is open
    assert not output_done(_rs([{"type": "response.output_item.done", "item": {"type": "reasoning"}}]))
    assert not output_done(_rs([{"type": "response.output_item.done", "item": {"type": "web_search_call"}}]))
    assert not output_done(_rs([msg_done, {"type": "response.output_text.delta"}]))
    assert not output_done(_rs([]))


def test_quiet_period_follows_the_pace_of_the_stream():
    assert quiet_period([0.0, 1.5, 1.51, 1.52, 1.53], cap=2.0) == pytest.approx(0.2)   # fast stream: the floor
    assert quiet_period([0.0, 0.5, 0.8, 1.1], cap=2.0) == pytest.approx(0.9)            # 3 x the largest gap
    assert quiet_period([0.0, 0.1, 2.0], cap=2.0) == 2.0                                # at most the cap
    assert quiet_period([0.0, 0.1], cap=2.0) == 2.0                                     # too few frames: the cap


# --- end to end -------------------------------------------------------------------------------

def _no_generating_turn_cases_ran(cert: dict) -> list[str]:
    """The cases that need no generating turn but the breaker stopped (should be none)."""
    return [c["nodeid"] for c in cert["cases"] if any(k in c["nodeid"] for k in NO_GENERATING_TURN)
            and (c["verdict"] == "ERROR" or any("target stalled" in m for m in c["messages"]))]


@pytest.mark.endings
@pytest.mark.timeout(300)
@pytest.mark.parametrize("ending", list(BROKEN))
def test_an_adversarial_ending_fails_its_clause_in_bounded_time(tmp_path, ending):
    # the delay is past the idle deadline that applies to the turn (after its output is done)
    with standalone_server() as url, ending_relay(url, ending, delay_s=3.0) as relay:
        proc, cert, _ = run_cases(["--target", relay.url, "--api-key", KEY, "--turn-timeout", "1"],
                                  tmp_path / "rep", timeout=240)
    assert cert is not None, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert clause_verdicts(cert)[BROKEN[ending]] == "FAIL", proc.stdout[-3000:]
    assert cert["overall"] == "FAIL" and proc.returncode == 1
    assert cert["counts"]["cases"]["FLAKY"] == 0
    assert not _no_generating_turn_cases_ran(cert)
    passed = {c["nodeid"].split("/")[-1] for c in cert["cases"] if c["verdict"] == "PASS"}
    assert any(n.startswith(NO_GENERATING_TURN[0]) for n in passed)
    if ending in ("drop", "delay", "errors-only"):       # no response ends: the breaker trips once
        assert cert["stalled"]["kind"] == "unfinished"
        stopped = [c for c in cert["cases"] if any("target stalled since" in m for m in c["messages"])]
        assert stopped and all(cert["stalled"]["since"] in m for c in stopped for m in c["messages"]
                               if "target stalled since" in m)
    else:                                                 # every response ends: no stall
        assert cert["stalled"] is None


# the certification rehearsal of docs/certification.md: realistic latency, a short lifetime
OTHER_TENANT_KEY = "sk-selftest-other-tenant-0003"     # tenant isolation (§4.5 item 35a) is certified too
REHEARSAL_SERVER = ("--steering", "--ttft-ms", "150", "--tokens-per-second", "100", "--lifetime", "10",
                    "--api-key", f"{OTHER_TENANT_KEY}:other")
REHEARSAL_PROFILE = Path(__file__).resolve().parent.parent / "docs" / "rehearsal.toml"


@pytest.mark.timeout(300)
def test_a_rate_limit_on_every_fourth_connection_is_retried_and_still_certifies(tmp_path):
    """Issue 21: a clean server behind a relay that answers the first create of every fourth
    connection with a 429 is certified by a run with the default retry options, and the
    certificate counts every retry (a transient refusal is not flakiness)."""
    with standalone_server(args=REHEARSAL_SERVER) as url, ending_relay(url, "rate-limit") as relay:
        proc, cert, _ = run_cases(["--target", relay.url, "--api-key", KEY, f"--target-config={REHEARSAL_PROFILE}",
                                   "--other-tenant-key", OTHER_TENANT_KEY, "-n", "2", "--run-slow"],
                                  tmp_path / "rep", timeout=240)
    assert cert is not None, proc.stdout[-3000:]
    assert relay.refused > 0
    assert cert["retries"]["transient"] == relay.refused           # every 429 retried, none judged
    assert cert["retries"]["by_reason"] == {"rate_limit": relay.refused}
    errors = [(c["nodeid"], c.get("messages", [])[:3]) for c in cert["cases"] if c["verdict"] != "PASS"
              and c["verdict"] not in ("UNSUPPORTED", "SKIPPED", "INFO")]
    assert cert["counts"]["cases"]["FLAKY"] == 0 and cert["counts"]["cases"]["FAIL"] == 0, errors
    errors = [(c["nodeid"], c.get("messages", [])[:3]) for c in cert["cases"] if c["verdict"] != "PASS"
              and c["verdict"] not in ("UNSUPPORTED", "SKIPPED", "INFO")]
    assert cert["certification"]["certified"], (cert["certification"]["reasons"], errors)
    assert proc.returncode == 0, proc.stdout[-3000:]
    retried = [c for c in cert["cases"] if c.get("tries")]
    assert all(t.get("backoff_s") == 1.0 for c in retried for t in c["tries"] if t.get("transient"))
