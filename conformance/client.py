"""The harness: a recording, synchronous WebSocket client with a deadline on every wait.

Implements the "conformance/client.py" seam of ``docs/interfaces.md`` and step 2 of "Data
flow of one case" in ``docs/design.md``; transport facts from ``docs/spec.md``
§1 (URL, ``Authorization: Bearer`` handshake, refusal before upgrade, text JSON frames).

* ``Connection.open(target, headers=, query=, timeout=)`` performs the upgrade. A refused
  upgrade raises ``HandshakeRefused(status, body, headers)``; a target that cannot be reached
  (DNS, refused, handshake timeout, no HTTP answer) raises ``TargetUnreachable`` (verdict
  ERROR, never non-conformance).
* Every frame sent and received is recorded in ``transcript`` (``(t, "sent"|"received",
  text)``, time relative to the open) and fed to the ``StreamMonitor`` of
  ``conformance.monitor`` (with the schema set of ``conformance.schemas``).
* ``create`` / ``wait`` / ``turn`` / ``recv_until`` never block past their deadline and never
  raise on hostile input (bad JSON, binary frames, silence, abrupt close, oversized frames):
  the ``Turn`` says ``timeout`` or ``closed`` and carries the monitor's findings.
* The API key never appears in a transcript, a repr or an exception message: every text that
  leaves this module goes through ``Target.redact``.
* Every ``response.create`` and HTTP request answers to the target's run context
  (``Target.run``, ``conformance.runcontext``): the budget is charged, a stalled target gets
  none, the usage meter counts. The module itself keeps no state; ``Turn`` lives in
  ``conformance.turn``.
"""

from __future__ import annotations

import inspect
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import connect as _ws_connect

from conformance.deadlines import output_done
from conformance.harnesserrors import (Blocked, ClosedAtOnce, HandshakeRefused, HarnessError,  # noqa: F401 - re-exported
                                       RateLimited, ServerError, TargetStalled, TargetUnreachable)
from conformance.monitor import TERMINAL_STATUS, TERMINAL_TYPES, Phase, StreamMonitor
from conformance.target import Target
from conformance.turn import Turn, TurnStatus  # noqa: F401 - Turn re-exported: cases import it from here

_CONNECT_PARAMS = frozenset(inspect.signature(_ws_connect).parameters)
MAX_FRAME_BYTES = 16 * 2**20   # at least; server frames over 1 MiB are normal (§1.4, update 2026-12)
CLOSE_TIMEOUT = 3.0
IN_PLACE_RETRIES = 2          # a turn's create refused for a transient reason is sent again this often
IN_PLACE_WAIT_CAP_S = 10.0    # the longest a turn waits before sending its refused create again
_TRANSCRIPT_TEXT_LIMIT = 256 * 1024
_ENDED_PHASES = frozenset({Phase.DONE, Phase.REJECTED})   # request phases after which nothing is awaited


MISALIGNMENT = "misalignment_policy_violation"


def _inner(error: dict) -> dict:
    """The nested error object of an error event (§3.10), or {} when it has none."""
    inner = error.get("error")
    return inner if isinstance(inner, dict) else {}


def _is_blocked(error: Any) -> bool:
    """A safety block (§3.10): status 403 before streaming or an ``error`` mid-response."""
    if not isinstance(error, dict):
        return False
    inner = _inner(error)
    return MISALIGNMENT in (inner.get("code"), error.get("code"))


