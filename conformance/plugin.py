"""The pytest plugin (entry point ``responses_ws_conformance``): options, fixtures, clause
marks, verdict hooks and reports.

Implements the plugin layer of ``docs/design.md`` ("Data flow of one case" steps 1, 4
and 5, "Verdicts", "Reports") on top of the seams in ``docs/interfaces.md``:

* options build a ``Target`` (``conformance.target``); without ``--target`` the reference
  server (``conformance.server.ServerThread``) is started on loopback, once per process
  (each pytest-xdist worker starts its own);
* every case carries ``@pytest.mark.clause(...)`` with ids from the clause registry; clauses
  whose ``requires``/``profiles`` the target does not claim make the case UNSUPPORTED (a skip
  whose reason starts with ``UNSUPPORTED:``) before it runs;
* fixtures ``target``, ``connect``, ``expect``/``verdict``, ``nonce``, ``reference_server``,
  ``reference_server_factory``;
* after a case, its expectations and the monitor findings of its connections give the
  verdict (``conformance.verdicts``); the controller (or the only process) collects one
  record per case from the teardown reports (these travel through xdist) and writes
  ``certificate.json``, ``junit.xml`` and ``index.html`` (``conformance.report``).
"""

from __future__ import annotations

import os
import re
import secrets
import string
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import reach, verdicts as V
from conformance.client import METER, Connection, HandshakeRefused, HarnessError, TargetUnreachable
from conformance.target import ProfileError, Target, TargetError, derive_urls, load_profile, redact

EMBEDDED_KEY = "sk-conformance-local-0000"     # the embedded server accepts only this key
NONCE_RE = re.compile(r"\b[A-Z]{3,12}-[0-9]{4,8}\b")
_SERVER_PROFILES = {"reference": "openai", "openai": "openai", "openai-2026-02": "openai",
                    "xai": "xai", "open-responses": "open-responses"}


def _server_profile(profile: Any) -> str:
    """The reference server's profile for a suite profile (by name, else its built-in parent)."""
    return _SERVER_PROFILES.get(profile.name) or _SERVER_PROFILES.get(profile.get("extends") or "", "openai")


class ConformanceWarning(UserWarning):
    """A SHOULD clause was violated (verdict NON-STRICT)."""


# --- options ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("responses-ws-conformance", "Responses API WebSocket conformance")
    g.addoption("--target", default=None, metavar="URL",
                help="endpoint under test: a ws(s):// socket URL used as is, or an http(s):// API base "
                     "URL (…/v1) from which the socket URL is derived like the SDKs do. "
                     "Without it the embedded reference server is started on loopback.")
    g.addoption("--api-key", default=None, metavar="KEY",
                help="API key (default: $OPENAI_API_KEY; a fixed local key for the embedded server)")
    g.addoption("--auth-header", default=None, metavar="NAME",
                help="header carrying the key (default Authorization, sent as 'Bearer KEY'; "
                     "any other header gets the bare key, e.g. api-key)")
    g.addoption("--model", default=None, help="model for every turn (default: the profile's default_model)")
    g.addoption("--profile", default=None, metavar="NAME",
                help="built-in profile: openai, openai-2026-02, xai, open-responses, reference "
                     "(default: openai with --target, reference without)")
    g.addoption("--target-config", default=None, metavar="FILE",
                help="a profile TOML file (a copy of a built-in one, or `extends = \"openai\"` plus changes); "
                     "overrides --profile")
    g.addoption("--strict-conformance", action="store_true", default=False,
                help="NON-STRICT verdicts (SHOULD violations) fail; pytest's own --strict does the same")
    g.addoption("--turn-timeout", type=float, default=None, metavar="SECONDS",
                help="deadline for one turn (default 60 against a real target, 10 against the embedded server)")
    g.addoption("--max-output-tokens", type=int, default=16, metavar="N",
                help="max_output_tokens sent with every turn unless a case sets it (default 16, the minimum OpenAI accepts)")
    g.addoption("--generated-budget", type=int, default=None, metavar="N",
                help="response.create requests the generated conversations (hypothesis state machine) may "
                     "spend; default: off against a real target (so every case costs a few requests), "
                     "the case's own larger budget against the embedded server")
    g.addoption("--run-slow", action="store_true", default=False,
                help="run cases marked slow (e.g. the real 60-minute lifetime)")
    g.addoption("--perf", action="store_true", default=False,
                help="run the perf cases: the WebSocket's gain over HTTP with full history, measured "
                     "(costs 2 x --perf-turns x --perf-repetitions turns on a real target)")
    g.addoption("--perf-turns", type=int, default=20, metavar="N",
                help="tool-call turns of the perf agent loop (default 20)")
    g.addoption("--perf-repetitions", type=int, default=3, metavar="R",
                help="repetitions of the perf loop per transport, for the spread of the gain (default 3)")
    g.addoption("--report-dir", default=None, metavar="DIR",
                help="where certificate.json, junit.xml and index.html go (default reports/<run-id>/)")
    g.addoption("--no-report", action="store_true", default=False, help="write no report files")
    g.addoption("--clauses", default=None, metavar="FILE",
                help="clause registry (default: the suite's cases/clauses.toml)")
    g.addoption("--clause", action="append", default=[], metavar="ID", dest="select_clauses",
                help="run only the cases marked with this clause id (repeatable); "
                     "e.g. to re-check one requirement after a fix")
    g.addoption("--reference-defect", action="append", default=[], metavar="NAME",
                help="start the embedded reference server with this defect (repeatable; kill-matrix use)")


