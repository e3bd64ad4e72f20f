"""Preflight: can this target be tested at all? One handshake with the run's auth header and,
where the profile and the budget allow, one minimal turn, before the first case.

Implements the "Preflight" part of issue 15 and the NOT_USABLE exit code of
``conformance.exitcodes``; transport facts from ``docs/spec.md`` §1.1 (URL), §1.2 (auth and
refusal before the upgrade) and §3.10 (error codes). A target that cannot be tested (auth
refused, nothing listening, not a WebSocket endpoint, wrong path, closed at once, rate-limited
from the first request) ends the run before any case, with one line naming the problem and
what to check, and a certificate whose ``overall`` is ``NOT-USABLE`` (docs/certificate.md).

* ``classify(steps, context)`` is sans-I/O: the ``Step`` records go through the rule table
  ``RULES`` (first matching row per step); a step no row refuses lets the next one decide.
* ``probe(...)`` is the I/O edge (websockets' sync client): each step has a deadline, and the
  whole probe runs in a thread joined under one more, so a hanging DNS lookup cannot hang a run.
* The key never leaves this module: every text a ``Step`` keeps passes ``redact`` first.
"""

from __future__ import annotations

import inspect
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable
from urllib.parse import urlsplit

from websockets.exceptions import (ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus,
                                   InvalidURI)
from websockets.sync.client import connect as _ws_connect

DEFAULT_TIMEOUT = 10.0          # seconds per step (--preflight-timeout)
LISTEN_S = 0.5                  # without a turn: how long to watch for a close right after the upgrade
_CONNECT_PARAMS = frozenset(inspect.signature(_ws_connect).parameters)
_OTHER_HTTP = re.compile(r"\bHTTP/\d(?:\.\d)? ([1-5][0-9]{2})\b")
_TERMINAL = ("response.completed", "response.failed", "response.incomplete")


class Outcome(str, Enum):
    """How one step ended (what was seen, not what it means)."""
    UPGRADED = "upgraded"                   # 101, a WebSocket
    CONNECTION_REFUSED = "connection-refused"
    DNS_FAILURE = "dns-failure"
    TIMEOUT = "timeout"
    TLS_FAILURE = "tls-failure"
    NOT_HTTP = "not-http"                   # bytes that are no HTTP response
    DROPPED = "dropped"                     # the peer closed the TCP connection during the upgrade
    HTTP_STATUS = "http-status"             # an HTTP answer other than 101
    BAD_UPGRADE = "bad-upgrade"             # 101 without a valid WebSocket handshake
    ANSWERED = "answered"                   # frames that are no error (the turn or response began)
    ERROR_EVENT = "error-event"             # an ``error`` event or a ``response.failed`` with an error
    CLOSED = "closed"                       # the socket closed (close code in ``close_code``)
    NO_ANSWER = "no-answer"                 # no frame before the step's deadline
    QUIET = "quiet"                         # listen step: still open, nothing sent
    OTHER = "other"


class Problem(str, Enum):
    """The diagnosis: ``USABLE`` or why the target cannot be tested."""
    USABLE = "usable"
    AUTH_REFUSED = "auth-refused"
    NOTHING_LISTENING = "nothing-listening"
    NOT_WEBSOCKET = "not-a-websocket-endpoint"
    WRONG_PATH = "wrong-path"
    CLOSED_AT_ONCE = "closed-at-once"
    RATE_LIMITED = "rate-limited"
    MODEL_REFUSED = "model-refused"
    UPGRADE_REFUSED = "upgrade-refused"


@dataclass(frozen=True)
class Step:
    """What one step (``handshake``, ``turn`` or ``listen``) saw; every text already redacted."""
    step: str
    outcome: Outcome
    status: int | None = None       # the HTTP status, or the error event's status
    code: str | None = None         # the error event's code
    close_code: int | None = None
    frames: int = 0                 # frames received in this step
    detail: str = ""
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Context:
    """Facts the messages name (never the key itself)."""
    url: str = ""
    timeout: float = DEFAULT_TIMEOUT
    key_sent: bool = True
    auth_header: str = "Authorization"
    model: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"


@dataclass(frozen=True)
class Diagnosis:
    problem: Problem
    what: str = ""                  # names the problem
    check: str = ""                 # what the user checks
    steps: tuple[Step, ...] = field(default=())

    @property
    def usable(self) -> bool:
        return self.problem is Problem.USABLE

    def line(self, url: str) -> str:
        """The one terminal line of a target that is not usable."""
        return f"TARGET NOT USABLE ({self.problem.value}): {url}: {self.what}; check {self.check}"


