"""The gateway sandwich (``--gateway-command``, docs/clients.md "Gateways"): the suite's server
cases drive a gateway whose upstream is the reference server, so that one run judges the
gateway on both sides: as a server (every server case, the gateway as the target) and as a
client of its upstream (the client clauses that hold for any traffic,
``conformance.clientmode.anytraffic``, on what the reference server recorded).

The controller starts the reference server with a recording stage (``ScenarioHook`` playing
no scenario: the upstream behaves normally; with ``--gateway-upstream-scenario`` it plays that
scenario on each upstream connection, ``conformance.clientmode.upstreamplay``), then the
gateway command with the upstream in its environment and the address it must listen on, and
waits until that address accepts a TCP connection (``start``). A gateway that never listens
makes the run NOT-USABLE in one line (exit 6). Every process (controller and xdist workers) writes a digest of each frame its cases
sent to the gateway (``SentFrames``), so that a frame the gateway relayed unchanged is excused:
the suite sends invalid frames on purpose, and a relay that passes them on has not broken a
client clause; the digest of each continuation without its ``previous_response_id`` also
catches a gateway that sends it upstream as a new chain (``continued_as_new_chain``,
CLIENT-CONTINUES-CHAIN). After the last case, ``finish`` stops both, judges the upstream traffic and adds
one case record, ``UPSTREAM_NODEID``, to the run's certificate with a ``gateway`` block naming
which clauses judged which side; the scenario's own client clauses join the any-traffic ones,
and each connection a case closed itself is written with its moment (``case_closed``), so that
a close the gateway passed on upstream is not taken for its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from conformance.clientmode.anytraffic import ANY_TRAFFIC, judge_any
from conformance.clientmode.casework import ScenarioTranscript
from conformance.clientmode.record import Connection, Direction, Frame, Process, Recording
from conformance.clientmode.runner import (ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, ENV_WS_URL, MODEL, CommandError,
                                           Run, kill_group, split_command)
from conformance.clientmode import listenport, scenarios as scenario_table, upstreamplay
from conformance.clientmode.scenarios import Scenario

ENV_LISTEN = "CONFORMANCE_GATEWAY_LISTEN"       # HOST:PORT the gateway must listen on
HOST = listenport.HOST
START_TIMEOUT_S = 20.0          # --gateway-start-timeout: until the gateway listens
POLL_S = 0.1
ATTEMPTS = 3                    # ports tried when another process takes the one picked
GRACE_S = 0.5                   # a listener we cannot place is the gateway's if it lives this long
LONG_TEXT = 200_000             # frames longer than this are compared by their first characters
PREFIX = 4096
OUTPUT_KEPT = 4000              # characters of the gateway's stdout / stderr in the report
UPSTREAM_NODEID = "cases/gateway/upstream::test_gateway_upstream_client_clauses"
UPSTREAM = Scenario("gateway-upstream", "the gateway's upstream: the reference server behaving normally, "
                    "recording what the gateway sends", ())
CONTINUED = "continued:"        # the digest of a continuation the suite sent, without its id
CASE_CLOSED = "case-closed:"    # the digest of the first frame of a connection the case closed itself
# a gateway passes its client's close on within this long (generous: a loaded machine), and the
# upstream sees it after the client began it (LAG: the clocks' rounding)
CLOSE_LEAD_S = 5.0
CLOSE_LAG_S = 0.25
_TRUNCATED = re.compile(r"\.\.\.<(\d+) more chars>$")
_BINARY = re.compile(r"^<binary frame, (\d+) bytes")


@dataclass(frozen=True)
class Gateway:
    """What the controller and its workers share: the command, where it listens, the key."""

    command: str
    port: int
    key: str
    start_timeout: float = START_TIMEOUT_S
    upstream_scenario: Scenario | None = None       # --gateway-upstream-scenario (upstreamplay.PLAYABLE)

    @property
    def listen(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.listen}/v1/responses"


def settings_for(config: Any, command: str | None, start_timeout: float | None,
                 upstream_scenario: Scenario | None = None) -> Gateway | None:
    """The run's ``Gateway`` (``pytest.UsageError`` for a bad option): the controller picks the
    port and the key, an xdist worker takes the controller's (``pytest_configure_node``)."""
    if command is None:
        return None
    try:
        split_command(command)
    except CommandError as exc:
        raise pytest.UsageError(str(exc).replace("--client-command", "--gateway-command")) from None
    timeout = START_TIMEOUT_S if start_timeout is None else start_timeout
    if not timeout > 0:
        raise pytest.UsageError("--gateway-start-timeout must be positive")
    given = getattr(config, "workerinput", {}).get("conformance_gateway")
    if given:
        return Gateway(command, int(given["port"]), given["key"], timeout, upstream_scenario)
    return Gateway(command, listenport.free_port(), "sk-conformance-gateway-" + secrets.token_hex(12), timeout,
                   upstream_scenario)