# --- session state ---------------------------------------------------------------------------

@dataclass
class Settings:
    target_url: str | None
    api_key: str
    auth_header: str
    model: str
    profile: Any
    strict: bool
    turn_timeout: float
    max_output_tokens: int
    run_slow: bool
    defects: tuple[str, ...]
    report_dir: Path | None
    run_id: str
    registry: V.ClauseRegistry
    generated_budget: int | None = None

    @property
    def embedded(self) -> bool:
        return self.target_url is None


def _strict(config: pytest.Config) -> bool:
    if config.getoption("strict_conformance"):
        return True
    if getattr(config.option, "strict", False):
        return True
    try:
        return bool(config.getini("strict"))
    except (ValueError, KeyError):
        return False


def _settings(config: pytest.Config) -> Settings:
    opt = config.getoption
    target_url = opt("target")
    try:
        if opt("target_config"):
            profile = load_profile(Path(opt("target_config")))
        else:
            profile = load_profile(opt("profile") or ("openai" if target_url else "reference"))
    except ProfileError as exc:
        raise pytest.UsageError(f"profile: {exc}") from None
    if target_url:
        try:
            derive_urls(target_url)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        api_key = opt("api_key") or os.environ.get("OPENAI_API_KEY", "")
    else:
        api_key = opt("api_key") or EMBEDDED_KEY
    auth_header = opt("auth_header") or profile.get("target.auth_header", "Authorization")
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", auth_header):
        raise pytest.UsageError(f"--auth-header {auth_header!r}: not a valid HTTP header name")
    timeout = opt("turn_timeout")
    if timeout is None:
        timeout = 60.0 if target_url else 10.0
    if timeout <= 0:
        raise pytest.UsageError("--turn-timeout must be positive")
    if opt("max_output_tokens") is not None and opt("max_output_tokens") < 0:
        raise pytest.UsageError("--max-output-tokens must not be negative (0 = do not send it)")
    clauses = opt("clauses")
    path = Path(clauses) if clauses else V.default_clauses_path(config.rootpath)
    if path is None:
        raise pytest.UsageError("clause registry not found: pass --clauses FILE (cases/clauses.toml)")
    try:
        registry = V.ClauseRegistry.load(path)
    except V.RegistryError as exc:
        raise pytest.UsageError(f"--clauses: {exc}") from None
    if opt("generated_budget") is not None and opt("generated_budget") < 0:
        raise pytest.UsageError("--generated-budget: give a number of requests >= 0")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    report_dir = None
    if not opt("no_report"):
        report_dir = (Path(opt("report_dir")) if opt("report_dir") else Path.cwd() / "reports" / run_id).resolve()
    return Settings(target_url, api_key, auth_header, opt("model") or profile.default_model, profile,
                    _strict(config), timeout, opt("max_output_tokens") or 0, opt("run_slow"),
                    tuple(opt("reference_defect") or ()), report_dir, run_id, registry,
                    generated_budget=opt("generated_budget"))


