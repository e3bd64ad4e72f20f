"""The pytest plugin (entry point ``responses_ws_conformance``): hooks, option registration
and fixtures, as in pytest-xdist; the work lives in modules of its own.

Implements the plugin layer of ``docs/design.md`` ("Data flow of one case" steps 1, 4 and 5,
"Verdicts", "Reports") on the seams of ``docs/interfaces.md``: ``options`` (declarations,
validators, ``Settings``), ``session`` (the run: target, embedded server, run context),
``collection`` (which items are cases, clause marks, static skips, request plan),
``casestate`` (one case's state, the ``verdict`` handle), ``tries`` (``--retries``),
``judging`` (a try's verdict and its pytest outcome), ``casereport`` (what a case's reports
carry, its record), ``header`` and ``runreport`` (before and after the run). Fixtures:
``target``, ``connect``, ``expect``/``verdict``, ``nonce``, ``reference_server``,
``reference_server_factory``. Nothing in ``conformance/`` imports this module back
(tests/test_import_graph.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from conformance import budget, caseid, casereport, collection, header, judging, tries
from conformance import preflight
from conformance import runreport
from conformance import verdicts
from conformance.casestate import CASE_KEY, CaseState, Verdict, case_state  # noqa: F401 - case_state: for readers
from conformance.client import Connection
from conformance.collection import is_case  # noqa: F401 - part of the plugin's surface
from conformance.judging import ConformanceWarning  # noqa: F401 - filterable as plugin.ConformanceWarning
from conformance.options import EMBEDDED_KEY, add_options, build_settings  # noqa: F401 - EMBEDDED_KEY: self-tests'
from conformance.probes import NONCE_RE, new_nonce  # noqa: F401 - NONCE_RE: the token's pattern
from conformance import vocabulary
from conformance.runstate import run_dir
from conformance.session import SESSION_KEY, ConformanceSession
from conformance.target import Target


# --- options ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser.getgroup("responses-ws-conformance", "Responses API WebSocket conformance"))


# --- session state ---------------------------------------------------------------------------

def _session(config: pytest.Config) -> ConformanceSession:
    return config.stash[SESSION_KEY]


# --- configure / collection ------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in collection.MARKERS:
        config.addinivalue_line("markers", marker)
    for opt in ("perf_turns", "perf_repetitions"):
        if config.getoption(opt) < 1:
            raise pytest.UsageError(f"--{opt.replace('_', '-')} must be at least 1")
    sess = ConformanceSession(config, build_settings(config))
    config.stash[SESSION_KEY] = sess
    config.pluginmanager.register(sess, "responses-ws-conformance-session")
    from conformance import clienthooks     # own tests, the gateway sandwich
    clienthooks.register(config, sess)
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
    if sess is None or sess.is_worker or sess.settings.embedded or not sess.settings.preflight or sess.not_usable \
            or opt.collectonly or getattr(opt, "showfixtures", False) or getattr(opt, "show_fixtures_per_test", False):
        return
    diagnosis, sess.preflight = preflight.check_target(sess.target, timeout=sess.settings.preflight_timeout,
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
            sess.plan = budget.read_plan(run_dir(sess.settings.run_id))
            if sess.plan:
                _write_line(node.config, sess.plan)

    @staticmethod
    def pytest_configure_node(node: Any) -> None:  # hand the run id to the workers
        settings = _session(node.config).settings
        node.workerinput["conformance_run_id"] = settings.run_id
        node.workerinput["conformance_report_dir"] = str(settings.report_dir) if settings.report_dir else ""
        node.workerinput["conformance_started"] = _session(node.config).started


def pytest_unconfigure(config: pytest.Config) -> None:
    sess = config.stash.get(SESSION_KEY, None)
    if sess is not None:
        sess.stop()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    sess = config.stash.get(SESSION_KEY, None)     # client mode collects cases/client/ only
    return True if sess is not None and (collection.ignored(collection_path, sess.settings.client_mode)
                                         or collection.client_file_ignored(collection_path, sess.settings)) else None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> Any:
    """A case module's id is its path from its ``cases`` folder, not from pytest's rootdir
    (``conformance.caseid``): ids, baselines and reports stay the same wherever files are."""
    nodeid = caseid.module_id(module_path)
    if nodeid is None or module_path.name == "__init__.py":
        return None
    return pytest.Module.from_parent(parent, path=module_path, nodeid=nodeid)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    registry = _session(config).settings.registry
    problems = collection.check_clause_marks(items, registry)
    if problems:
        raise pytest.UsageError("clause marks:\n  " + "\n  ".join(problems))
    wanted = config.getoption("select_clauses") or []
    if wanted:
        keep, drop = collection.select(items, registry, wanted)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


# --- running one case ------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not collection.is_case(item):
        return
    sess = _session(item.config)
    settings = sess.settings
    ids = collection.clause_ids(item)
    sess.liveness.case, sess.liveness.idle_limit = item.nodeid, None
    sess.run.liveness = sess.liveness       # only conformance cases count toward a stall
    # the recorder redacts with the configured key (the Target may not exist yet)
    item.stash[CASE_KEY] = CaseState(verdicts.CaseRecorder(settings.registry, ids, sess.redact), ids,
                                     spent_before=sess.run.meter.snapshot())
    reason = collection.static_skip(item, sess)
    if reason:
        pytest.skip(reason)
    state = item.stash[CASE_KEY]
    state.declared = collection.declared(item, sess)
    reason = sess.budget.reserve(state.declared)
    if reason:
        pytest.skip(reason)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The planned maximum of requests, before the first one (a worker hands it to the controller)."""
    sess = session.config.stash.get(SESSION_KEY, None)
    if sess is None:
        return
    line = collection.plan(session.items, sess)
    if line is None:
        return
    if sess.is_worker:
        budget.write_plan(run_dir(sess.settings.run_id), line)
    else:
        sess.plan = line
        _write_line(session.config, line)