def worker_input(gateway: Gateway) -> dict:
    return {"port": gateway.port, "key": gateway.key}


# --- what the suite sent: one digest per frame, compared with what reached the upstream --------

def _digest(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\0{text}".encode("utf-8", "replace")).hexdigest()


def _json_digest(value: Any) -> str:
    return _digest("json", json.dumps(value, sort_keys=True, separators=(",", ":")))


def projections(event: Any) -> list[str]:
    """``CLAUSE:digest`` of the part of a client event each clause's violation lies in: a
    gateway that rewrites one part (say the input) has not made the suite's deliberate
    violation in another part (an old previous_response_id, a stream field) its own."""
    if not isinstance(event, dict):
        return []
    rest = _json_digest({name: value for name, value in event.items() if name != "input"})
    out = [f"{clause}:{rest}" for clause in (scenario_table.TEXT_JSON, scenario_table.CREATE_FLAT,
                                             scenario_table.CREATE_NO_STREAM)]
    if event.get("type") == "response.create":
        previous = event.get("previous_response_id")
        items = event.get("input") if isinstance(event.get("input"), list) else []
        answered = sorted(str(i.get("call_id")) for i in items
                          if isinstance(i, dict) and i.get("type") == "function_call_output")
        if previous:        # what a gateway that made it a new chain keeps: see continued_as_new_chain
            out.append(CONTINUED + _continuation_digest(event, _normal_items(event.get("input"))))
        out += [f"{scenario_table.CHAIN}:{_json_digest(previous)}",
                f"{scenario_table.TOOL_OUTPUT}:{_json_digest([previous, answered])}",
                f"{scenario_table.NEW_INPUT_ONLY}:{_json_digest([previous, event.get('input')])}"]
    return out


def _normal_items(value: Any) -> list:
    """A create's input as a list of items, in one spelling: a string is one user message, a
    message's string content one text part (a gateway may spell them either way)."""
    items = [{"type": "message", "role": "user", "content": value}] if isinstance(value, str) else value
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "role" in item:
            content = item.get("content")
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item = {"type": "message", **item,
                    "content": [{"type": part, "text": content}] if isinstance(content, str) else content}
        out.append(item)
    return out


def _continuation_digest(event: dict, items: list) -> str:
    rest = {name: value for name, value in event.items() if name not in ("input", "previous_response_id")}
    return _json_digest([rest, items])


def continued_as_new_chain(event: Any, sent: set[str]) -> str | None:
    """Why an upstream create without previous_response_id is a continuation the suite sent
    made into a new chain: its input ends with that continuation's input (or is it), the rest
    of it unchanged. None when it is not (or when it reached the upstream as the suite sent it)."""
    if not isinstance(event, dict) or event.get("type") != "response.create" or event.get("previous_response_id"):
        return None
    items = _normal_items(event.get("input"))
    for start in range(len(items)):
        if CONTINUED + _continuation_digest(event, items[start:]) in sent:
            return (f"a new chain (no previous_response_id, {len(items)} input item(s)) where the gateway's client "
                    f"continued a chain with previous_response_id and {len(items) - start} new item(s)")
    return None


def sent_digests(text: str) -> list[str]:
    """The digests of a frame as ``conformance.client.Connection`` records a sent one
    (redacted, binary frames described, long text cut): the whole frame (``*:``) and its
    ``projections``."""
    binary = _BINARY.match(text)
    if binary:
        return ["*:" + _digest("binary", binary.group(1))]
    if _TRUNCATED.search(text) or len(text) > LONG_TEXT:
        return ["*:" + _digest("long", text[:PREFIX])]
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        return ["*:" + _digest("text", text)]
    return ["*:" + _json_digest(event), *projections(event)]


def upstream_digests(frame: Frame, redact: Any) -> list[str]:
    """The digests of a frame the upstream received, comparable with ``sent_digests``."""
    if not frame.text:
        return ["*:" + _digest("binary", str(frame.size))]
    if frame.size > LONG_TEXT:
        return ["*:" + _digest("long", redact(frame.data)[:PREFIX])]
    try:
        # the stage keeps the parsed event whole (its text only up to 20,000 characters)
        event = json.loads(redact(frame.data) if frame.event is None else redact(json.dumps(frame.event)))
    except (ValueError, RecursionError):
        return ["*:" + _digest("text", redact(frame.data))]
    return ["*:" + _json_digest(event), *projections(event)]


def sent_file(run_dir: Path) -> Path:
    return run_dir / f"gateway-sent-{os.getpid()}.txt"


class SentFrames:
    """A plugin in every process of a gateway run: after each case, the digests of the frames
    its connections sent go to a file of the run directory."""

    def __init__(self, path: Path, case_key: Any) -> None:
        self.path, self.case_key = path, case_key

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item):
        result = yield
        state = item.stash.get(self.case_key, None)
        if state is not None:
            conns = {id(c): c for c in [*(c for t in state.tries for c in t["connections"]), *state.connections]}
            digests = {digest for conn in conns.values()
                       for _, direction, text in getattr(conn, "transcript", ()) if direction == "sent"
                       for digest in sent_digests(text)}
            digests |= {digest for conn in conns.values() if (digest := case_closed(conn))}
            if digests:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write("".join(d + "\n" for d in sorted(digests)))
        return result