class ConformanceSession:
    """Per-process state: settings, the embedded server, the case records (controller)."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        self.server: Any = None
        self._target: Target | None = None
        self.records: list[dict] = []
        self.started = time.time()
        self.is_worker = hasattr(config, "workerinput")
        if self.is_worker:   # share the controller's run id and report dir
            wi = config.workerinput
            settings.run_id = wi.get("conformance_run_id", settings.run_id)
            if wi.get("conformance_report_dir"):
                settings.report_dir = Path(wi["conformance_report_dir"])

    # the embedded server and the Target are built lazily: self-tests never start a server
    def start_server(self, **overrides: Any) -> Any:
        try:
            from conformance.server import ServerConfig, ServerThread
        except ImportError as exc:
            raise HarnessError(f"the reference server is not available: {exc}") from None
        s = self.settings
        p = s.profile
        # the embedded server follows the profile's facts where its config has a switch
        cfg: dict[str, Any] = dict(host="127.0.0.1", port=0, api_keys=(s.api_key or EMBEDDED_KEY,),
                                   test_controls=True,
                                   profile=_server_profile(p), defects=s.defects,
                                   lifetime_s=p.lifetime_seconds, zdr=bool(p.cache["zdr"]))
        if p.busy_policy in ("queue", "reject"):
            cfg["busy_policy"] = p.busy_policy
        if p.busy_error_code:
            cfg["busy_error_code"] = p.busy_error_code
        cfg.update(overrides)
        server = ServerThread(ServerConfig(**cfg))
        server.start()
        return server

    def target_for(self, ws_url: str, http_base: str | None, *, embedded: bool, profile: Any = None,
                   api_key: str | None = None) -> Target:
        s = self.settings
        _, derived_base, http_responses = derive_urls(ws_url)
        return Target(ws_url=ws_url, http_base_url=http_base or derived_base, profile=profile or s.profile,
                      model=s.model, api_key=s.api_key if api_key is None else api_key,
                      auth_header=s.auth_header, http_responses_url=http_responses,
                      max_output_tokens=s.max_output_tokens, turn_timeout=s.turn_timeout,
                      strict=s.strict, run_slow=s.run_slow, is_embedded=embedded)

    @property
    def target(self) -> Target:
        if self._target is None:
            s = self.settings
            if s.embedded:
                if self.server is None:
                    self.server = self.start_server()
                self._target = self.target_for(self.server.ws_url, self.server.base_url, embedded=True)
            else:
                ws_url, base, _ = derive_urls(s.target_url)
                self._target = self.target_for(ws_url, base, embedded=False)
        return self._target

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Collect one record per case; under xdist the controller sees every worker's report."""
        record = getattr(report, "conformance_record", None)
        if record is not None and report.when == "teardown":
            self.records.append(record)

    def capabilities(self) -> frozenset:
        return self.settings.profile.capabilities()

    def redact(self, text: str) -> str:
        """Remove the configured key (what ``Target.redact`` does, without building the Target)."""
        return redact(text, self.settings.api_key)

    def stop(self) -> None:
        if self.server is not None:
            try:
                self.server.stop()
            finally:
                self.server = None


_SESSION = pytest.StashKey[ConformanceSession]()
_CASE = pytest.StashKey["CaseState"]()


@dataclass
class CaseState:
    recorder: V.CaseRecorder
    clauses: tuple[str, ...]
    connections: list[Connection] = field(default_factory=list)
    spent_before: dict = field(default_factory=METER.snapshot)
    verdict: str | None = None
    messages: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    perf: dict | None = None     # the perf case's figures (conformance/perf.py), for the certificate

    def transcripts(self, limit: int = 400) -> str:
        return "\n\n".join(c.transcript_text(limit) for c in self.connections)


def _session(config: pytest.Config) -> ConformanceSession:
    return config.stash[_SESSION]


def case_state(item: pytest.Item) -> CaseState | None:
    """The conformance state of a case (None for an item that is not a case)."""
    return item.stash.get(_CASE, None)