def _is_rate_limit(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    inner = _inner(error)
    status = error.get("status", error.get("status_code"))
    return status == 429 or inner.get("code") == "rate_limit_exceeded" or error.get("code") == "rate_limit_exceeded"


def _code(error: Any) -> Any:
    return _inner(error).get("code", error.get("code"))


def _is_server_error(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    status = error.get("status", error.get("status_code"))
    inner = _inner(error)
    return (isinstance(status, int) and status >= 500) or _code(error) == "server_error" \
        or inner.get("type") == "server_error"


def _retry_after(error: Any) -> float | None:
    """The delay a rate-limit error asks for: a retry_after(_ms) field or "try again in Ns"."""
    if not isinstance(error, dict):
        return None
    inner = _inner(error)
    for src in (error, inner):
        for key, scale in (("retry_after", 1.0), ("retry_after_ms", 0.001)):
            value = src.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return float(value) * scale
    found = re.search(r"try again in\s+([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b", str(inner.get("message", "")), re.I)
    if found:
        return float(found.group(1)) / (1000 if found.group(2).lower() == "ms" else 1)
    return None


def _make_monitor(target: Any = None) -> Any:
    """The connection's monitor: the schemas its profile's claims select (spec §5.1) and the
    leniencies of its ``[stream]``."""
    from conformance.schemas import schemas_for
    profile = getattr(target, "profile", None)
    options = profile.monitor_options() if hasattr(profile, "monitor_options") else {}
    return StreamMonitor(schemas_for(profile), **options)


# --- plain HTTP (same-path and compact checks) ------------------------------------------------

@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http_request(target: Target, method: str, url: str, body: Any = None, *,
                 headers: dict | None = None, timeout: float | None = None) -> HttpResult:
    """One HTTP request with the target's auth, a deadline, and the key redacted from the
    result. Raises ``TargetUnreachable`` when no HTTP answer arrives."""
    import urllib.error
    import urllib.request

    hdrs = _merge_headers(target, headers)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(urlsplit(url).hostname) else []
    opener = urllib.request.build_opener(*handlers)
    deadline = target.turn_timeout if timeout is None else timeout
    target.run.charge("http")
    target.run.meter.http_requests += 1
    try:
        with opener.open(req, timeout=deadline) as resp:
            status, response_headers, raw = resp.status, dict(resp.headers.items()), resp.read(4 * 2**20)
    except urllib.error.HTTPError as exc:
        status, response_headers = exc.code, dict(exc.headers.items()) if exc.headers else {}
        try:
            raw = exc.read(4 * 2**20)
        except Exception:  # noqa: BLE001
            raw = b""
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise TargetUnreachable(target.redact(f"{method} {url}: {type(exc).__name__}: {exc}")) from None
    result = HttpResult(status, {k: target.redact(v) for k, v in response_headers.items()},
                        target.redact(raw.decode("utf-8", "replace")))
    if 200 <= status < 300:
        body = result.json()
        target.run.meter.add_usage(body.get("usage") if isinstance(body, dict) else None)
    elif _is_blocked(result.json()):
        raise Blocked(f"{method} {urlsplit(url).path} was blocked by the target's safety system "
                      f"({MISALIGNMENT}, HTTP {status})")
    return result


# --- Connection ------------------------------------------------------------------------------

def _with_query(url: str, query: dict | Iterable | None) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    items = query.items() if isinstance(query, dict) else query
    pairs.extend((str(k), str(v)) for k, v in items)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment))


def _merge_headers(target: Target, headers: dict | None) -> dict[str, str]:
    out = dict(target.auth_headers())
    for name, value in (headers or {}).items():
        for existing in [k for k in out if k.lower() == name.lower()]:
            del out[existing]
        if value is not None:
            out[name] = str(value)
    return out


