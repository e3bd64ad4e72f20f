"""The pytest side of a client's own tests and of the gateway sandwich, kept out of
``conformance.plugin`` (issue 16's shape) and out of ``conformance.clientmode``, which the
options import (a hook module there would import the session from below it). ``register``
(called from the plugin's ``pytest_configure``) adds the ``client_own_tests`` fixture
(``conformance.clientmode.ownsuite``) and, with ``--gateway-command``, the sandwich's hooks
(``conformance.clientmode.sandwich``): start the gateway before the preflight, write what each
case sent, hand the gateway to xdist workers, judge its upstream side after the last case.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from conformance.casestate import CASE_KEY
from conformance.runstate import run_dir
from conformance.session import SESSION_KEY


def register(config: pytest.Config, sess: Any) -> None:
    config.pluginmanager.register(sys.modules[__name__], "responses-ws-conformance-clientmode")
    if sess.settings.gateway is None:
        return
    from conformance.clientmode.sandwich import SentFrames, sent_file
    config.pluginmanager.register(SentFrames(sent_file(run_dir(sess.settings.run_id)), CASE_KEY),
                                  "responses-ws-conformance-gateway-sent")
    if not sess.is_worker:
        config.pluginmanager.register(GatewayHooks(sess), "responses-ws-conformance-gateway")
        if config.pluginmanager.hasplugin("xdist"):     # its hook exists only where xdist is loaded
            config.pluginmanager.register(GatewayXdistHooks(sess), "responses-ws-conformance-gateway-xdist")


@pytest.fixture
def client_own_tests(request: pytest.FixtureRequest):
    """Client mode: ``client_own_tests() -> OwnRun`` runs --client-test-command once against the
    reference server behaving normally or playing --client-test-scenario (conformance.clientmode.ownsuite)."""
    from conformance.clientmode import ownsuite
    settings = request.config.stash[SESSION_KEY].settings
    if settings.client_test_command is None:
        pytest.skip("own tests: needs --client-test-command")
    return lambda: ownsuite.play(settings.client_test_command, request.node.stash[CASE_KEY].connections,
                                 request.config.invocation_params.dir, settings.client_deadline,
                                 settings.client_test_scenario)


@pytest.hookimpl(tryfirst=True)     # before the plugin's, which selects cases by their clause marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under --client-test-scenario the own-tests case (the one using ``client_own_tests``) also
    checks the scenario's clauses: its clause mark grows by them (marks are read before a case
    runs: --clause selects by them, a clause no case marks reads UNTESTED)."""
    scenario = config.stash[SESSION_KEY].settings.client_test_scenario
    if scenario is None:
        return
    from conformance.clientmode.ownsuite import judged_clauses
    for item in items:
        if "client_own_tests" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.clause(*judged_clauses(scenario)))


class GatewayHooks:
    """The controller's side of the sandwich."""

    def __init__(self, sess: Any) -> None:
        self.sess = sess

    # registered after conformance.plugin, so (pluggy calls later plugins first) before its preflight
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        option = session.config.option
        if option.collectonly or getattr(option, "showfixtures", False) \
                or getattr(option, "show_fixtures_per_test", False):
            return
        from conformance.clientmode import sandwich
        sandwich.start(self.sess)       # NOT-USABLE (sess.preflight) when it does not listen

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Before the plugin's (trylast): the upstream case joins the records the exit code reads."""
        from conformance.clientmode import sandwich
        sandwich.finish(self.sess)


class GatewayXdistHooks:
    def __init__(self, sess: Any) -> None:
        self.sess = sess

    def pytest_configure_node(self, node: Any) -> None:
        from conformance.clientmode.sandwich import worker_input
        node.workerinput["conformance_gateway"] = worker_input(self.sess.settings.gateway)