# --- configure / collection ------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): the clause ids from cases/clauses.toml that a case checks")
    config.addinivalue_line("markers", "slow: needs --run-slow (e.g. the real 60-minute connection lifetime)")
    config.addinivalue_line("markers", "perf: a measurement (INFO only); needs --perf")
    for opt in ("perf_turns", "perf_repetitions"):
        if config.getoption(opt) < 1:
            raise pytest.UsageError(f"--{opt.replace('_', '-')} must be at least 1")
    sess = ConformanceSession(config, _settings(config))
    config.stash[_SESSION] = sess
    config.pluginmanager.register(sess, "responses-ws-conformance-session")
    # xdist's hook exists only where xdist is loaded; pytest rejects unknown hooks otherwise
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "responses-ws-conformance-xdist")
    alluredir = getattr(config.option, "allure_report_dir", None)    # allure-pytest's --alluredir
    if alluredir:
        from conformance.allure_plugin import AllureHooks
        config.pluginmanager.register(AllureHooks(sess, alluredir), "responses-ws-conformance-allure")


class _XdistHooks:
    @staticmethod
    def pytest_configure_node(node: Any) -> None:  # hand the run id to the workers
        s = _session(node.config).settings
        node.workerinput["conformance_run_id"] = s.run_id
        node.workerinput["conformance_report_dir"] = str(s.report_dir) if s.report_dir else ""


def pytest_unconfigure(config: pytest.Config) -> None:
    sess = config.stash.get(_SESSION, None)
    if sess is not None:
        sess.stop()


def is_case(item: pytest.Item) -> bool:
    """A conformance case: marked with clause, or defined in a module under a ``cases`` dir."""
    if item.get_closest_marker("clause") is not None:
        return True
    path = getattr(item, "path", None)
    return path is not None and "cases" in Path(path).parts[:-1]