AUTH_CODES = frozenset({"invalid_api_key", "invalid_authentication", "authentication_error", "unauthorized",
                        "invalid_auth", "permission_denied", "insufficient_permissions"})
RATE_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota", "too_many_requests"})
MODEL_CODES = frozenset({"model_not_found"})

_AUTH_CHECK = "the key (--api-key or $OPENAI_API_KEY{key_note}) and the header it goes in (--auth-header {auth_header})"
_PORT_CHECK = "the port and the scheme in --target (ws:// or wss://)"
_CLOSED = "the server closed the socket right after the upgrade (close code {close_code}{detail_sep}{detail})"


@dataclass(frozen=True)
class Rule:
    step: str                                   # "handshake", or "session" for turn and listen
    outcome: Outcome
    when: Callable[[Step], bool]
    problem: Problem
    what: str                                   # format fields: Step fields, Context fields, key_note, detail_sep
    check: str


_ANY = lambda s: True  # noqa: E731
_STATUS = lambda *codes: (lambda s: s.status in codes)  # noqa: E731

# first matching row decides a step; USABLE rows let the next step decide
RULES: tuple[Rule, ...] = (
    Rule("handshake", Outcome.UPGRADED, _ANY, Problem.USABLE, "", ""),
    Rule("handshake", Outcome.CONNECTION_REFUSED, _ANY, Problem.NOTHING_LISTENING,
         "nothing listening (connection refused)", "that the server runs, and the host and port in --target"),
    Rule("handshake", Outcome.DNS_FAILURE, _ANY, Problem.NOTHING_LISTENING,
         "host name not found{detail_sep}{detail}", "the host name in --target"),
    Rule("handshake", Outcome.TIMEOUT, _ANY, Problem.NOTHING_LISTENING,
         "no answer to the connection or the upgrade within {timeout:g}s",
         "the host and port in --target, firewalls and proxies (or raise --preflight-timeout)"),
    Rule("handshake", Outcome.TLS_FAILURE, _ANY, Problem.NOT_WEBSOCKET, "TLS handshake failed{detail_sep}{detail}", _PORT_CHECK),
    Rule("handshake", Outcome.NOT_HTTP, _ANY, Problem.NOT_WEBSOCKET,
         "the answer to the upgrade is no HTTP response{detail_sep}{detail}", _PORT_CHECK),
    Rule("handshake", Outcome.DROPPED, _ANY, Problem.NOT_WEBSOCKET,
         "the server closed the connection during the upgrade{detail_sep}{detail}", _PORT_CHECK),
    Rule("handshake", Outcome.BAD_UPGRADE, _ANY, Problem.NOT_WEBSOCKET,
         "the upgrade answer is no valid WebSocket handshake{detail_sep}{detail}",
         "that --target is a WebSocket endpoint (…/v1/responses)"),
    Rule("handshake", Outcome.HTTP_STATUS, _STATUS(401, 403), Problem.AUTH_REFUSED,
         "authentication refused at the upgrade (HTTP {status})", _AUTH_CHECK),
    Rule("handshake", Outcome.HTTP_STATUS, _STATUS(404), Problem.WRONG_PATH,
         "HTTP 404 at the upgrade: no endpoint at path {path}",
         "the path in --target (e.g. wss://HOST/v1/responses, or the API base https://HOST/v1)"),
    Rule("handshake", Outcome.HTTP_STATUS, _STATUS(429), Problem.RATE_LIMITED,
         "rate-limited at the upgrade (HTTP 429)", "the key's rate limits and quota, then run again later"),
    Rule("handshake", Outcome.HTTP_STATUS, lambda s: s.status is not None and 300 <= s.status < 400,
         Problem.NOT_WEBSOCKET, "the upgrade was redirected (HTTP {status}{detail_sep}{detail})",
         "--target: give the URL it redirects to"),
    Rule("handshake", Outcome.HTTP_STATUS, lambda s: s.status is not None and (200 <= s.status < 300
                                                                                or s.status in (405, 426)),
         Problem.NOT_WEBSOCKET, "a plain HTTP answer (HTTP {status}) without a WebSocket upgrade",
         "that --target is the WebSocket endpoint (wss://HOST/v1/responses), not a web page"),
    Rule("handshake", Outcome.HTTP_STATUS, _ANY, Problem.UPGRADE_REFUSED,
         "the upgrade was refused (HTTP {status}{detail_sep}{detail})",
         "the server's logs, and the query and headers the endpoint needs"),
    Rule("handshake", Outcome.OTHER, _ANY, Problem.NOTHING_LISTENING,
         "the connection failed{detail_sep}{detail}", "the host and port in --target"),
    # after the upgrade: the turn (or, without one, a short listen)
    Rule("session", Outcome.CLOSED, lambda s: s.frames == 0, Problem.CLOSED_AT_ONCE, _CLOSED,
         "the server's logs, the key's permissions and --model (1008 is a policy violation)"),
    Rule("session", Outcome.ERROR_EVENT, lambda s: s.status in (401, 403) or s.code in AUTH_CODES,
         Problem.AUTH_REFUSED, "authentication refused at the first response.create (error {code}, status {status})",
         _AUTH_CHECK),
    Rule("session", Outcome.ERROR_EVENT, lambda s: s.status == 429 or s.code in RATE_CODES, Problem.RATE_LIMITED,
         "rate-limited from the first response.create (error {code})",
         "the key's rate limits and quota, then run again later"),
    Rule("session", Outcome.ERROR_EVENT, lambda s: s.code in MODEL_CODES, Problem.MODEL_REFUSED,
         "the model {model!r} was refused at the first response.create (error {code})",
         "--model, or the profile's target.default_model"),
)


