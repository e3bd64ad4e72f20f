"""The lines the plugin prints before a run (``pytest_report_header``): what is tested with
which profile, key (set or not, never its value), deadlines and options, what ``--perf``
will spend, and the preflight's steps when the target was usable (docs/design.md "Plugin").
"""

from __future__ import annotations

import pytest

from conformance.options import Settings
from conformance.session import ConformanceSession


def header_lines(config: pytest.Config, sess: ConformanceSession) -> list[str]:
    settings = sess.settings
    profile = settings.profile
    where = settings.target_url or "embedded reference server (127.0.0.1, started on first use)"
    if settings.gateway is not None:       # the sandwich (clientmode.sandwich)
        where += (f" (the gateway {sess.redact(settings.gateway.command)!r}; "
                  "its upstream: the reference server, recorded)")
    key = "set" if settings.api_key else "NOT SET (no auth header will be sent)"
    return [_judged(settings, sess, where),
            f"conformance profile: {profile.name} ({profile.source}"
            + (f": {profile.description}" if profile.description else "") + f"); model {settings.model}; "
            f"key {key} via {settings.auth_header}; turn timeout {settings.turn_timeout:g}s idle "
            f"({settings.idle_after_done or settings.turn_timeout:g}s once the output is done), "
            f"cap {settings.turn_cap:g}s; "
            + (f"run timeout {settings.run_timeout:g}s; " if settings.run_timeout else "")
            + f"retries {settings.retries}; "
            + f"max_output_tokens {settings.max_output_tokens}; strict {settings.strict}"] \
        + perf_cost(config, settings) \
        + ([f"conformance preflight: target usable ({', '.join(step_text(x) for x in sess.preflight['steps'])})"]
           if sess.preflight and sess.preflight["usable"] else [])


def _judged(settings: Settings, sess: ConformanceSession, where: str) -> str:
    """The first line: the target, or in client mode the client (the server only plays scenarios)."""
    if not settings.client_mode:
        return f"conformance target: {where}"
    judged = []
    if settings.client_command:
        judged.append(f"{sess.redact(settings.client_command)!r} (claims: {', '.join(settings.client_claims) or 'none'})")
    if settings.client_test_command:
        judged.append(f"its own tests {sess.redact(settings.client_test_command)!r}")
    return f"conformance client: {', '.join(judged)}; against the {where}"


def step_text(step: dict) -> str:
    return f"{step['step']} {step['outcome']} in {step['elapsed_ms']:g} ms"


def perf_cost(config: pytest.Config, settings: Settings) -> list[str]:
    """With --perf, what the perf loop spends, printed before the run."""
    if not config.getoption("perf"):
        return []
    turns, repetitions = config.getoption("perf_turns"), config.getoption("perf_repetitions")
    where = settings.target_url or "the embedded reference server (no cost)"
    return [f"perf: {repetitions} x 2 x {turns} = {2 * turns * repetitions} turns ({turns * repetitions} "
            f"response.create and {turns * repetitions} POST /responses, "
            f"the HTTP ones resending the whole history) against {where}"]