def _clause_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("clause"):
        for a in mark.args:
            if isinstance(a, (list, tuple)):
                ids.extend(a)
            else:
                ids.append(a)
    return tuple(dict.fromkeys(ids))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    registry = _session(config).settings.registry
    problems = []
    for item in items:
        if not is_case(item):
            continue
        ids = _clause_ids(item)
        if not ids:
            problems.append(f"{item.nodeid}: a conformance case needs @pytest.mark.clause(\"ID\", ...)")
        for cid in ids:
            if not isinstance(cid, str) or cid not in registry:
                problems.append(f"{item.nodeid}: unknown clause id {cid!r} (not in {registry.path})")
            elif registry[cid].retired:
                problems.append(f"{item.nodeid}: clause {cid!r} is retired")
    if problems:
        raise pytest.UsageError("clause marks:\n  " + "\n  ".join(problems))
    wanted = config.getoption("select_clauses") or []
    if wanted:
        unknown = [c for c in wanted if c not in registry]
        if unknown:
            raise pytest.UsageError(f"--clause: unknown clause id(s) {', '.join(unknown)} (not in {registry.path})")
        keep, drop = [], []
        for item in items:
            (keep if is_case(item) and set(_clause_ids(item)) & set(wanted) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


# --- running one case ------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not is_case(item):
        return
    sess = _session(item.config)
    s = sess.settings
    ids = _clause_ids(item)
    # the recorder redacts with the configured key (the Target may not exist yet)
    item.stash[_CASE] = CaseState(V.CaseRecorder(s.registry, ids, sess.redact), ids)
    if item.get_closest_marker("slow") is not None and not s.run_slow:
        pytest.skip("slow: needs --run-slow")
    if item.get_closest_marker("perf") is not None and not item.config.getoption("perf"):
        pytest.skip("perf: needs --perf")
    caps, specs = sess.capabilities(), s.profile.spec_profiles
    for cid in ids:
        reason = V.unsupported_reason(s.registry[cid], caps, specs, s.profile.name)
        if reason:
            pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    __tracebackhide__ = True
    state: CaseState | None = item.stash.get(_CASE, None)
    if state is None:
        return (yield)
    token = V.bind(state.recorder)
    try:
        try:
            result = yield
        except V.ClauseViolation:
            _collect_findings(state)
            state.verdict = V.FAIL
            raise
        except (TargetUnreachable, HarnessError) as exc:
            state.verdict = V.ERROR
            state.messages.append(f"ERROR: {type(exc).__name__}: {state.recorder.redact(str(exc))}")
            raise
        except HandshakeRefused as exc:
            state.verdict = V.ERROR
            state.messages.append(f"ERROR: the target refused the upgrade (HTTP {exc.status}); "
                                  f"check the key and URL: {state.recorder.redact(exc.body[:200])}")
            raise
        except AssertionError as exc:   # a plain assert in a case: blame its first clause
            _collect_findings(state)
            msg = state.recorder.redact(str(exc).split("\n")[0][:300])
            if state.clauses:
                c = state.recorder.registry[state.clauses[0]]
                state.recorder.observations.append(V.Observation(c.id, c.level, False, "expect", msg))
            state.verdict = V.FAIL
            raise
        except Exception as exc:        # a bug in the case or the harness: cannot judge
            state.verdict = V.ERROR
            state.messages.append(f"ERROR: {type(exc).__name__}: {state.recorder.redact(str(exc))[:300]}")
            raise
        _collect_findings(state)
        rec = state.recorder
        verdict = rec.verdict()
        state.verdict = verdict
        if verdict == V.ERROR:
            raise HarnessError("; ".join(rec.errors))
        if verdict == V.FAIL:
            pytest.fail("conformance failures (MUST):\n" + rec.failure_text(V.FAIL), pytrace=False)
        if verdict == V.NON_STRICT:
            text = rec.failure_text(V.NON_STRICT)
            if _session(item.config).settings.strict:
                pytest.fail("SHOULD clauses violated (NON-STRICT, failing under strict):\n" + text, pytrace=False)
            warnings.warn(ConformanceWarning("NON-STRICT: SHOULD clauses violated:\n" + text), stacklevel=1)
        return result
    finally:
        V.unbind(token)


def _collect_findings(state: CaseState) -> None:
    """Add the monitor findings of every connection (once per case: at the end of its call),
    and the clauses the monitor applied to its frames: checked only when findings are read."""
    for conn in state.connections:
        state.recorder.add_findings(conn.findings)
        state.recorder.checked |= reach.by_connection(conn)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state: CaseState | None = item.stash.get(_CASE, None)
    if state is None:
        return report
    if report.skipped and report.when in ("setup", "call"):   # slow, unsupported clause, verdict.unsupported
        reason = _skip_reason(report)
        state.verdict = V.UNSUPPORTED if reason.startswith("UNSUPPORTED") else V.SKIPPED
        state.messages.append(reason)
    if report.when == "setup":
        if report.failed:
            state.verdict = V.ERROR
            state.messages.append("ERROR in setup: " + state.recorder.redact(_short(report)))
    elif report.when == "call":
        if report.failed and state.verdict in (V.FAIL, V.ERROR, V.NON_STRICT):
            if state.connections:
                report.sections.append(("conformance transcript", state.transcripts()))
        report.conformance_verdict = state.verdict
    elif report.when == "teardown":
        if report.failed and state.verdict != V.FAIL:
            state.verdict = V.ERROR
            state.messages.append("ERROR in teardown: " + state.recorder.redact(_short(report)))
        record = _record(item, state, report)
        report.conformance_record = record
        report.conformance_verdict = record["verdict"]
        report.user_properties.append(("conformance_clauses", " ".join(state.clauses)))
        report.user_properties.append(("conformance_verdict", record["verdict"]))
    return report


def _short(report: Any) -> str:
    text = str(getattr(report, "longreprtext", "") or "")
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")] or text.splitlines()[-3:]
    return " ".join(ln.strip() for ln in lines)[:400]


def _skip_reason(report: Any) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr or "")