def _rule_for(step: Step) -> Rule | None:
    kind = "handshake" if step.step == "handshake" else "session"
    return next((r for r in RULES if r.step == kind and r.outcome is step.outcome and r.when(step)), None)


def classify(steps: list[Step] | tuple[Step, ...], context: Context = Context()) -> Diagnosis:
    """The diagnosis of a probe's steps: the first step a rule refuses, else USABLE."""
    for step in steps:
        rule = _rule_for(step)
        if rule is None or rule.problem is Problem.USABLE:
            continue
        what, check = explain(rule, step, context)
        return Diagnosis(rule.problem, what, check, tuple(steps))
    return Diagnosis(Problem.USABLE, steps=tuple(steps))


def explain(rule: Rule, step: Step, context: Context) -> tuple[str, str]:
    """A rule's two sentences for ``step``: what the problem is, what to check."""
    fields = {**asdict(context), **asdict(step), "path": context.path,
              "key_note": "" if context.key_sent else "; no key was sent",
              "detail_sep": ": " if step.detail else ""}
    return rule.what.format(**fields), rule.check.format(**fields)


# --- the minimal turn ------------------------------------------------------------------------------

def minimal_create(model: str, generate_false: bool, max_output_tokens: int) -> tuple[dict, str]:
    """The cheapest ``response.create`` the profile allows, and how to name it: a
    ``generate:false`` warm-up where the profile claims it, else a tiny generated turn."""
    if generate_false:
        return ({"type": "response.create", "model": model, "input": "preflight", "store": False,
                 "generate": False}, "generate:false")
    tokens = max_output_tokens or 16
    return ({"type": "response.create", "model": model, "input": "Reply with OK.", "store": False,
             "max_output_tokens": tokens}, f"max_output_tokens={tokens}")


# --- I/O ------------------------------------------------------------------------------------------

def _short(text: Any, redact: Callable[[str], str], limit: int = 160) -> str:
    return redact(" ".join(str(text).split()))[:limit]