def case_closed(conn: Any) -> str | None:
    """``CASE_CLOSED`` + the digest of the first frame of a connection the case closed itself
    (not its peer, the gateway) + ``@`` + when (``time.monotonic``): a gateway that closed its
    upstream at that moment passed its client's close on."""
    if not getattr(conn, "closed", False) or getattr(conn, "closed_by_peer", True):
        return None
    transcript = getattr(conn, "transcript", ())
    first = next((text for _, direction, text in transcript if direction == "sent"), None)
    when = getattr(conn, "closing_at", None)        # when it began to close, not when the handshake ended
    if when is None:
        when = next((at for at, direction, _ in transcript if direction == "closed"), None)
    if first is None or when is None:
        return None
    return f"{CASE_CLOSED}{sent_digests(first)[0]}@{getattr(conn, 't0', 0.0) + when:.3f}"


def _case_closes(sent: set[str]) -> dict[str, list[float]]:
    """The first frame's digest -> when the cases closed connections that began with it."""
    out: dict[str, list[float]] = {}
    for entry in sent:
        if entry.startswith(CASE_CLOSED):
            digest, _, when = entry[len(CASE_CLOSED):].rpartition("@")
            out.setdefault(digest, []).append(float(when))
    return out


def read_sent(run_dir: Path) -> set[str]:
    """Every digest the run's processes wrote; the files are removed."""
    out: set[str] = set()
    for path in run_dir.glob("gateway-sent-*.txt"):
        try:
            out.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
            path.unlink()
        except OSError:
            pass
    return out


# --- the controller: start, stop, judge --------------------------------------------------------