def _record(item: pytest.Item, state: CaseState, report: Any) -> dict:
    rec = state.recorder
    verdict = state.verdict or V.PASS
    if verdict == V.PASS and rec.observations:
        verdict = rec.verdict()
    messages = list(state.messages)
    for o in rec.failures(V.NON_STRICT):
        messages.append(f"{o.verdict} {o.clause}: {o.message}" + (f" [{o.evidence}]" if o.evidence else ""))
    messages.extend(rec.errors)
    transcript = ""
    if verdict in (V.FAIL, V.ERROR, V.NON_STRICT) and state.connections:
        transcript = state.transcripts()[-200_000:]
    record = {
        "nodeid": item.nodeid,
        "clauses": list(state.clauses),
        "verdict": verdict,
        "reached": sorted(rec.reached()),
        "messages": [rec.redact(m) for m in dict.fromkeys(messages)][:50],
        "observations": [o.as_dict() for o in rec.observations][:500],
        "connections": len(state.connections),
        "usage": {k: v - state.spent_before.get(k, 0) for k, v in METER.snapshot().items()},
        "duration_s": round(time.monotonic() - state.started, 3),
        "transcript": rec.redact(transcript),
    }
    if state.perf is not None:
        record["perf"] = state.perf
    record["not_reached"] = V.not_reached(record)
    return record


def pytest_report_teststatus(report: Any, config: pytest.Config):
    verdict = getattr(report, "conformance_verdict", None)
    if verdict is None:
        return None
    if report.when == "call" and report.failed and verdict == V.ERROR:
        return "error", "E", "ERROR"
    if report.when == "call" and report.passed and verdict == V.NON_STRICT:
        return "passed", "N", ("NON-STRICT", {"yellow": True})
    return None




# --- end of session: reports -----------------------------------------------------------------

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    sess = config.stash.get(_SESSION, None)
    if sess is None or sess.is_worker:
        return
    if not sess.records or sess.settings.report_dir is None:
        return
    from conformance.report import write_reports
    try:
        sess.report_paths = write_reports(
            sess.settings.report_dir, registry=sess.settings.registry, records=sess.records,
            profile=sess.settings.profile.name, fingerprint=fingerprint_of(sess), started=sess.started,
            finished=time.time(), strict=sess.settings.strict, run_id=sess.settings.run_id,
            spec_profiles=sorted(sess.settings.profile.spec_profiles), redact=sess.redact,
            extra={"perf": r["perf"] for r in sess.records if r.get("perf")})
    except OSError as exc:
        sess.report_error = f"could not write reports to {sess.settings.report_dir}: {exc}"