def _deep_redact(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _deep_redact(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_redact(v, redact) for v in value]
    return value


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or (host or "").startswith("127.")


class Connection:
    """One WebSocket to the target: recording, monitored, deadline-bounded."""

    def __init__(self, target: Target, websocket: Any, url: str, opened_at: float, monitor: Any = None):
        self.target = target
        self.run = target.run       # the budget charged, the liveness asked (conformance.runcontext)
        self._ws = websocket
        self.url = url
        self.t0 = opened_at
        # the peer's clock for this connection starts inside the handshake: between t0 and here
        self.handshake_done = time.monotonic()
        self.monitor = monitor if monitor is not None else _make_monitor(target)
        self.transcript: list[tuple[float, str, str]] = []
        self.closed = False
        self.closed_by_peer = False
        self.closing_at: float | None = None    # when this side began to close (the sandwich reads it)
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.close_detail: str = ""
        self.messages: list[dict] = []          # every parsed message, in order
        self.observed: list[Any] = []           # every Observed, in order
        self._obs_times: list[float] = []
        self._sent_at: dict[int, float] = {}
        self._key_seen = False                  # some frame carried the key: redact Turn data
        self.refusals: list[tuple] = []         # transient error events seen: (reason, retry_after)
        self.retried_in_place: list[str] = []   # reasons of creates that turn() sent again (conformance.retry)
        self.response_headers: dict[str, str] = {}
        self._finished = False
        try:
            self.response_headers = {k: target.redact(v) for k, v in websocket.response.headers.raw_items()}
        except Exception:  # noqa: BLE001
            pass

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, target: Target, *, headers: dict | None = None, query: dict | None = None,
             timeout: float | None = None, monitor: Any = None) -> "Connection":
        """Open a socket. ``headers`` add to / override the auth header (a value of None
        removes that header, e.g. ``{"Authorization": None}`` for no key)."""
        url = _with_query(target.ws_url, query)
        hdrs = _merge_headers(target, headers)
        open_timeout = timeout if timeout is not None else min(target.turn_timeout, 30.0)
        max_size = max(MAX_FRAME_BYTES, target.profile.max_frame_bytes)   # whatever the profile allows
        kwargs: dict[str, Any] = dict(additional_headers=hdrs, open_timeout=open_timeout,
                                      max_size=max_size, close_timeout=CLOSE_TIMEOUT,
                                      compression="deflate")
        if _is_loopback(urlsplit(url).hostname) and "proxy" in _CONNECT_PARAMS:   # websockets >= 15
            kwargs["proxy"] = None  # never route loopback through an environment proxy
        if "legacy" in _CONNECT_PARAMS:    # websockets >= 17: a plain connection, not a context manager
            kwargs["legacy"] = True
        opened_at = time.monotonic()
        try:
            websocket = _ws_connect(url, **kwargs)
        except InvalidStatus as exc:
            resp = exc.response
            body = b""
            try:
                body = bytes(resp.body or b"")
            except Exception:  # noqa: BLE001
                pass
            text = target.redact(body[:4096].decode("utf-8", "replace"))
            hdr = {}
            try:
                hdr = {k: target.redact(v) for k, v in resp.headers.raw_items()}
            except Exception:  # noqa: BLE001
                pass
            raise HandshakeRefused(resp.status_code, text, hdr) from None
        except InvalidURI as exc:
            raise HarnessError(target.redact(f"invalid target URL: {exc}")) from None
        except (OSError, TimeoutError, socket.gaierror, InvalidHandshake, EOFError) as exc:
            what = type(exc).__name__
            raise TargetUnreachable(target.redact(
                f"cannot open {target.redact(url)} within {open_timeout:g}s: {what}: {exc}")) from None
        return cls(target, websocket, target.redact(url), opened_at, monitor)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"closed code={self.close_code}" if self.closed else "open"
        return f"<Connection {self.url} {state} frames={len(self.transcript)}>"

    # --- recording -------------------------------------------------------------------------
    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _record(self, direction: str, data: str | bytes) -> None:
        if isinstance(data, (bytes, bytearray)):
            text = f"<binary frame, {len(data)} bytes: {bytes(data[:48]).hex()}{'...' if len(data) > 48 else ''}>"
        else:
            text = data if len(data) <= _TRANSCRIPT_TEXT_LIMIT else (
                data[:_TRANSCRIPT_TEXT_LIMIT] + f"...<{len(data) - _TRANSCRIPT_TEXT_LIMIT} more chars>")
        red = self.target.redact(text)
        if red is not text and red != text:
            self._key_seen = True
        self.transcript.append((round(self._now(), 6), direction, red))

    def transcript_text(self, limit: int | None = None) -> str:
        rows = self.transcript if limit is None else self.transcript[-limit:]
        lines = [f"# {self.url}"]
        dropped = self.transcript[:len(self.transcript) - len(rows)]
        if dropped:    # says how many received frames precede, so frame numbers still match
            lines.append(f"# {len(dropped)} earlier rows not shown "
                         f"({sum(1 for row in dropped if row[1] == 'received')} received)")
        for offset, direction, text in rows:
            text = text.replace("\r", "\\r").replace("\n", "\\n")
            if len(text) > 4000:
                text = text[:4000] + f"...<{len(text) - 4000} more chars>"
            arrow = ">>" if direction == "sent" else "<<" if direction == "received" else "--"
            lines.append(f"{offset:10.3f} {arrow} {text}")
        if self.closed:
            lines.append(f"# closed code={self.close_code} reason={self.close_reason!r} {self.close_detail}".rstrip())
        return self.target.redact("\n".join(lines))

    def _mark_closed(self, exc: BaseException | None, by_peer: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.closed_by_peer = by_peer
        proto = getattr(self._ws, "protocol", None)
        rcvd = getattr(proto, "close_rcvd", None)
        code = getattr(rcvd, "code", None)
        if code is None:
            code = getattr(proto, "close_code", None)
        self.close_code = code
        self.close_reason = self.target.redact(str(getattr(rcvd, "reason", "") or ""))
        if exc is not None:
            self.close_detail = self.target.redact(f"{type(exc).__name__}: {exc}")[:300]
        self.transcript.append((round(self._now(), 6), "closed", f"code={self.close_code} {self.close_detail}".strip()))
        if by_peer:
            self._finish_monitor()

    def _finish_monitor(self) -> None:
        if not self._finished:
            self._finished = True
            try:
                self.monitor.finish()
            except Exception as exc:  # noqa: BLE001 - a monitor bug must not hang the case
                raise HarnessError(f"monitor.finish() failed: {type(exc).__name__}: "
                                   f"{self.target.redact(str(exc))}") from None

    # --- sending ---------------------------------------------------------------------------
    def send(self, event: dict | str | bytes, timeout: float | None = None, *, _charged: bool = False) -> None:
        """Send a raw event (dict → JSON text frame; str → text frame; bytes → binary frame).
        Sending on a closed socket is recorded and ignored (the next wait says ``closed``).
        With ``timeout``, a send the peer does not take within it (it stopped reading) gives
        up on the socket: the connection counts as closed, not by the peer."""
        if isinstance(event, dict) and event.get("type") == "response.create" and not _charged:
            self.run.charge("creates")
        if isinstance(event, dict):
            data: str | bytes = json.dumps(event, separators=(",", ":"))
        elif isinstance(event, (str, bytes, bytearray)):
            data = event
        else:
            raise HarnessError(f"send() takes a dict, str or bytes, not {type(event).__name__}")
        self._record("sent", data)
        if isinstance(event, dict) and event.get("type") == "response.create":
            self.run.meter.creates += 1
        if self.closed:
            return
        if timeout is not None:
            self._send_within(data, timeout)
            return
        try:
            self._ws.send(data)
        except ConnectionClosed as exc:
            self._mark_closed(exc, by_peer=True)
        except (OSError, RuntimeError) as exc:
            self._mark_closed(exc, by_peer=True)

    def _send_within(self, data: str | bytes, timeout: float) -> None:
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self._ws.send(data)
            except (ConnectionClosed, OSError, RuntimeError) as exc:
                failed.append(exc)

        sender = threading.Thread(target=run, name="conformance-send", daemon=True)
        sender.start()
        sender.join(timeout)
        if sender.is_alive():   # the peer stopped reading: drop the socket under the sender
            try:
                self._ws.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.closing_at = self._now()
            self._mark_closed(TimeoutError(f"the peer did not take a {len(data)}-byte frame within {timeout:g}s"),
                              by_peer=False)
        elif failed:
            self._mark_closed(failed[0], by_peer=True)

    def create(self, **fields: Any) -> int:
        """Send a ``response.create``; ``model`` and ``max_output_tokens`` default from the
        target; a field passed as None is omitted. Returns the request number."""
        event: dict[str, Any] = {"type": "response.create"}
        defaults = {"model": self.target.model, "max_output_tokens": self.target.max_output_tokens}
        for name, value in defaults.items():
            if name not in fields and value:
                event[name] = value
        for name, value in fields.items():
            if value is not None:
                event[name] = value
        self.run.before_create()        # a stalled target gets no more requests
        number = self.monitor.sent(event)
        if number is None:
            raise HarnessError("monitor did not register the response.create")
        self._sent_at[number] = self._now()
        self.send(event, _charged=True)
        return number

    def steer(self, previous_response_id: str, input: Any, **extra: Any) -> None:
        """Send a ``response.steer`` (§2.2); ``extra`` adds fields (a case testing that
        extra fields are refused). The monitor is told, so it can expect the successor."""
        event: dict[str, Any] = {"type": "response.steer", "previous_response_id": previous_response_id,
                                 "input": input, **extra}
        self.monitor.sent(event)
        self.send(event)

    # --- receiving -------------------------------------------------------------------------
    def _recv_one(self, deadline: float) -> Any | None:
        """Receive and feed one frame; None on deadline or close. Never raises for I/O."""
        if self.closed:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            data = self._ws.recv(timeout=remaining)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self._mark_closed(exc, by_peer=True)
            return None
        except (OSError, RuntimeError, EOFError) as exc:
            self._mark_closed(exc, by_peer=True)
            return None
        self._record("received", data)
        try:
            obs = self.monitor.feed(data, self._now())
        except Exception as exc:  # noqa: BLE001
            raise HarnessError(f"monitor.feed() failed on frame {len(self.observed)}: "
                               f"{type(exc).__name__}: {self.target.redact(str(exc))}") from None
        self.observed.append(obs)
        self._obs_times.append(self._now())
        if obs.message is not None:
            self.messages.append(obs.message)
            typ = obs.message.get("type")
            if typ in TERMINAL_TYPES and isinstance(obs.message.get("response"), dict):
                self.run.meter.add_usage(obs.message["response"].get("usage"))
            elif typ == "error" and (_is_rate_limit(obs.message) or _is_server_error(obs.message)):
                # the target refused part of the work: whatever the case makes of it, the
                # try's evidence is incomplete (conformance.retry: a transient reason)
                self.refusals.append(("rate_limit", _retry_after(obs.message)) if _is_rate_limit(obs.message)
                                     else ("server_error", None))
            elif typ == "response.created":
                # a response started on a target that finishes none: whatever waits, stop now
                self.run.response_started()
        return obs

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.target.turn_timeout if timeout is None else timeout)

    def wait(self, request: int, timeout: float | None = None) -> Turn:
        """Collect frames until ``request`` ends (terminal event or request-scoped error), the
        deadline passes, or the socket closes."""
        try:
            monitored = self.monitor.requests[request]
        except (IndexError, TypeError):
            raise HarnessError(f"wait(): no request {request} on this connection") from None
        start_obs = len(self.observed)
        t_start = self._now()
        timings: dict[str, float] = {"sent": self._sent_at.get(request, t_start)}
        if timeout is None:
            limit = self._full_turn(monitored)
        else:               # a deliberate peek: a fixed deadline, never judged
            limit = f"{timeout:g}s"
            deadline = self._deadline(timeout)
            while monitored.state not in _ENDED_PHASES and not self.closed and time.monotonic() < deadline:
                self._recv_one(deadline)
        # connection-level findings seen while waiting (frames matched to no request)
        loose = [f for o in self.observed[start_obs:] if o.request is None for f in o.findings]
        findings = list(monitored.findings) + [f for f in loose if f not in monitored.findings]
        if monitored.state == Phase.DONE and monitored.terminal_type:
            status = TurnStatus(TERMINAL_STATUS.get(monitored.terminal_type, TurnStatus.ERROR))
        elif monitored.state in _ENDED_PHASES:
            status = TurnStatus.ERROR
        elif self.closed:
            status = TurnStatus.CLOSED
        else:
            status = TurnStatus.TIMEOUT
            if timeout is None:  # a full turn's deadline (a deliberate short peek is not judged)
                miss = self.monitor.timed_out(request, limit)
                if miss is not None:
                    findings.append(miss)
        if timeout is None:
            self.run.turn_ended(status, started=monitored.state == Phase.STREAMING or bool(monitored.events))
        timings["elapsed"] = self._now() - timings["sent"]
        timings.update(self._event_times(request))
        detail = ""
        if status == TurnStatus.CLOSED:
            detail = self.close_detail
        elif status == TurnStatus.TIMEOUT:
            detail = f"no end of request {request} ({limit})"
        if status == TurnStatus.CLOSED and self._closed_at_once(request):
            raise ClosedAtOnce(self.target.redact(
                f"refused: the server accepted the upgrade and closed the socket before any frame (close code {self.close_code} "
                f"{self.close_reason}); check the key's permissions and --model (1008 is a policy violation)"))
        create, events = monitored.create, list(monitored.events)
        response, error = monitored.response, monitored.error
        if status == TurnStatus.ERROR and _is_rate_limit(error):
            # no clause is about quotas: a 429 says nothing about conformance (verdict ERROR)
            err = (error or {}).get("error") if isinstance((error or {}).get("error"), dict) else error or {}
            raise RateLimited(self.target.redact(
                f"request {request} was rate-limited (status 429, code {err.get('code')!r}); "
                "retry later or lower the run's concurrency"), _retry_after(error))
        if status == TurnStatus.ERROR and _is_blocked(error):
            # the target refusing (§3.10): neither a protocol FAIL nor worth a retry
            where = "mid-response" if events and events[0].get("type") != "error" else "before streaming"
            raise Blocked(self.target.redact(
                f"request {request} was blocked by the target's safety system ({MISALIGNMENT}, {where})"))
        if status == TurnStatus.ERROR and _is_server_error(error):
            raise ServerError(self.target.redact(
                f"request {request} failed on the server side (code {self.target.redact(str(_code(error)))!r}, "
                f"status {(error or {}).get('status')!r}): the case cannot judge"))
        if self._key_seen:
            create, events, response, error = (_deep_redact(x, self.target.redact)
                                               for x in (create, events, response, error))
        return Turn(request=request, create=create, events=events, response=response,
                    error=error, status=status, findings=findings, timings=timings,
                    close_code=self.close_code if self.closed else None, detail=detail)

    def _full_turn(self, monitored: Any) -> str:
        """Receive until ``monitored`` (the monitor's request) ends, the socket closes, or a
        deadline passes: the idle deadline (``turn_timeout`` since the last frame;
        ``idle_after_done`` once its output is done, ``conformance.deadlines``), the turn cap,
        the run deadline. Returns which deadline applies, for messages."""
        idle = self.target.turn_timeout
        now = time.monotonic()
        cap = self.target.turn_cap or idle * 5
        if self.run.idle_limit:    # a retry after a deadline ending
            idle = min(idle, self.run.idle_limit)
        hard = now + cap
        why = f"idle deadline {idle:g}s (--turn-timeout{'; shortened for a retry' if idle < self.target.turn_timeout else ''}), " \
              f"turn cap {cap:g}s (--turn-cap)"
        left = self.run.remaining()
        if left is not None and now + left < hard:
            hard = now + left
            why += ", run deadline (--run-timeout)"
        after_done = min(idle, getattr(self.target, "idle_after_done", idle) or idle)
        last, done_wait = now, False
        while monitored.state not in _ENDED_PHASES and not self.closed:
            now = time.monotonic()
            done_wait = after_done < idle and output_done(monitored)
            deadline = min(last + (after_done if done_wait else idle), hard)
            if now >= deadline:
                break
            if self._recv_one(deadline) is not None:
                last = time.monotonic()     # any frame shows the target is alive
        if done_wait and monitored.state not in _ENDED_PHASES and not self.closed:
            why = (f"idle deadline {after_done:g}s after its output was done (idle_after_done), "
                   f"turn cap {cap:g}s (--turn-cap)")
        return why

    def _closed_at_once(self, request: int) -> bool:
        """Closed by the peer with nothing received, the client having sent only this first create."""
        frames = [(direction, text) for _, direction, text in self.transcript if direction in ("sent", "received")]
        return request == 0 and self.closed_by_peer and all(
            direction == "sent" and text.startswith('{"type":"response.create"') for direction, text in frames)

    def ended_requests(self) -> int:
        """How many requests of this socket have ended by the monitor's attribution (terminal
        event or error, whatever id it names): for cases that read their own timeline."""
        return sum(1 for rs in self.monitor.requests if rs.state in _ENDED_PHASES)

    def frame_times(self, request: int) -> list[float]:
        """Receive times of the frames attributed to ``request`` (seconds since the open)."""
        return [t for o, t in zip(self.observed, self._obs_times) if o.request == request]

    def _event_times(self, request: int) -> dict[str, float]:
        pairs = [(o, t) for o, t in zip(self.observed, self._obs_times) if o.request == request]
        if not pairs:
            return {}
        out = {"first_event": pairs[0][1], "last_event": pairs[-1][1]}
        for observed, received_at in pairs:    # the perf cases time the first output token
            if isinstance(observed.message, dict) and str(observed.message.get("type", "")).endswith(".delta"):
                out["first_delta"] = received_at
                break
        return out

    def turn(self, timeout: float | None = None, **fields: Any) -> Turn:
        """``wait(create(**fields))``. A create refused before any response started, for a
        transient reason (rate limit, server error: issue 21), is sent again on the same open
        connection after the delay the error asks for, at most ``IN_PLACE_RETRIES`` times; such
        a refusal goes to ``retried_in_place`` (counted in the certificate), not to ``refusals``
        (which would make the whole try run again)."""
        refused: HarnessError | None = None
        for attempt in range(IN_PLACE_RETRIES + 1):
            seen = len(self.refusals)
            try:
                request = self.create(**fields)
                result = self.wait(request, timeout=timeout)
            except (RateLimited, ServerError) as exc:
                fresh = self.refusals[seen:]
                if (attempt == IN_PLACE_RETRIES or self.closed or not fresh
                        or self.monitor.requests[request].response_id is not None):   # it had started
                    raise
                refused = exc
            except HarnessError:
                if refused is not None:       # the socket went away while we waited: the refusal stands
                    raise refused from None
                raise
            else:
                if refused is not None and result.status == TurnStatus.CLOSED:
                    raise refused             # the target closed instead of answering the resend
                return result
            del self.refusals[seen:]
            self.retried_in_place.extend(reason for reason, _ in fresh)
            time.sleep(min(fresh[0][1] or 1.0, IN_PLACE_WAIT_CAP_S))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def recv_until(self, predicate: Callable[[dict], bool], timeout: float) -> list[dict]:
        """Receive messages until ``predicate(message)`` holds (that message included), the
        deadline passes or the socket closes. Returns the parsed messages received."""
        deadline = time.monotonic() + timeout
        got: list[dict] = []
        while not self.closed and time.monotonic() < deadline:
            obs = self._recv_one(deadline)
            if obs is None or obs.message is None:
                continue
            got.append(obs.message)
            try:
                if predicate(obs.message):
                    break
            except Exception as exc:  # noqa: BLE001
                raise HarnessError(f"recv_until predicate raised {type(exc).__name__}: "
                                   f"{self.target.redact(str(exc))}") from None
        return got

    def recv_frames(self, timeout: float) -> list[Any]:
        """Drain whatever arrives within ``timeout`` (Observed objects, including unparsable)."""
        deadline = time.monotonic() + timeout
        start = len(self.observed)
        while not self.closed and time.monotonic() < deadline:
            self._recv_one(deadline)
        return self.observed[start:]

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closing_at = self._now()
        try:
            self._ws.close(code, reason)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        self._mark_closed(None, by_peer=False)

    @property
    def findings(self) -> list:
        return list(getattr(self.monitor, "findings", []))
