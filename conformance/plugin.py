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

As in pytest-xdist, this module holds the hooks, the option declarations and the fixtures;
the work lives in ``conformance.options`` (Settings, validators), ``conformance.session``,
``conformance.casestate``, ``conformance.judging`` and ``conformance.runreport``. Nothing in ``conformance/`` imports
this module back (tests/test_import_graph.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import string
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from conformance import client as _client
from conformance import baseline as BL
from conformance import preflight as PF
from conformance import budget as B
from conformance import caseid, claims
from conformance import drift as D
from conformance import retry as R
from conformance import tenants as TN
from conformance import verdicts as V
from conformance.client import METER, Connection, HarnessError, TargetStalled
from conformance.casestate import CASE_KEY, CaseState, case_state
from conformance.options import EMBEDDED_KEY, Settings, build_settings
from conformance import judging, runreport as RR
from conformance.profile_names import BUILTIN_PROFILES
from conformance.session import SESSION_KEY, ConformanceSession, server_profile
from conformance.runstate import run_dir
from conformance.target import Target, load_profile, redact

NONCE_RE = re.compile(r"\b[A-Z]{3,12}-[0-9]{4,8}\b")
class ConformanceWarning(UserWarning):
    """A SHOULD clause was violated (verdict NON-STRICT)."""


# --- options ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("responses-ws-conformance", "Responses API WebSocket conformance")
    g.addoption("--target", default=None, metavar="URL",
                help="endpoint under test: a ws(s):// socket URL used as is, or an http(s):// API base "
                     "URL (…/v1) from which the socket URL is derived like the SDKs do. "
                     "Without it the embedded reference server is started on loopback.")
    g.addoption("--other-tenant-key", default=None, metavar="KEY",  # tenant isolation, §4.5 item 35a
                help="key of another tenant, for the tenant-isolation clauses (default: "
                     "$CONFORMANCE_OTHER_TENANT_KEY; a fixed one for the embedded server)")
    g.addoption("--api-key", default=None, metavar="KEY",
                help="API key (default: $OPENAI_API_KEY; a fixed local key for the embedded server)")
    g.addoption("--auth-header", default=None, metavar="NAME",
                help="header carrying the key (default Authorization, sent as 'Bearer KEY'; "
                     "any other header gets the bare key, e.g. api-key)")
    g.addoption("--model", default=None, help="model for every turn (default: the profile's default_model)")
    g.addoption("--profile", default=None, metavar="NAME",
                help=f"built-in profile: {', '.join(BUILTIN_PROFILES)} "
                     "(default: openai with --target, reference without)")
    g.addoption("--target-config", default=None, metavar="FILE",
                help="a profile TOML file (a copy of a built-in one, or `extends = \"openai\"` plus changes); "
                     "overrides --profile")
    g.addoption("--strict-conformance", action="store_true", default=False,
                help="NON-STRICT verdicts (SHOULD violations) fail; pytest's own --strict does the same")
    g.addoption("--turn-timeout", type=float, default=None, metavar="SECONDS",
                help="idle deadline of one turn: seconds without a frame before the turn is given up "
                     "(default 60 against a real target, 10 against the embedded server)")
    g.addoption("--turn-cap", type=float, default=None, metavar="SECONDS",
                help="overall cap of one turn however lively the stream (default 5 x --turn-timeout)")
    g.addoption("--retries", type=int, default=None, metavar="N",
                help="run a case that ends FAIL or ERROR for a transient reason up to N more times on fresh "
                     "connections; differing verdicts make it FLAKY (default 1 with --target, 0 embedded)")
    g.addoption("--max-requests", type=int, default=None, metavar="N",
                help="hard cap on response.create frames plus HTTP requests for the whole run (all xdist "
                     "workers); cases that no longer fit are SKIPPED with reason 'budget'")
    g.addoption("--baseline", default=None, metavar="FILE",
                help="TOML file of known deviations: a matching non-pass becomes KNOWN (does not fail the run); "
                     "an entry whose case now passes is STALE (fails the run)")
    g.addoption("--write-baseline", default=None, metavar="FILE",
                help="write a baseline covering every case of this run that did not pass (its folder is "
                     "created, and checked, before the run)")
    g.addoption("--write-baseline-by", default=BL.WRITE_BY[0], choices=BL.WRITE_BY,
                help="--write-baseline entries: one per failed clause (default; a case entry for a case "
                     "that failed no clause) or one per case")
    g.addoption("--run-timeout", type=float, default=None, metavar="SECONDS",
                help="cap of the whole run: after it, cases that need a turn end ERROR at once (default: none)")
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
    g.addoption("--long-failures", action="store_true", default=False,
                help="show pytest's full entry (traceback, transcripts of every try) for each case that did not "
                     "pass, as -v or an explicit --tb do; by default one line per case and findings grouped by clause")
    g.addoption("--clauses", default=None, metavar="FILE",
                help="clause registry (default: the suite's cases/clauses.toml)")
    g.addoption("--clause", action="append", default=[], metavar="ID", dest="select_clauses",
                help="run only the cases marked with this clause id (repeatable); "
                     "e.g. to re-check one requirement after a fix")
    g.addoption("--preflight-timeout", type=float, default=PF.DEFAULT_TIMEOUT, metavar="SECONDS",
                help="deadline of each preflight step (handshake, first turn) before the first case "
                     f"(default {PF.DEFAULT_TIMEOUT:g}; the turn also at most --turn-timeout)")
    g.addoption("--no-preflight", action="store_true", default=False,
                help="skip the preflight: a target that cannot be tested then makes every case ERROR")
    g.addoption("--reference-defect", action="append", default=[], metavar="NAME",
                help="start the embedded reference server with this defect (repeatable; kill-matrix use)")
    g.addoption("--reference-option", action="append", default=[], metavar="NAME[=VALUE]",
                help="start the embedded reference server with a streaming variation (repeatable): "
                     "omit-setup-events, omit-terminal-output[=empty|null|missing], control-events")


# --- session state ---------------------------------------------------------------------------

def _session(config: pytest.Config) -> ConformanceSession:
    return config.stash[SESSION_KEY]


# --- configure / collection ------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): the clause ids from cases/clauses.toml that a case checks")
    config.addinivalue_line("markers", "slow: needs --run-slow (e.g. the real 60-minute connection lifetime)")
    config.addinivalue_line("markers", "perf: a measurement (INFO only); needs --perf")
    config.addinivalue_line("markers", f"other_tenant: a tenant-isolation case; {TN.NEEDS_KEY}")
    config.addinivalue_line("markers", "requires(*capabilities, reason=''): the case (not its whole clause) "
                                       "needs these profile capabilities, else UNSUPPORTED before it runs")
    for opt in ("perf_turns", "perf_repetitions"):
        if config.getoption(opt) < 1:
            raise pytest.UsageError(f"--{opt.replace('_', '-')} must be at least 1")
    sess = ConformanceSession(config, build_settings(config))
    config.stash[SESSION_KEY] = sess
    _client.BUDGET = sess.budget            # charges only a case's reservation (none outside cases)
    config.addinivalue_line("markers", "max_requests(creates=0, http=0, generated=False, perf=False): the most requests "
                                       "a case sends (generated: plus --generated-budget)")
    config.pluginmanager.register(sess, "responses-ws-conformance-session")
    # xdist's hook exists only where xdist is loaded; pytest rejects unknown hooks otherwise
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "responses-ws-conformance-xdist")
    alluredir = getattr(config.option, "allure_report_dir", None)    # allure-pytest's --alluredir
    if alluredir:
        from conformance.allure_plugin import AllureHooks
        config.pluginmanager.register(AllureHooks(sess, alluredir), "responses-ws-conformance-allure")


