"""One client-mode case: play a scenario against the client command, keep what it recorded
for the case's reports (``ScenarioTranscript``, shaped like the connections a server case
keeps), and hand back the judgements. ``conformance.plugin``'s ``client_scenario`` fixture
calls ``play``; the case states one ``expect`` per judgement (cases/client/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.clientmode.judge import Judgement, judge
from conformance.clientmode.record import Direction
from conformance.clientmode.runner import Run, run_scenario
from conformance.clientmode.scenarios import Scenario
from conformance.monitor.records import Finding

FRAME_CHARS = 2000          # characters of one frame in the transcript


class _NoMonitor:
    requests: tuple = ()


class ScenarioTranscript:
    """What a client-mode case keeps of its scenario, in the shape the reports read from a
    ``conformance.client.Connection`` (transcript rows, no monitor findings)."""

    closed = True
    close_reason = ""
    close_detail = ""
    response_headers: dict = {}
    refusals: tuple = ()

    def __init__(self, run: Run, command: str) -> None:
        self.run, self.command = run, command
        self.url = f"client mode: {run.redact(command)} (scenario {run.scenario.name})"
        self.messages: list = []
        self.findings: list = []
        self.monitor = _NoMonitor()
        process = run.recording.process
        self.close_code = None if process is None else process.returncode
        self.transcript = [(f.at, "sent" if f.direction is Direction.OUT else "received",
                            f"[connection {c.index}] {run.redact(f.data[:FRAME_CHARS])}")
                           for c, f in run.recording.frames()]

    def transcript_text(self, limit: int | None = None) -> str:
        run = self.run
        rec = run.recording
        lines = [f"# scenario {run.scenario.name}: {run.scenario.summary}",
                 f"# client command: {run.redact(self.command)}"]
        for conn in rec.connections:
            state = f"refused with HTTP {conn.refused}" if conn.refused else "accepted"
            lines.append(f"# connection {conn.index} opened at {conn.opened:g} s ({state}); key in header: "
                         f"{conn.key_in_header}, key in URL: {conn.key_in_url}; closed by {conn.closed_by or '-'} "
                         f"at {conn.closed} code {conn.close_code}")
        for form in rec.limit_errors:
            lines.append(f"# lifetime limit error sent {form}")
        rows = self.transcript if limit is None else self.transcript[-limit:]
        for at, direction, text in rows:
            # the reports' arrows are the suite's view: here the suite is the server, so a frame
            # the client sent is "<<" (received) and the server's answer ">>" (sent)
            lines.append(f"{at:10.3f} {'>>' if direction == 'sent' else '<<'} {text}")
        process = rec.process
        if process is not None:
            ending = process.start_error or ("killed at the deadline" if process.timed_out
                                             else f"exit {process.returncode}")
            lines.append(f"# process: {ending} after {process.duration_s:g} s")
            lines.append("# stdout:\n" + run.redact(process.stdout[-4000:]))
            lines.append("# stderr:\n" + run.redact(process.stderr[-4000:]))
        return "\n".join(lines)

    def close(self) -> None:
        """Nothing stays open: the runner stopped the server and the client."""


def play(scenario: Scenario, command: str, connections: list, cwd: str | Path | None = None,
         deadline_s: float | None = None) -> list[Judgement]:
    """Run ``scenario`` against ``command``; its transcript joins ``connections`` (the case's)."""
    run = run_scenario(scenario, command, cwd=str(cwd) if cwd else None, deadline_s=deadline_s)
    transcript = ScenarioTranscript(run, command)
    connections.append(transcript)
    judgements = [Judgement(j.clause, j.ok, run.redact(j.message)) for j in judge(run.recording, scenario)]
    # every clause was judged on the whole recording: a failed one is a finding of the case
    # (as the monitor's are), so one failed MUST does not leave the other failures unrecorded
    transcript.findings = [Finding(j.clause, j.message) for j in judgements if j.ok is False]
    return judgements


def expect_all(judgements: list[Judgement], expect: Any) -> None:
    """One ``expect`` per clause that held; the failed ones are the findings ``play`` attached
    to the case (the plugin adds them to its verdict); a clause with nothing to judge stays
    NOT-REACHED."""
    for j in judgements:
        if j.ok:
            expect(j.clause, True, None, j.message)
