"""Runs one client-mode scenario: the reference server with the scenario's stage on
127.0.0.1:0, then the client command once, with the endpoint and a fresh key in its
environment (docs/clients.md "The contract"), under the scenario's deadline.

The command is split like a shell would (no shell runs it); a leading ``python`` or
``python3`` is the Python running the suite, so the client sees the same packages. On the
deadline the client's whole process group is killed. The key is generated per run, and
removed from everything the report keeps (stdout, stderr, frames).
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from conformance.clientmode.record import Process, Recording
from conformance.clientmode.scenarios import CONTRACT_SWITCHES, Scenario
from conformance.clientmode.stage import ScenarioHook
from conformance.target import redact

# the environment of the client command (docs/clients.md)
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_WS_URL = "CONFORMANCE_WS_URL"
ENV_TURNS = "CONFORMANCE_CLIENT_TURNS"
ENV_MODEL = "CONFORMANCE_MODEL"
ENV_SCENARIO = "CONFORMANCE_SCENARIO"
MODEL = "gpt-5.6"
OUTPUT_KEPT = 20_000          # characters of stdout / stderr kept for the report
COLLECT_S = 3.0               # after a kill: how long to wait for the pipes to close


class CommandError(ValueError):
    """The client command is unusable (empty, unbalanced quotes)."""


def split_command(command: str) -> list[str]:
    """The argv of ``command``; a leading ``python``/``python3`` is ``sys.executable``."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CommandError(f"--client-command {command!r}: {exc}") from None
    if not argv:
        raise CommandError("--client-command: give the command that runs your client")
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


@dataclass
class Run:
    scenario: Scenario
    recording: Recording
    key: str

    def redact(self, text: str) -> str:
        return redact(text, self.key)


def _tail(data: bytes | str | None) -> str:
    if not data:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[-OUTPUT_KEPT:]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to ``proc``'s whole process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_scenario(scenario: Scenario, command: str, *, deadline_s: float | None = None,
                 cwd: str | None = None) -> Run:
    """Play ``scenario`` against ``command``; the recording carries the process outcome."""
    from conformance.server import ServerConfig, ServerThread

    argv = split_command(command)
    key = "sk-conformance-client-" + secrets.token_hex(12)
    hook = ScenarioHook(scenario, key)
    # the stage authenticates (ScenarioHook.connect): the server's own check would refuse a
    # key sent in the URL before the stage could see it
    config = ServerConfig(host="127.0.0.1", port=0, defects=("no-auth",), scenario_hook=hook,
                          **dict(scenario.server))
    server = ServerThread(config)
    server.start()
    deadline = scenario.deadline_s if deadline_s is None else deadline_s
    env = dict(os.environ)
    env.update({ENV_BASE_URL: server.base_url, ENV_API_KEY: key, ENV_WS_URL: server.ws_url,
                ENV_TURNS: str(scenario.turns), ENV_MODEL: MODEL, ENV_SCENARIO: scenario.name,
                "PYTHONUNBUFFERED": "1"})
    for name in CONTRACT_SWITCHES:      # only the scenario sets them (store=false, a pause)
        env.pop(name, None)
    env.update(scenario.env)
    started = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            hook.recording.process = Process(None, 0.0, False, start_error=f"cannot start {argv[0]!r}: {exc}")
            return Run(scenario, hook.recording, key)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
            try:
                out, err = proc.communicate(timeout=COLLECT_S)
            except subprocess.TimeoutExpired:      # a grandchild holds the pipes open
                out, err = b"", b""
        finally:
            kill_group(proc)      # nothing the client started outlives its scenario
        duration = time.monotonic() - started
        hook.recording.process = Process(None if timed_out else proc.returncode, round(duration, 3), timed_out,
                                         _tail(out), _tail(err))
    finally:
        server.stop()
    return Run(scenario, hook.recording, key)