def fingerprint_of(sess: ConformanceSession) -> dict:
    """The target's fingerprint; an embedded server that never started is not started for it."""
    if sess._target is not None or not sess.settings.embedded:
        return sess.target.fingerprint()       # with --target, building the Target does no I/O
    fp = sess.target_for("ws://127.0.0.1/v1/responses", None, embedded=True).fingerprint()
    fp["ws_host"] = "embedded reference server"
    return fp


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    sess = config.stash.get(_SESSION, None)
    if sess is None or sess.is_worker or not sess.records:
        return
    from conformance.report import summary_lines
    tr = terminalreporter
    tr.section("responses-ws-conformance")
    for line in summary_lines(sess.records, sess.settings.registry, sess.settings.profile.name):
        tr.write_line(line)
    paths = getattr(sess, "report_paths", None)
    if paths:
        tr.write_line(f"report: {paths['dir']}  (open index.html; certificate.json; junit.xml; badge.svg)")
    if getattr(sess, "report_error", None):
        tr.write_line(sess.report_error, red=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    sess = config.stash.get(_SESSION, None)
    if sess is None or sess.is_worker:
        return []
    s = sess.settings
    where = s.target_url or "embedded reference server (127.0.0.1, started on first use)"
    key = "set" if s.api_key else "NOT SET (no auth header will be sent)"
    return [f"conformance target: {where}",
            f"conformance profile: {s.profile.name} ({s.profile.source}); model {s.model}; "
            f"key {key} via {s.auth_header}; turn timeout {s.turn_timeout:g}s; "
            f"max_output_tokens {s.max_output_tokens}; strict {s.strict}"] + _perf_cost(config, s)


def _perf_cost(config: pytest.Config, s: Settings) -> list[str]:
    """With --perf, what the perf loop spends, printed before the run."""
    if not config.getoption("perf"):
        return []
    n, r = config.getoption("perf_turns"), config.getoption("perf_repetitions")
    where = s.target_url or "the embedded reference server (no cost)"
    return [f"perf: {r} x 2 x {n} = {2 * n * r} turns ({n * r} response.create and {n * r} POST /responses, "
            f"the HTTP ones resending the whole history) against {where}"]


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def conformance_session(pytestconfig: pytest.Config) -> ConformanceSession:
    return _session(pytestconfig)


@pytest.fixture(scope="session")
def reference_server(conformance_session: ConformanceSession) -> Any:
    """The embedded reference server (a started ``ServerThread``), or None with --target."""
    if not conformance_session.settings.embedded:
        return None
    conformance_session.target  # noqa: B018 - starts it
    return conformance_session.server


@pytest.fixture(scope="session")
def target(conformance_session: ConformanceSession) -> Target:
    """The ``Target`` under test."""
    return conformance_session.target


def _state(request: pytest.FixtureRequest) -> CaseState:
    state = request.node.stash.get(_CASE, None)
    if state is None:   # used outside a conformance case (e.g. a self-test): make one
        s = _session(request.config).settings
        state = CaseState(V.CaseRecorder(s.registry, ()), ())
        request.node.stash[_CASE] = state
    return state


@pytest.fixture
def connect(request: pytest.FixtureRequest, target: Target):
    """``connect(headers=None, query=None, timeout=None, target=None) -> Connection``.
    Every connection is monitored, recorded and closed at the end of the case."""
    state = _state(request)
    default = target

    def _connect(headers: dict | None = None, query: dict | None = None, timeout: float | None = None,
                 target: Target | None = None) -> Connection:
        conn = Connection.open(target or default, headers=headers, query=query, timeout=timeout)
        state.connections.append(conn)
        return conn

    yield _connect
    for conn in state.connections:
        conn.close()


class Verdict:
    """The case's verdict handle: ``verdict.expect(...)``, ``verdict.unsupported(reason)``,
    ``verdict.info(message)``. Calling it is ``expect``."""

    def __init__(self, state: CaseState):
        self._state = state

    def __call__(self, clause_id: str, condition: Any, evidence: Any = None, message: str = "") -> bool:
        __tracebackhide__ = True
        return self._state.recorder.expect(clause_id, condition, evidence, message)

    expect = __call__

    def unsupported(self, reason: str) -> None:
        """The target answered that it does not support the feature: UNSUPPORTED (skip)."""
        pytest.skip(f"UNSUPPORTED: {self._state.recorder.redact(reason)}")

    def info(self, message: str, clause_id: str = "") -> None:
        self._state.recorder.info(message, clause_id)


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> Verdict:
    return Verdict(_state(request))


@pytest.fixture
def expect(verdict: Verdict) -> Verdict:
    """An alias of ``verdict`` (the same object): ``expect(clause_id, condition, evidence=None,
    message="")``, ``expect.info(...)``, ``expect.unsupported(...)``. A case asks for one name."""
    return verdict


def new_nonce() -> str:
    """A fresh nonce-like token (``\\b[A-Z]{3,12}-[0-9]{4,8}\\b``), e.g. ``QZVKE-48213``."""
    letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(5))
    digits = "".join(secrets.choice(string.digits) for _ in range(5))
    token = f"{letters}-{digits}"
    assert NONCE_RE.fullmatch(token)
    return token


@pytest.fixture
def nonce() -> str:
    return new_nonce()


@pytest.fixture
def nonce_factory():
    return new_nonce


@pytest.fixture
def reference_server_factory(conformance_session: ConformanceSession):
    """``factory(**server_config) -> (server, target)``: a fresh embedded reference server
    (e.g. ``defects=("NAME",)`` or ``profile="xai"``) and a Target for it; stopped at the end."""
    started = []

    def _factory(profile: str | None = None, **overrides: Any):
        prof = load_profile(profile) if profile else conformance_session.settings.profile
        if profile:
            overrides.setdefault("profile", _server_profile(prof))
            overrides.setdefault("lifetime_s", prof.lifetime_seconds)
            overrides.setdefault("zdr", bool(prof.cache["zdr"]))
        overrides.setdefault("defects", ())
        server = conformance_session.start_server(**overrides)
        started.append(server)
        keys = overrides.get("api_keys") or (conformance_session.settings.api_key or EMBEDDED_KEY,)
        tgt = conformance_session.target_for(server.ws_url, server.base_url, embedded=True, profile=prof,
                                             api_key=keys[0])
        return server, tgt

    yield _factory
    for s in started:
        s.stop()