# --- preflight (controller, --target): issue 15, conformance/preflight.py -------------------

@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Before any case, and before xdist starts its workers: can the target be tested at all?"""
    config = session.config
    sess = config.stash.get(SESSION_KEY, None)
    opt = config.option
    if sess is None or sess.is_worker or sess.settings.embedded or not sess.settings.preflight \
            or opt.collectonly or getattr(opt, "showfixtures", False) or getattr(opt, "show_fixtures_per_test", False):
        return
    diagnosis, sess.preflight = PF.check_target(sess.target, timeout=sess.settings.preflight_timeout,
                                                budget=sess.budget)
    if not diagnosis.usable:
        sess.preflight_line = diagnosis.line(sess.preflight["target"])


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    sess = session.config.stash.get(SESSION_KEY, None)
    return True if sess is not None and sess.not_usable else None     # nothing to collect


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    sess = session.config.stash.get(SESSION_KEY, None)
    return True if sess is not None and sess.not_usable else None     # nothing runs


class _XdistHooks:
    @staticmethod
    def pytest_xdist_node_collection_finished(node: Any, ids: list) -> None:
        """Print the plan the workers computed, once, before the first case runs."""
        sess = _session(node.config)
        if sess.plan is None:
            sess.plan = B.read_plan(run_dir(sess.settings.run_id))
            if sess.plan:
                _write_line(node.config, sess.plan)

    @staticmethod
    def pytest_configure_node(node: Any) -> None:  # hand the run id to the workers
        s = _session(node.config).settings
        node.workerinput["conformance_run_id"] = s.run_id
        node.workerinput["conformance_report_dir"] = str(s.report_dir) if s.report_dir else ""
        node.workerinput["conformance_started"] = _session(node.config).started


def pytest_unconfigure(config: pytest.Config) -> None:
    sess = config.stash.get(SESSION_KEY, None)
    if sess is not None:
        sess.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> Any:
    """A case module's id is its path from its ``cases`` folder, not from pytest's rootdir
    (``conformance.caseid``): ids, baselines and reports stay the same wherever files are."""
    nodeid = caseid.module_id(module_path)
    if nodeid is None or module_path.name == "__init__.py":
        return None
    return pytest.Module.from_parent(parent, path=module_path, nodeid=nodeid)


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
        problem = V.unknown_ids(registry, wanted)      # one line, with a suggestion (difflib)
        if problem:
            raise pytest.UsageError(problem)
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
    sess.liveness.case, sess.liveness.idle_limit = item.nodeid, None
    _client.LIVENESS = sess.liveness        # only conformance cases count toward a stall
    # the recorder redacts with the configured key (the Target may not exist yet)
    item.stash[CASE_KEY] = CaseState(V.CaseRecorder(s.registry, ids, sess.redact), ids)
    reason = _static_skip(item, sess)
    if reason:
        pytest.skip(reason)
    state = item.stash[CASE_KEY]
    state.declared = _declared(item, sess)
    reason = sess.budget.reserve(state.declared)
    if reason:
        pytest.skip(reason)


def _static_skip(item: pytest.Item, sess: ConformanceSession) -> str | None:
    """Why a case is skipped before it runs (slow, UNSUPPORTED), or None."""
    s = sess.settings
    if item.get_closest_marker("slow") is not None and not s.run_slow:
        return "slow: needs --run-slow"
    if item.get_closest_marker("perf") is not None and not item.config.getoption("perf"):
        return "perf: needs --perf"
    reason = claims.unsupported(_clause_ids(item), item.iter_markers("requires"), s.registry, s.profile)
    if reason is None and item.get_closest_marker("other_tenant") is not None and not s.other_tenant_key:
        reason = TN.NEEDS_KEY       # tenant isolation, §4.5 item 35a: UNTESTED, saying how to test it
    return reason


def _declared(item: pytest.Item, sess: ConformanceSession) -> B.Declared:
    s = sess.settings
    try:
        return B.declared(item.get_closest_marker("max_requests"), s.generated_budget, s.embedded,
                          B.GENERATED_EMBEDDED,
                          item.config.getoption("perf_turns") * item.config.getoption("perf_repetitions"),
                          profile=s.profile)
    except ValueError as exc:
        raise pytest.UsageError(f"{item.nodeid}: {exc}") from None


def pytest_collection_finish(session: pytest.Session) -> None:
    """The planned maximum of requests, before the first one (a worker hands it to the controller)."""
    sess = session.config.stash.get(SESSION_KEY, None)
    if sess is None:
        return
    plans = [_declared(i, sess) for i in session.items if is_case(i) and not _static_skip(i, sess)]
    if not any(is_case(i) for i in session.items):
        return
    line = B.plan_line(plans, 1 + sess.settings.retries, sess.settings.max_requests)
    if sess.is_worker:
        B.write_plan(run_dir(sess.settings.run_id), line)
    else:
        sess.plan = line
        _write_line(session.config, line)


def _write_line(config: pytest.Config, line: str) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(line)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _client.LIVENESS = None
    if item.stash.get(CASE_KEY, None) is not None:
        _session(item.config).budget.release()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    __tracebackhide__ = True
    state: CaseState | None = item.stash.get(CASE_KEY, None)
    if state is None:
        return (yield)
    token = V.bind(state.recorder)
    try:
        try:
            result = yield
        except Exception as exc:
            judging.judge(state, exc)
            raise
        verdict = judging.judge(state, None)
        rec = state.recorder
        if verdict == R.FLAKY:
            pytest.fail("FLAKY: the verdict changed between tries: " + state.messages[-1], pytrace=False)
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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """Run a case, and again on fresh connections while ``retry.retryable`` says so (up to
    ``--retries`` more tries); differing verdicts make it FLAKY (``conformance.retry``)."""
    state: CaseState | None = pyfuncitem.stash.get(CASE_KEY, None)
    retries = _session(pyfuncitem.config).settings.retries
    if state is None or retries <= 0:
        return None
    fn = pyfuncitem.obj
    kwargs = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
    attempt = transient_tries = 0
    live = _client.LIVENESS
    while True:
        deadlines_before = live.case_deadlines if live is not None else 0
        token = V.bind(state.recorder)
        exc: Exception | None = None
        try:
            fn(**kwargs)
        except Exception as e:  # noqa: BLE001 - judged like the last try, below
            exc = e
        finally:
            V.unbind(token)
        verdict = judging.judge(state, exc)
        # --- issue 21: transient refusals, deterministic findings, deadline endings (retry.py)
        reason = (R.transient(exc) if verdict == V.ERROR else None) or \
            (R.refused(state.connections) if verdict in (V.FAIL, V.ERROR) else None)
        if reason:
            transient_tries += 1
            if transient_tries > R.MAX_TRANSIENT:
                break
        else:
            attempt += 1
            failed = {o.clause for o in state.recorder.failures(V.NON_STRICT)}
            det = verdict == V.FAIL and R.deterministic(failed, [f for c in state.connections for f in c.findings])
            if det and attempt <= retries:
                state.messages.append("not retried: every failure rests on frames the target sent")
            if attempt > retries or not R.retryable(verdict, exc, det):
                break
        if live is not None and live.stalled():
            break                           # no try can run any more
        budget = _session(pyfuncitem.config).budget
        budget.release()
        if budget.reserve(state.declared):
            state.messages.append("no retry: it does not fit in --max-requests")
            break
        if live is not None and live.case_deadlines > deadlines_before:
            live.idle_limit = R.retry_idle(_session(pyfuncitem.config).settings.turn_timeout)
        delay = R.retry_delay(exc, max(attempt, transient_tries), R.refused_after(state.connections))
        state.next_try(exc, transient=reason, backoff_s=delay)
        time.sleep(delay)
    if state.tries:
        state.keep_try(exc, transient=reason)
        # a try stopped because the target stalled meanwhile did not run: it does not count
        ran = [t for t in state.tries if not isinstance(t["exc"], TargetStalled)] or state.tries
        judged = [t for t in ran if not t.get("transient")] or ran
        if judged[-1] is not state.tries[-1]:
            state.restore(judged[-1])
            exc = judged[-1]["exc"]
        verdicts = [t["verdict"] for t in ran]
        if R.combine(verdicts, [t.get("transient") for t in ran]) == R.FLAKY:
            state.verdict, state.flaky = R.FLAKY, True
            state.messages.append("tries gave " + ", ".join(verdicts))
            return True
        retried = [t["transient"] for t in ran if t.get("transient")]
        state.messages.append(f"{len(verdicts)} tries, every one {judged[-1]['verdict']}" if not retried else
                              f"{len(verdicts)} tries: {len(retried)} refused for a transient reason "
                              f"({', '.join(retried)}), run again; the verdict is the other tries'")
    if exc is not None:
        raise exc
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state: CaseState | None = item.stash.get(CASE_KEY, None)
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
        if report.failed and state.verdict in (V.FAIL, V.ERROR, V.NON_STRICT, R.FLAKY):
            if state.connections or state.tries:
                report.sections.append(("conformance transcript", _all_transcripts(state)))
        judging.apply_baseline(item, state, report)
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
    if verdict in (V.FAIL, V.ERROR, V.NON_STRICT, R.FLAKY) and (state.connections or state.tries):
        transcript = _all_transcripts(state)[-200_000:]
    conns = {id(c): c for c in [*(c for t in state.tries for c in t["connections"]), *state.connections]}
    record_tries = {"surface": D.of_connections(conns.values())}
    if state.known:
        record_tries["known"] = state.known
    if state.tries:
        record_tries["tries"] = [{k: t[k] for k in ("verdict", "messages", "failed_clauses", "transient", "backoff_s")
                                  if k in t} for t in state.tries]
    record = record_tries | {
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
        "blocked": state.blocked,
    }
    if state.perf is not None:
        record["perf"] = state.perf
    record["not_reached"] = V.not_reached(record)
    return record


def _all_transcripts(state: CaseState) -> str:
    """The transcript of every try, each under its own heading, or the only try's."""
    if not state.tries:
        return state.transcripts()
    return "\n\n".join(f"=== try {n} of {len(state.tries)}: {t['verdict']} ===\n{t['transcript']}"
                       for n, t in enumerate(state.tries, 1))