def _handshake_failure(exc: BaseException, redact: Callable[[str], str]) -> Step:
    """The Step of an upgrade that did not give a WebSocket (order matters: SSLError is an OSError)."""
    if isinstance(exc, InvalidStatus):
        resp = exc.response
        detail = ""
        try:
            loc = resp.headers.get("Location")
            body = bytes(resp.body or b"")[:300].decode("utf-8", "replace")
            detail = f"Location: {loc}" if loc else body
        except Exception:  # noqa: BLE001
            pass
        return Step("handshake", Outcome.HTTP_STATUS, status=resp.status_code, detail=_short(detail, redact))
    if isinstance(exc, InvalidMessage):
        dropped = isinstance(exc.__cause__, (EOFError, ConnectionError))
        http = _OTHER_HTTP.search(str(exc.__cause__ or ""))
        if http:        # an HTTP answer websockets does not take (e.g. HTTP/1.0): its status says more
            return Step("handshake", Outcome.HTTP_STATUS, status=int(http.group(1)),
                        detail=_short(f"{exc}: {exc.__cause__}", redact))
        return Step("handshake", Outcome.DROPPED if dropped else Outcome.NOT_HTTP,
                    detail=_short(f"{exc}: {exc.__cause__}" if exc.__cause__ else exc, redact))
    if isinstance(exc, InvalidURI):
        return Step("handshake", Outcome.OTHER, detail=_short(exc, redact))
    if isinstance(exc, InvalidHandshake):
        return Step("handshake", Outcome.BAD_UPGRADE, detail=_short(exc, redact))
    if isinstance(exc, ConnectionRefusedError):
        return Step("handshake", Outcome.CONNECTION_REFUSED, detail=_short(exc, redact))
    if isinstance(exc, socket.gaierror):
        return Step("handshake", Outcome.DNS_FAILURE, detail=_short(exc, redact))
    if isinstance(exc, ssl.SSLError):
        return Step("handshake", Outcome.TLS_FAILURE, detail=_short(exc, redact))
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return Step("handshake", Outcome.TIMEOUT, detail=_short(exc, redact))
    if isinstance(exc, (EOFError, ConnectionError)):
        return Step("handshake", Outcome.DROPPED, detail=_short(f"{type(exc).__name__}: {exc}", redact))
    return Step("handshake", Outcome.OTHER, detail=_short(f"{type(exc).__name__}: {exc}", redact))


def _closed(step: str, exc: ConnectionClosed, frames: int, redact: Callable[[str], str]) -> Step:
    rcvd = getattr(exc, "rcvd", None)
    reason = f"reason {rcvd.reason!r}" if rcvd is not None and rcvd.reason else ""
    return Step(step, Outcome.CLOSED, close_code=getattr(rcvd, "code", None), frames=frames,
                detail=_short(reason, redact))


def _error_step(msg: dict, frames: int, redact: Callable[[str], str]) -> Step | None:
    """An ``error`` event, or a ``response.failed`` carrying an error: the Step; else None."""
    if msg.get("type") == "error":
        inner = msg.get("error") if isinstance(msg.get("error"), dict) else msg
        status = msg.get("status", msg.get("status_code"))
    elif msg.get("type") == "response.failed" and isinstance((msg.get("response") or {}).get("error"), dict):
        inner, status = msg["response"]["error"], None
    else:
        return None
    code = inner.get("code")
    return Step("turn", Outcome.ERROR_EVENT, status=status if isinstance(status, int) else None,
                code=_short(code, redact, 80) if code is not None else None, frames=frames,
                detail=_short(inner.get("message", ""), redact))


def _turn(websocket: Any, create: dict, deadline_s: float, redact: Callable[[str], str]) -> Step:
    frames = 0
    try:
        websocket.send(json.dumps(create, separators=(",", ":")))
    except ConnectionClosed as exc:
        return _closed("turn", exc, frames, redact)
    deadline = time.monotonic() + deadline_s
    first = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if frames:
                return Step("turn", Outcome.ANSWERED, frames=frames,
                            detail=f"{first}; no terminal event within {deadline_s:g}s")
            return Step("turn", Outcome.NO_ANSWER, detail=f"no frame within {deadline_s:g}s")
        try:
            data = websocket.recv(timeout=remaining)
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            return _closed("turn", exc, frames, redact)
        frames += 1
        try:
            msg = json.loads(data)
        except (TypeError, ValueError):
            msg = None
        if not isinstance(msg, dict):
            first = first or "a frame that is no JSON object"
            continue
        err = _error_step(msg, frames, redact)
        if err is not None:
            return err
        kind = _short(msg.get("type", "?"), redact, 60)
        first = first or f"first event {kind}"
        if kind in _TERMINAL:
            return Step("turn", Outcome.ANSWERED, frames=frames, detail=f"{first}, ended by {kind}")


def _listen(websocket: Any, seconds: float, redact: Callable[[str], str]) -> Step:
    try:
        websocket.recv(timeout=seconds)
    except TimeoutError:
        return Step("listen", Outcome.QUIET)
    except ConnectionClosed as exc:
        return _closed("listen", exc, 0, redact)
    return Step("listen", Outcome.ANSWERED, frames=1, detail="an unsolicited frame")