class Sandwich:
    """The upstream reference server and the gateway process of one run (controller only)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.server: Any = None
        self.hook: Any = None
        self.proc: subprocess.Popen | None = None
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.started = 0.0
        self.start_error = ""
        self.retries: list[str] = []        # the addresses given up because another process had them
        self.exited_during_run: int | None = None
        self.stopped_at = float("inf")      # time.monotonic() when the suite began to stop the gateway

    def start(self, start_server: Any, say: Any = None) -> str | None:
        """Start the upstream and the gateway; None once it listens, else the one line why not.
        A port another process took first is given up for a new one (``ATTEMPTS`` in all);
        ``say`` gets one line per port given up, and ``self.gateway`` names the last port."""
        from conformance.clientmode.stage import ScenarioHook
        played = self.gateway.upstream_scenario
        self.hook = ScenarioHook(upstream_scenario(played), self.gateway.key, per_connection=True)
        # the stage authenticates (a key in the URL is seen, not refused unseen), as in client mode
        self.server = start_server(scenario_hook=self.hook, **dict(played.server if played else {}))
        self.started = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            why, taken = self._attempt()
            if why is None:
                return None
            if not taken or attempt == ATTEMPTS:
                if taken:
                    why += f" ({ATTEMPTS} ports tried: {', '.join(self.retries + [self.gateway.listen])})"
                return self._not_listening(why)
            self._stop_gateway()
            given_up = self.gateway.listen
            self.retries.append(given_up)
            self.gateway = replace(self.gateway, port=listenport.free_port())
            if say is not None:
                say(f"gateway sandwich: {given_up} {why}; trying {self.gateway.listen} "
                    f"(attempt {attempt + 1} of {ATTEMPTS})")
        return None     # not reached: the last attempt returns

    def _attempt(self) -> tuple[str | None, bool]:
        """Start the gateway on ``self.gateway.port``: (None, False) once it listens there,
        else (why not, whether another process has the port)."""
        gateway = self.gateway
        if listenport.accepts(gateway.port, POLL_S):       # taken before the gateway could try
            return self._taken("was taken before the gateway started"), True
        env = dict(os.environ)
        env.update({ENV_BASE_URL: self.server.base_url, ENV_API_KEY: gateway.key, ENV_WS_URL: self.server.ws_url,
                    ENV_MODEL: MODEL, ENV_LISTEN: gateway.listen, "PYTHONUNBUFFERED": "1"})
        try:
            self.proc = subprocess.Popen(split_command(gateway.command), env=env, stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=self.err, start_new_session=True)
        except OSError as exc:
            self.start_error = f"cannot start it: {exc}"
            return self.start_error, False
        proc, launched = self.proc, listenport.started(self.proc.pid)
        deadline = time.monotonic() + gateway.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                if listenport.accepts(gateway.port, POLL_S):     # it could not bind: someone else did
                    return self._taken(f"was taken by another process; the gateway exited {proc.returncode}"), True
                return f"it exited {proc.returncode} before listening", False
            if not listenport.accepts(gateway.port, POLL_S):
                time.sleep(POLL_S)
                continue
            whose, _ = listenport.owner(gateway.port, proc.pid, launched)
            if whose == listenport.OURS:
                return None, False
            if whose == listenport.STRANGER:
                return self._taken("was taken by another process before the gateway listened"), True
            # a listener we cannot place: the gateway's if it is still there a moment later
            time.sleep(GRACE_S)
            if proc.poll() is None:
                return None, False
        return f"nothing listened within {gateway.start_timeout:g} s (--gateway-start-timeout)", False

    def _taken(self, what: str) -> str:
        found = listenport.listeners(self.gateway.port) or []
        by = f" ({'; '.join(x.describe() for x in found[:2])})" if found else ""
        return f"{what}{by}"

    def _not_listening(self, why: str) -> str:
        self.stop()
        last = self.tail(self.err).strip().splitlines() or self.tail(self.out).strip().splitlines()
        said = f"; its last line: {last[-1][:200]}" if last else ""
        return (f"GATEWAY NOT USABLE: {self.gateway.command} did not listen on {self.gateway.listen}: "
                f"{why}{said}; check that it listens on ${ENV_LISTEN}")

    def tail(self, stream: Any) -> str:
        try:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - OUTPUT_KEPT))
            return stream.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        """Stop the gateway (its whole process group) and the upstream; idempotent."""
        self.stopped_at = min(self.stopped_at, time.monotonic())
        proc = self.proc
        if proc is not None and proc.poll() is not None and self.exited_during_run is None \
                and not self.start_error:
            self.exited_during_run = proc.returncode
        self._stop_gateway()
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _stop_gateway(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=2.0)
                break
            except subprocess.TimeoutExpired:
                continue
        kill_group(proc)     # nothing it started outlives the run

    def process(self, redact: Any) -> Process:
        duration = round(time.monotonic() - self.started, 3) if self.started else 0.0
        return Process(self.exited_during_run, duration, False, redact(self.tail(self.out)),
                       redact(self.tail(self.err)), self.start_error)

    @property
    def recording(self) -> Recording:
        return self.hook.recording if self.hook is not None else Recording()


def upstream_scenario(played: Scenario | None) -> Scenario:
    """What the upstream's stage plays: nothing, or the acts of the scenario the option named."""
    if played is None:
        return UPSTREAM
    return replace(UPSTREAM, name=f"gateway-upstream: {played.name}", clauses=played.clauses,
                   summary=f"the gateway's upstream, on each connection: {played.summary}",
                   acts=dict(played.acts), every=played.every, server=dict(played.server))