def pytest_report_teststatus(report: Any, config: pytest.Config):
    verdict = getattr(report, "conformance_verdict", None)
    if verdict is None:
        return None
    if report.when == "call" and report.failed and verdict == V.ERROR:
        return "error", "E", "ERROR"
    if report.when == "call" and verdict == BL.KNOWN:
        return "passed", "K", ("KNOWN", {"yellow": True})
    if report.when == "call" and report.failed and verdict == R.FLAKY:
        return "failed", "Y", ("FLAKY", {"yellow": True})
    if report.when == "call" and report.passed and verdict == V.NON_STRICT:
        return "passed", "N", ("NON-STRICT", {"yellow": True})
    return None




# --- end of session: reports -----------------------------------------------------------------

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker:
        return
    RR.finish_baseline(session, sess)
    RR.set_exit_code(session, sess)
    if (not sess.records and not sess.not_usable) or sess.settings.report_dir is None:
        return
    from conformance.report import write_reports
    try:
        sess.report_paths = write_reports(sess.settings.report_dir, redact=sess.redact, **RR.report_args(sess))
    except OSError as exc:
        sess.report_error = f"could not write reports to {sess.settings.report_dir}: {exc}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config):
    """pytest's FAILURES/ERRORS entries of the cases are held back unless -v or --long-failures
    (``conformance.report.terminal``); the conformance summary comes last."""
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker or not (sess.records or sess.not_usable):
        return (yield)
    from conformance.report import terminal as T
    # an explicit --tb asks for pytest's entries too
    long = config.getoption("long_failures") or config.getoption("verbose") > 0 or config.option.tbstyle != "auto"
    held = contextlib.nullcontext() if long else T.held_back(terminalreporter.stats,
                                                                 {r["nodeid"] for r in sess.records})
    with held:
        result = yield
    RR.conformance_summary(terminalreporter, sess)
    return result