def _run(url: str, headers: dict[str, str], create: dict | None, timeout: float, turn_timeout: float,
         redact: Callable[[str], str], out: list[Step], current: dict) -> None:
    kwargs: dict[str, Any] = dict(additional_headers=headers, open_timeout=timeout, close_timeout=1.0,
                                  max_size=16 * 2**20)
    host = urlsplit(url).hostname or ""
    if (host in ("localhost", "::1") or host.startswith("127.")) and "proxy" in _CONNECT_PARAMS:
        kwargs["proxy"] = None          # loopback never goes through an environment proxy
    if "legacy" in _CONNECT_PARAMS:
        kwargs["legacy"] = True
    started = time.monotonic()
    current["step"] = "handshake"
    try:
        websocket = _ws_connect(url, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - every failure is a finding of the handshake
        out.append(_stamp(_handshake_failure(exc, redact), started))
        return
    out.append(_stamp(Step("handshake", Outcome.UPGRADED, status=101), started))
    try:
        turn_started = time.monotonic()
        if create is not None:
            current["step"] = "turn"
            out.append(_stamp(_turn(websocket, create, turn_timeout, redact), turn_started))
        else:
            current["step"] = "listen"
            out.append(_stamp(_listen(websocket, min(LISTEN_S, timeout), redact), turn_started))
    except Exception as exc:  # noqa: BLE001 - an I/O failure after the upgrade
        out.append(_stamp(Step(current["step"], Outcome.CLOSED, frames=0,
                               detail=_short(f"{type(exc).__name__}: {exc}", redact)), turn_started))
    finally:
        try:
            websocket.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def _stamp(step: Step, started: float) -> Step:
    return Step(**{**step.__dict__, "elapsed_ms": round((time.monotonic() - started) * 1000, 1)})


def probe(url: str, headers: dict[str, str], *, create: dict | None, timeout: float = DEFAULT_TIMEOUT,
          turn_timeout: float | None = None, redact: Callable[[str], str] = lambda t: t) -> list[Step]:
    """Handshake, then the turn ``create`` (or, when None, a short listen for a close).
    Ends within ``timeout`` (handshake) + ``turn_timeout`` (default ``timeout``) + 3 s."""
    turn_timeout = timeout if turn_timeout is None else turn_timeout
    out: list[Step] = []
    current = {"step": "handshake"}
    worker = threading.Thread(target=_run, args=(url, headers, create, timeout, turn_timeout, redact, out, current),
                              name="conformance-preflight", daemon=True)
    worker.start()
    worker.join(timeout + turn_timeout + 3.0)
    if worker.is_alive():           # e.g. a DNS lookup the socket timeout does not bound
        step = current["step"]
        outcome = Outcome.TIMEOUT if step == "handshake" else Outcome.NO_ANSWER
        out = list(out) + [Step(step, outcome, detail=f"the {step} did not end within its deadline")]
    return list(out)


def report_block(diagnosis: Diagnosis, *, url: str, timeout: float, turn: str) -> dict:
    """The certificate's ``preflight`` block (schemas/certificate.json): what was tried, what it
    found. ``url`` must already be redacted; no header value is ever part of it."""
    return {"usable": diagnosis.usable, "diagnosis": diagnosis.problem.value, "message": diagnosis.what,
            "check": diagnosis.check, "target": url, "timeout_s": timeout, "turn": turn,
            "steps": [s.as_dict() for s in diagnosis.steps]}


def check_target(target: Any, *, timeout: float = DEFAULT_TIMEOUT, budget: Any = None) -> tuple[Diagnosis, dict]:
    """Probe a ``conformance.target.Target`` and classify it: (diagnosis, certificate block).
    ``budget`` (``conformance.budget.Budget``): the turn is sent only if one create fits in
    ``--max-requests``, and then counts against it."""
    from conformance.budget import Declared
    create, turn = minimal_create(target.model, target.has("generate_false"), target.max_output_tokens)
    if budget is not None and budget.reserve(Declared(1, 0)):
        create, turn = None, "none (no request left in --max-requests)"
    try:
        if create is not None and budget is not None:
            budget.take("creates")
        steps = probe(target.ws_url, target.auth_headers(), create=create, timeout=timeout,
                      turn_timeout=min(timeout, target.turn_timeout), redact=target.redact)
    finally:
        if budget is not None:
            budget.release()
    url = target.redact(target.ws_url)
    diagnosis = classify(steps, Context(url=url, timeout=timeout, key_sent=bool(target.api_key),
                                        auth_header=target.auth_header, model=target.model))
    return diagnosis, report_block(diagnosis, url=url, timeout=timeout, turn=turn)