def judged_clauses(gateway: Gateway) -> tuple[str, ...]:
    """The client clauses the upstream case judges: the any-traffic ones and the scenario's."""
    return ANY_TRAFFIC + upstreamplay.judged_clauses(gateway.upstream_scenario)


def judge_upstream(recording: Recording, sent: set[str], redact: Any, played: Scenario | None = None,
                   clock_start: float = 0.0, stopped_at: float = float("inf")) -> tuple[list, int]:
    """The any-traffic judgements of the upstream recording (and those of the scenario the
    upstream played), with what the gateway relayed as the suite sent it excused; and how many
    upstream frames were relayed whole."""
    digests = {id(frame): upstream_digests(frame, redact) for _, frame in recording.frames(Direction.IN)}

    def excused(clause: str, frame: Frame) -> bool:
        own = digests.get(id(frame), ())
        return bool(own) and (own[0] in sent or any(d in sent for d in own[1:] if d.startswith(clause + ":")))

    def new_chain(frame: Frame) -> str | None:
        own = digests.get(id(frame), ())
        if not own or own[0] in sent or frame.size > LONG_TEXT:
            return None         # relayed as the suite sent it (a deliberate new chain), or cut
        try:
            event = json.loads(redact(json.dumps(frame.event))) if frame.event is not None else None
        except (ValueError, RecursionError):
            return None
        return continued_as_new_chain(event, sent)

    def relayed_whole(frame: Frame) -> bool:
        own = digests.get(id(frame), ())
        return bool(own) and own[0] in sent

    closes = _case_closes(sent)

    def closed_by_its_client(conn: Connection) -> bool:
        """The gateway passed a close on: a case began to close the connection this one served
        shortly before the gateway closed it, or the suite was stopping the gateway."""
        if conn.closed is None or clock_start + conn.closed >= stopped_at:
            return True
        first = next((f for f in conn.frames if f.direction is Direction.IN), None)
        own = digests.get(id(first), ()) if first is not None else ()
        if not own or own[0] not in sent:
            return True     # not a case's connection (the preflight's, the gateway's own): nothing to compare
        moment = clock_start + conn.closed
        return any(moment - CLOSE_LEAD_S <= when <= moment + CLOSE_LAG_S for when in closes.get(own[0], ()))

    judgements = judge_any(recording, excused, new_chain)
    if played is not None:
        judgements += upstreamplay.judge_played(recording, played, relayed_whole, closed_by_its_client)
    return judgements, sum(1 for own in digests.values() if own[0] in sent)