def pytest_report_header(config: pytest.Config) -> list[str]:
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker:
        return []
    s = sess.settings
    where = s.target_url or "embedded reference server (127.0.0.1, started on first use)"
    key = "set" if s.api_key else "NOT SET (no auth header will be sent)"
    return [f"conformance target: {where}",
            f"conformance profile: {s.profile.name} ({s.profile.source}"
            + (f": {s.profile.description}" if s.profile.description else "") + f"); model {s.model}; "
            f"key {key} via {s.auth_header}; turn timeout {s.turn_timeout:g}s idle "
            f"({s.idle_after_done or s.turn_timeout:g}s once the output is done), cap {s.turn_cap:g}s; "
            + (f"run timeout {s.run_timeout:g}s; " if s.run_timeout else "") + f"retries {s.retries}; "
            + f"max_output_tokens {s.max_output_tokens}; strict {s.strict}"] + _perf_cost(config, s) \
        + ([f"conformance preflight: target usable ({', '.join(_step_text(x) for x in sess.preflight['steps'])})"]
           if sess.preflight and sess.preflight["usable"] else [])


def _step_text(step: dict) -> str:
    return f"{step['step']} {step['outcome']} in {step['elapsed_ms']:g} ms"


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
    state = request.node.stash.get(CASE_KEY, None)
    if state is None:   # used outside a conformance case (e.g. a self-test): make one
        s = _session(request.config).settings
        state = CaseState(V.CaseRecorder(s.registry, ()), ())
        request.node.stash[CASE_KEY] = state
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
            overrides.setdefault("profile", server_profile(prof))
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
