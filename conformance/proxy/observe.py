"""What the proxy makes of the traffic it forwards (sans-I/O): one ``Watch`` per proxied
connection, one ``Observer`` for the whole session.

A ``Watch`` feeds the client's frames to ``StreamMonitor.sent`` and the upstream's to
``StreamMonitor.feed`` (§1.4, §3, §4.3, §4.4 (docs/spec.md), the monitor's scope), records
which clauses the frames gave the monitor to check (``conformance.reach``), keeps the last
``transcript_cap`` frames (redacted with the connection's own key) and turns its findings into
the case record ``conformance.report`` writes. The ``Observer`` numbers connections, logs one
line per finding and per connection problem, and writes the report directory with mode
``observed``. No sockets, no asyncio: the relay (relay.py) calls in.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any, Callable

from conformance import reach, verdicts
from conformance.usage import UsageMeter
from conformance.monitor import TERMINAL_TYPES, StreamMonitor
from conformance.report import OBSERVED, write_reports
from conformance.target import redact

LINE_LIMIT = 4000          # characters of one frame kept in a transcript line
REACH_BATCH = 64           # parsed frames buffered before the reached clauses are updated
DEFAULT_TRANSCRIPT_CAP = 400
MODELS_KEPT = 20           # distinct model names kept per connection
DEFAULT_STALL_S = 2.0      # upstream silence before a client's close that makes open responses its fault


def bearer_key(headers: Any) -> str:
    """The key in an ``Authorization: Bearer KEY`` header (empty when there is none)."""
    try:
        value = headers.get("Authorization") or ""
    except Exception:  # noqa: BLE001 - a header object we cannot read carries no key
        return ""
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value.strip()


def _text(data: str | bytes, size: int) -> str:
    """One frame as a transcript shows it (``data`` cut to LINE_LIMIT, ``size`` its length)."""
    if isinstance(data, (bytes, bytearray)):
        return f"<binary frame, {size} bytes: {bytes(data[:48]).hex()}{'...' if size > 48 else ''}>"
    text = data.replace("\r", "\\r").replace("\n", "\\n")
    return text + (f"...<{size - LINE_LIMIT} more chars>" if size > LINE_LIMIT else "")


class Transcript:
    """The last ``cap`` frames and events of a connection: (time, arrow, data, size) in four
    parallel deques, not a tuple per frame. A tuple is a container the garbage collector
    tracks until its next young collection: one per frame was about half of the young
    generation, and the columns make a third fewer young collections."""

    __slots__ = ("times", "arrows", "data", "sizes")

    def __init__(self, cap: int) -> None:
        cap = max(1, cap)
        self.times: deque[float] = deque(maxlen=cap)
        self.arrows: deque[str] = deque(maxlen=cap)
        self.data: deque[str | bytes] = deque(maxlen=cap)
        self.sizes: deque[int] = deque(maxlen=cap)

    def append(self, elapsed: float, arrow: str, data: str | bytes, size: int) -> None:
        self.times.append(elapsed)
        self.arrows.append(arrow)
        self.data.append(data)
        self.sizes.append(size)

    def clear(self) -> None:
        for column in (self.times, self.arrows, self.data, self.sizes):
            column.clear()

    def __len__(self) -> int:
        return len(self.times)

    def __iter__(self) -> Any:
        return zip(self.times, self.arrows, self.data, self.sizes)


class Watch:
    """One proxied connection: monitor, reached clauses, the last frames, usage."""

    def __init__(self, number: int, peer: str, *, registry: verdicts.ClauseRegistry, secret: str = "",
                 schemas: Any = None, transcript_cap: int = DEFAULT_TRANSCRIPT_CAP,
                 on_finding: Callable[["Watch", verdicts.Observation], None] | None = None,
                 stall_s: float = DEFAULT_STALL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.number, self.peer, self.secret = number, peer, secret
        self.nodeid = f"proxy::connection-{number:04d}"
        # the proxy reads no request's events or response objects: the monitor keeps none of
        # them (its rules count events instead), so a long session's memory stays small
        self.monitor = StreamMonitor(schemas, retain="live")
        self.recorder = verdicts.CaseRecorder(registry, (), self.redact)
        self.transcript = Transcript(transcript_cap)
        self.frames = {"from_client": 0, "from_upstream": 0}
        self.usage = UsageMeter()
        self.notes: list[str] = []
        self.models: set[str] = set()            # the models the creates named (the report's fingerprint)
        self.closed = False
        self._on_finding = on_finding
        self._clock = clock
        self._t0 = self._last_upstream = clock()
        self.stall_s = stall_s
        # reach reads a batch of parsed upstream frames; of a batch it needs only the first event
        # of each type (the scopes that read nothing but the type) and the events a scope that
        # reads more applies to: by_monitor then answers as it would for every event of the batch
        self._pending: list[dict] = []           # those events of the batch not yet given to reach
        self._batch_types: set = set()           # the types of the batch so far
        self._batched = 0                        # parsed frames of the batch
        self._content: dict[str, tuple] = {}     # type -> the predicates of _content_for, as needed
        self._lanes: dict[bool, dict] = {}       # one create per lane kind: all reach needs of creates

    def redact(self, text: str) -> str:
        return redact(text, self.secret) if self.secret else text

    def _line(self, arrow: str, data: str | bytes) -> None:
        # kept as it came (cut to LINE_LIMIT): written out, and redacted, only if a report needs it
        size = len(data)
        self.transcript.append(self._clock() - self._t0, arrow, data if size <= LINE_LIMIT else data[:LINE_LIMIT], size)

    def note(self, text: str) -> None:
        """A connection event (handshake, close, a peer that vanished), for log and transcript."""
        text = self.redact(text)
        self.notes.append(text)
        self.transcript.append(self._clock() - self._t0, "--", text, 0)

    def unread(self, from_client: bool, too_big: bool, detail: Any) -> None:
        """A message relayed but not read (too big: ``detail`` its size), or a direction the
        proxy can no longer follow (``detail`` says why)."""
        who = "client" if from_client else "upstream"
        if too_big:
            self.frames["from_client" if from_client else "from_upstream"] += 1
            self.note(f"the {who} sent a message of {detail} bytes: relayed, too big to observe")
        else:
            self.note(f"the {who}'s frames cannot be followed ({detail}): relayed, not observed from here on")

    def transcript_lines(self) -> list[str]:
        """The kept frames and events as transcript lines (not yet redacted)."""
        return [f"{t:10.3f} {arrow} {data if arrow == '--' else _text(data, size)}"
                for t, arrow, data, size in self.transcript]

    # --- frames

    def client_frame(self, data: str | bytes) -> None:
        """The client sent ``data`` (forwarded upstream as it was)."""
        self.frames["from_client"] += 1
        self._line(">>", data)
        try:
            event = json.loads(data)
        except (ValueError, TypeError):
            return                       # the upstream judges what clients send; we only forward it
        if isinstance(event, dict):
            if event.get("type") == "response.create":
                self.usage.creates += 1
                self._lanes.setdefault("stream_id" in event, event)
                model = event.get("model")
                if isinstance(model, str) and len(self.models) < MODELS_KEPT:
                    self.models.add(model[:80])
            self.monitor.sent(event)

    def upstream_frame(self, data: str | bytes) -> None:
        """The upstream sent ``data`` (forwarded to the client as it was)."""
        self.frames["from_upstream"] += 1
        now = self._last_upstream = self._clock()
        size = len(data)
        self.transcript.append(now - self._t0, "<<", data if size <= LINE_LIMIT else data[:LINE_LIMIT], size)
        obs = self.monitor.feed(data, now - self._t0)
        event = obs.message
        if type(event) is dict:
            typ = event["type"]  # a str: feed gives a message only with one
            if typ in TERMINAL_TYPES and type(event.get("response")) is dict:
                self.usage.add_usage(event["response"].get("usage"))
            if typ not in self._batch_types:
                self._batch_types.add(typ)
                self._pending.append(event)
            else:
                content = self._content.get(typ)
                if content is None:
                    content = self._content[typ] = self._content_for(typ)
                for applies in content:
                    if applies(event):
                        self._pending.append(event)
                        break
            self._batched += 1
            if self._batched >= REACH_BATCH:
                self._reach()
        if obs.findings:
            self._report(obs.findings)

    def _content_for(self, typ: str) -> tuple:
        """The predicates of the clauses not yet reached that read more than the type of an
        event of type ``typ`` (a scope declares the types it reads, reach.CONTENT_TYPES)."""
        return tuple(dict.fromkeys(
            applies for clause, (applies, _) in reach.MONITOR_SCOPE.items()
            if clause not in self.recorder.checked and applies not in reach.BY_TYPE_ONLY
            and typ in reach.CONTENT_TYPES.get(applies, (typ,))))

    def _reach(self) -> None:
        if self._pending:
            checked = self.recorder.checked
            scope = {clause: rule for clause, rule in reach.MONITOR_SCOPE.items() if clause not in checked}
            if scope:
                new = reach.by_monitor(self._pending, self._lanes.values(), scope)
                if new:
                    self.recorder.checked = checked | new
                    self._content = {}
            self._pending = []
        self._batch_types = set()
        self._batched = 0

    def _report(self, findings: list) -> None:
        if not findings:
            return
        before = len(self.recorder.observations)
        self.recorder.add_findings(findings)
        for o in self.recorder.observations[before:]:
            if self._on_finding is not None:
                self._on_finding(self, o)

    def close(self, how: str, judge: bool | None = True) -> None:
        """The connection is over (``how``: who closed it, with which code). ``judge``: the
        upstream ended it, so responses it left open are its findings (STREAM-ONE-TERMINAL).
        When the client left first they are the upstream's only if it had been silent for
        ``stall_s`` seconds (the client gave up waiting); never when the proxy stopped."""
        if self.closed:
            return
        self.closed = True
        self.note(how)
        self._reach()
        stalled = self._clock() - self._last_upstream >= self.stall_s
        if judge or (judge is None and stalled):
            self._report(self.monitor.finish())
        # the record needs none of the monitor's state: a long session keeps only the records of
        # its closed connections (hundreds of tracked objects each otherwise, and longer GC pauses)
        self.monitor.release()
        self.monitor = self._lanes = None
        if not self.recorder.failures(verdicts.NON_STRICT):
            self.transcript.clear()      # only connections with findings get a transcript

    # --- the case record of conformance.report

    def record(self) -> dict:
        rec = self.recorder
        verdict = verdicts.ERROR if rec.errors else rec.verdict()
        messages = [f"{self.peer}: {self.frames['from_client']} frame(s) from the client, "
                    f"{self.frames['from_upstream']} from the upstream"]
        messages += [f"{o.verdict} {o.clause}: {o.message}" for o in rec.failures(verdicts.NON_STRICT)]
        messages += rec.errors + self.notes[-5:]
        transcript = ""
        if verdict in (verdicts.FAIL, verdicts.NON_STRICT, verdicts.ERROR):
            transcript = "\n".join([f"# {self.nodeid} from {self.peer}", *self.transcript_lines()])
        return {
            "nodeid": self.nodeid,
            "clauses": sorted(rec.reached()),
            "verdict": verdict,
            "reached": sorted(rec.reached()),
            "messages": [self.redact(m) for m in dict.fromkeys(messages)][:50],
            "observations": [o.as_dict() for o in rec.observations][:500],
            "usage": self.usage.snapshot(),
            "duration_s": round(self._clock() - self._t0, 3),
            "transcript": self.redact(transcript),
            "not_reached": [],
        }


class Observer:
    """Every connection of one proxy session, and the report it writes."""

    def __init__(self, *, registry: verdicts.ClauseRegistry, upstream: str, listen: str, profile: Any,
                 schemas: Any = None, transcript_cap: int = DEFAULT_TRANSCRIPT_CAP,
                 stall_s: float = DEFAULT_STALL_S, log: Callable[[str], None] = lambda line: None) -> None:
        self.registry, self.upstream, self.listen, self.profile = registry, upstream, listen, profile
        if schemas is None and "P-open" in (getattr(profile, "spec_profiles", None) or ()):
            from conformance.schemas import schemas_for
            schemas = schemas_for(profile)  # the P-open shapes (docs/spec.md §5.1)
        self.schemas, self.transcript_cap, self.stall_s, self.log = schemas, transcript_cap, stall_s, log
        self.started = time.time()
        self.watches: list[Watch] = []
        self.problems: list[dict] = []         # handshakes that never became a proxied connection
        self.refused = self.unreachable = 0
        self._count = 0
        self._secrets: set[str] = set()        # every key seen, so the report redacts them all

    def _next(self) -> int:
        self._count += 1
        return self._count

    def open(self, peer: str, secret: str = "") -> Watch:
        if secret:
            self._secrets.add(secret)
        watch = Watch(self._next(), peer, registry=self.registry, secret=secret, schemas=self.schemas,
                      transcript_cap=self.transcript_cap, on_finding=self._finding, stall_s=self.stall_s)
        self.watches.append(watch)
        return watch

    def _finding(self, watch: Watch, observation: verdicts.Observation) -> None:
        said = f"connection {watch.number} {observation.verdict} {observation.clause} [{observation.level}]"
        if observation.response_id:
            said += f" {observation.response_id}"
        self.log(watch.redact(f"{said}: {observation.message}"))

    def refused_handshake(self, peer: str, status: int, secret: str = "") -> None:
        """The upstream refused a client's handshake; the refusal went back to the client as it was."""
        self.refused += 1
        self._problem(peer, verdicts.SKIPPED,
                      f"upstream refused the handshake: HTTP {status} (forwarded to the client)", secret)

    def unreachable_upstream(self, peer: str, detail: str, secret: str = "") -> None:
        """The upstream could not be reached; the client got HTTP 502."""
        self.unreachable += 1
        self._problem(peer, verdicts.ERROR, f"upstream unreachable, answered 502: {detail}", secret)

    def _problem(self, peer: str, verdict: str, message: str, secret: str) -> None:
        number = self._next()
        message = redact(message, secret) if secret else message
        self.log(f"connection {number} from {peer}: {message}")
        self.problems.append({"nodeid": f"proxy::connection-{number:04d}", "clauses": [], "verdict": verdict,
                              "reached": [], "messages": [message], "observations": [],
                              "usage": {}, "duration_s": 0.0, "transcript": "", "not_reached": []})

    def nothing_relayed(self) -> str | None:
        """None when some client connection reached the upstream (a WebSocket opened there);
        else one line saying why nothing was observed."""
        if self.watches:
            return None
        if not self.problems:
            return "no client connected"
        parts = []
        if self.refused:
            parts.append(f"the upstream refused {self.refused} handshake(s)")
        if self.unreachable:
            parts.append(f"the upstream was unreachable for {self.unreachable} handshake(s)")
        return f"{len(self.problems)} client handshake(s), none relayed: " + ", ".join(parts)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = redact(text, s)
        return text

    def records(self) -> list[dict]:
        return [w.record() for w in self.watches] + list(self.problems)

    def summary(self) -> dict:
        return {"upstream": self.upstream, "listen": self.listen,
                "connections": len(self.watches) + len(self.problems), "relayed": len(self.watches),
                "frames": {k: sum(w.frames[k] for w in self.watches) for k in ("from_client", "from_upstream")},
                "refused": self.refused, "unreachable": self.unreachable, "transcript_cap": self.transcript_cap}

    def write(self, report_dir: Any, run_id: str) -> dict[str, str]:
        """Close what is still open and write the report directory (mode ``observed``)."""
        for w in self.watches:
            w.close("proxy stopped with the connection open", judge=False)
        from urllib.parse import urlsplit
        parts = urlsplit(self.upstream)
        fingerprint = {"ws_host": parts.netloc.rsplit("@", 1)[-1], "ws_path": parts.path,
                       **self.profile.identity(),
                       "model": ", ".join(sorted(self._models())), "embedded": False,
                       "auth_header": "Authorization", "capabilities": sorted(self.profile.capabilities())}
        return write_reports(report_dir, registry=self.registry, records=self.records(),
                             profile=self.profile.name, fingerprint=fingerprint, started=self.started,
                             finished=time.time(), strict=False, run_id=run_id,
                             spec_profiles=sorted(self.profile.spec_profiles), redact=self.redact,
                             mode=OBSERVED, extra={"observed": self.summary()})

    def _models(self) -> set[str]:
        out: set[str] = set()
        for watch in self.watches:
            out |= watch.models
        return out