def upstream_record(sandwich: Sandwich, registry: Any, redact: Any, sent: set[str]) -> tuple[Any, dict]:
    """The case record of the gateway's upstream side and the certificate's ``gateway`` block."""
    from conformance import verdicts
    from conformance.caserecord import CaseRecord
    from conformance.monitor.records import Finding
    recording = sandwich.recording
    recording.process = sandwich.process(redact)
    played = sandwich.gateway.upstream_scenario
    clauses = judged_clauses(sandwich.gateway)
    judgements, relayed = judge_upstream(recording, sent, redact, played,
                                         sandwich.hook.t0 if sandwich.hook is not None else 0.0, sandwich.stopped_at)
    recorder = verdicts.CaseRecorder(registry, clauses, redact)
    for judgement in judgements:
        if judgement.ok:
            recorder.expect(judgement.clause, True, None, judgement.message)
    recorder.add_findings([Finding(j.clause, j.message) for j in judgements if j.ok is False])
    messages = [f"{o.verdict} {o.clause}: {o.message}" for o in recorder.failures(verdicts.NON_STRICT)]
    if sandwich.exited_during_run is not None:     # its upstream traffic stops short: cannot vouch for it
        recorder.errors.append(f"ERROR: the gateway exited {sandwich.exited_during_run} before the last case ended")
    messages += recorder.errors
    verdict = recorder.verdict()
    transcript = ""
    if verdict != verdicts.PASS:
        run = Run(upstream_scenario(played), recording, sandwich.gateway.key)
        transcript = redact(ScenarioTranscript(run, sandwich.gateway.command).transcript_text())[-200_000:]
    record = CaseRecord(nodeid=UPSTREAM_NODEID, verdict=verdict, clauses=clauses,
                        messages=tuple(redact(m) for m in messages),
                        duration_s=recording.process.duration_s,
                        observations=tuple(o.as_dict() for o in recorder.observations),
                        transcript=transcript, reached=tuple(sorted(recorder.reached())),
                        connections=len(recording.connections))
    record = replace(record, not_reached=tuple(verdicts.not_reached(record)))
    client_side = [c.id for c in registry if c.side == verdicts.CLIENT]
    block = {"command": redact(sandwich.gateway.command), "listen": sandwich.gateway.listen,
             "listen_variable": ENV_LISTEN,
             "server_side": "every server clause: the suite's server cases, with the gateway as their target",
             "client_side": {"case": UPSTREAM_NODEID, "clauses": list(clauses),
                             "not_judged": [c for c in client_side if c not in clauses]},
             "upstream_scenario": played.name if played else None,
             "upstream": {"connections": len(recording.connections),
                          "frames_from_gateway": len(recording.frames(Direction.IN)),
                          "relayed_as_sent": relayed},
             "exit": sandwich.exited_during_run, "ports_given_up": list(sandwich.retries)}
    return record, block


# --- the session's two moments (conformance.plugin calls these on the controller) -------------

def start(sess: Any) -> None:
    """Before the preflight: start the upstream and the gateway. A gateway that does not listen
    makes the run NOT-USABLE: ``sess.preflight`` says why in the preflight's own shape."""
    from conformance import preflight
    settings = sess.settings
    sess.sandwich = Sandwich(settings.gateway)
    reporter = sess.config.pluginmanager.get_plugin("terminalreporter")
    line = sess.sandwich.start(lambda **config: sess.start_server(defects=("no-auth", *settings.defects), **config),
                               say=reporter.write_line if reporter is not None else None)
    if sess.sandwich.gateway != settings.gateway:       # another process had the port: a new one
        settings.gateway = sess.sandwich.gateway        # what pytest_configure_node hands the workers
        sess.retarget(settings.gateway.ws_url)
    if line is None:
        return
    line = sess.redact(line)
    # the preflight's probe of the dead address fills the block's steps; the reason is ours
    _, block = preflight.check_target(sess.target, timeout=min(2.0, settings.preflight_timeout))
    sess.preflight = block | {"usable": False, "message": line.removeprefix("GATEWAY NOT USABLE: "),
                              "check": f"that the gateway command listens on ${ENV_LISTEN} ({settings.gateway.listen})"}
    sess.preflight_line = line


def finish(sess: Any) -> None:
    """After the last case: stop the gateway and the upstream, judge what the upstream received
    and add the upstream case to the run's records."""
    from conformance.runstate import run_dir
    sandwich = getattr(sess, "sandwich", None)
    if sandwich is None:
        return
    sandwich.stop()
    sent = read_sent(run_dir(sess.settings.run_id))
    wanted = sess.config.getoption("select_clauses") or []
    if sess.not_usable or (wanted and not set(wanted) & set(judged_clauses(sandwich.gateway))):
        return      # nothing ran, or --clause left the upstream case out
    record, sess.gateway_block = upstream_record(sandwich, sess.settings.registry, sess.redact, sent)
    sess.records.append(record)
    sess.built_records.append(record)       # the allure results get it too (conformance.allure_plugin)
