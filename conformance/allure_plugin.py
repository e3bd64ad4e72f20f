"""Conformance verdicts in allure results: registered by ``conformance.plugin`` when
``--alluredir`` is given (allure-pytest loaded).

Where a case runs (the only process, or an xdist worker), after its teardown report: labels,
spec links, parameters, one step per turn, the redacted transcript and frames as
attachments, and a status message that starts with the verdict (``conformance.report.allure``
says what each is). The controller writes ``categories.json`` and ``environment.properties``
at the end of the session. Every text handed to allure is redacted with the configured key.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from conformance.caserecord import CaseRecord
from conformance.casestate import case_state
from conformance.report import allure as allure_report
from conformance.report import findings
from conformance.vocabulary import FLAKY, PASS

_FRAMES_PER_CONNECTION = 2000


class AllureHooks:
    def __init__(self, session: Any, report_dir: str):
        self.sess = session
        self.dir = Path(report_dir)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # tryfirst: the outermost wrapper, so the conformance record is already on the report
        report = yield
        record = getattr(report, "conformance_record", None)
        if report.when == "teardown" and record is not None:
            self._annotate(case_state(item), CaseRecord.from_json(record))
        return report

    def _annotate(self, state: Any, record: CaseRecord) -> None:
        import allure
        from allure_commons import plugin_manager
        from allure_commons.model2 import StatusDetails
        from allure_commons.types import AttachmentType

        sess, redact = self.sess, self.sess.redact
        reg = sess.settings.registry
        requests = [rs for conn in state.connections for rs in getattr(conn.monitor, "requests", ())]
        filed = findings.primary(record)
        primary = reg[filed] if filed in reg else None
        ann = allure_report.case_annotations([reg[c] for c in state.clauses], record.verdict,
                                             sess.settings.profile.name, sess.fingerprint(), requests, primary=primary)
        for kind, value in ann.labels:
            allure.dynamic.label(kind, redact(value))
        for url, name in ann.links:
            allure.dynamic.link(url, link_type="spec", name=name)
        for name, value in ann.parameters:
            allure.dynamic.parameter(name, redact(value))
        for step in ann.steps:
            sid = str(uuid.uuid4())
            plugin_manager.hook.start_step(uuid=sid, title=redact(step.title),
                                           params={k: redact(v) for k, v in step.params.items()})
            problem = AssertionError(redact(step.problem)) if step.problem else None
            plugin_manager.hook.stop_step(uuid=sid, exc_type=type(problem) if problem else None,
                                          exc_val=problem, exc_tb=None)
        if state.connections:
            allure.attach(redact(state.transcripts(limit=None)), "transcript", AttachmentType.TEXT)
            allure.attach(redact(_frames_json(state.connections)), "frames", AttachmentType.JSON)
        result = _current_result()
        if result is not None and record.verdict != PASS:
            # the verdict decides, not the exception that ended the case: a FAIL whose case also
            # raised "cannot judge" is failed with its clause's message
            verdict = record.verdict
            result.status = allure_report.allure_status(verdict) or result.status
            details = result.statusDetails or StatusDetails()
            _, reason = findings.case_reason(record)
            details.message = redact(allure_report.deviation_message(verdict, primary, reason))
            text = "\n".join(record.messages)
            details.trace = redact(text + ("\n\n" + details.trace if details.trace else ""))
            if verdict == FLAKY:
                details.flaky = True
            result.statusDetails = details

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        sess = self.sess
        if sess.is_worker:
            return
        from conformance.report import suite_version
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "categories.json").write_text(json.dumps(allure_report.categories(), indent=2), encoding="utf-8")
        props = allure_report.environment_properties(sess.fingerprint(), sess.settings.profile.name, suite_version(),
                                                     sess.settings.profile.spec_profiles)
        (self.dir / "environment.properties").write_text(sess.redact(props), encoding="utf-8")


def _current_result() -> Any:
    """The allure test result being written (allure-pytest's listener holds it until the
    case's log finishes); None where no case is open (an xdist controller)."""
    from allure_commons import plugin_manager
    for plugin in plugin_manager.get_plugins():
        logger = getattr(plugin, "allure_logger", None)
        if logger is not None:
            return logger.get_test(None)
    return None


def _frames_json(connections: list) -> str:
    out = []
    for conn in connections:
        frames = [{"t": t, "direction": d, "data": x} for t, d, x in conn.transcript[-_FRAMES_PER_CONNECTION:]]
        out.append({"url": conn.url, "close_code": conn.close_code, "frames": frames,
                    "dropped": max(0, len(conn.transcript) - _FRAMES_PER_CONNECTION)})
    return json.dumps(out, indent=1)
