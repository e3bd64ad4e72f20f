"""The lines the plugin prints before a run (``pytest_report_header``): what is tested with
which profile, key (set or not, never its value), deadlines and options, what ``--perf``
will spend, and the preflight's steps when the target was usable (docs/design.md "Plugin").
"""

from __future__ import annotations

import pytest

from conformance.options import Settings
from conformance.session import ConformanceSession


def header_lines(config: pytest.Config, sess: ConformanceSession) -> list[str]:
    s = sess.settings
    where = s.target_url or "embedded reference server (127.0.0.1, started on first use)"
    if s.gateway is not None:       # the sandwich (clientmode.sandwich)
        where += f" (the gateway {sess.redact(s.gateway.command)!r}; its upstream: the reference server, recorded)"
    key = "set" if s.api_key else "NOT SET (no auth header will be sent)"
    return [f"conformance target: {where}",
            f"conformance profile: {s.profile.name} ({s.profile.source}"
            + (f": {s.profile.description}" if s.profile.description else "") + f"); model {s.model}; "
            f"key {key} via {s.auth_header}; turn timeout {s.turn_timeout:g}s idle "
            f"({s.idle_after_done or s.turn_timeout:g}s once the output is done), cap {s.turn_cap:g}s; "
            + (f"run timeout {s.run_timeout:g}s; " if s.run_timeout else "") + f"retries {s.retries}; "
            + f"max_output_tokens {s.max_output_tokens}; strict {s.strict}"] + perf_cost(config, s) \
        + ([f"conformance preflight: target usable ({', '.join(step_text(x) for x in sess.preflight['steps'])})"]
           if sess.preflight and sess.preflight["usable"] else [])


def step_text(step: dict) -> str:
    return f"{step['step']} {step['outcome']} in {step['elapsed_ms']:g} ms"


def perf_cost(config: pytest.Config, s: Settings) -> list[str]:
    """With --perf, what the perf loop spends, printed before the run."""
    if not config.getoption("perf"):
        return []
    turns, repetitions = config.getoption("perf_turns"), config.getoption("perf_repetitions")
    where = s.target_url or "the embedded reference server (no cost)"
    return [f"perf: {repetitions} x 2 x {turns} = {2 * turns * repetitions} turns ({turns * repetitions} "
            f"response.create and {turns * repetitions} POST /responses, "
            f"the HTTP ones resending the whole history) against {where}"]