def _write_line(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _session(item.config).run.liveness = None
    if item.stash.get(CASE_KEY, None) is not None:
        _session(item.config).budget.release()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    __tracebackhide__ = True
    state: CaseState | None = item.stash.get(CASE_KEY, None)
    if state is None:
        return (yield)
    token = verdicts.bind(state.recorder)
    try:
        try:
            result = yield
        except Exception as exc:
            judging.judge(state, exc)
            raise
        judging.raise_outcome(state, judging.judge(state, None), _session(item.config).settings.strict)
        return result
    finally:
        verdicts.unbind(token)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """Run a case, and again on fresh connections while ``retry.retryable`` says so (up to
    ``--retries`` more tries); differing verdicts make it FLAKY (``conformance.retry``)."""
    state: CaseState | None = pyfuncitem.stash.get(CASE_KEY, None)
    if state is None or _session(pyfuncitem.config).settings.retries <= 0:
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    tries.run_tries(pyfuncitem.obj, kwargs, state, _session(pyfuncitem.config))
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state: CaseState | None = item.stash.get(CASE_KEY, None)
    if state is None:
        return report
    casereport.annotate(item, state, report, _session(item.config).run)
    return report


def pytest_report_teststatus(report: Any, config: pytest.Config):
    verdict = getattr(report, "conformance_verdict", None)
    if verdict is None or report.when != "call":
        return None
    return vocabulary.teststatus(verdict, report.outcome)


# --- end of session: reports -----------------------------------------------------------------

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker:
        return
    runreport.finish_baseline(session, sess)
    runreport.set_exit_code(session, sess)
    if (not sess.records and not sess.not_usable) or sess.settings.report_dir is None:
        return
    from conformance.report import write_reports
    try:
        sess.report_paths = write_reports(sess.settings.report_dir, redact=sess.redact, **runreport.report_args(sess))
    except OSError as exc:
        sess.report_error = f"could not write reports to {sess.settings.report_dir}: {exc}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config):
    """pytest's FAILURES/ERRORS entries of the cases are held back unless -v or --long-failures
    (``conformance.report.terminal``); the conformance summary comes last."""
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker or not (sess.records or sess.not_usable):
        return (yield)
    from conformance.report import terminal
    # an explicit --tb asks for pytest's entries too
    long = config.getoption("long_failures") or config.getoption("verbose") > 0 or config.option.tbstyle != "auto"
    held = contextlib.nullcontext() if long else terminal.held_back(terminalreporter.stats,
                                                                        {r.nodeid for r in sess.records})
    with held:
        result = yield
    runreport.conformance_summary(terminalreporter, sess)
    return result


def pytest_report_header(config: pytest.Config) -> list[str]:
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker:
        return []
    return header.header_lines(config, sess)


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
        settings = _session(request.config).settings
        state = CaseState(verdicts.CaseRecorder(settings.registry, ()), ())
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


@pytest.fixture
def client_scenario(request: pytest.FixtureRequest):
    """Client mode: ``client_scenario(scenario) -> judgements`` runs --client-command against the
    reference server playing ``scenario`` (conformance.clientmode.casework)."""
    from conformance.clientmode import casework
    settings = _session(request.config).settings
    if settings.client_command is None:
        pytest.skip("client scenario: needs --client-command")
    return lambda scenario: casework.play(scenario, settings.client_command, _state(request).connections,
                                          request.config.invocation_params.dir, settings.client_deadline)


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> Verdict:
    return Verdict(_state(request))


@pytest.fixture
def expect(verdict: Verdict) -> Verdict:
    """An alias of ``verdict`` (the same object): ``expect(clause_id, condition, evidence=None,
    message="")``, ``expect.info(...)``, ``expect.unsupported(...)``. A case asks for one name."""
    return verdict


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
        server, tgt = conformance_session.extra_server(profile, **overrides)
        started.append(server)
        return server, tgt

    yield _factory
    for s in started:
        s.stop()
