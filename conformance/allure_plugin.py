"""Conformance verdicts in allure results: registered by ``conformance.plugin`` when
``--alluredir`` is given (allure-pytest loaded).

Where a case runs (the only process, or an xdist worker), after its teardown report: labels,
spec links, parameters, one step per turn, the redacted transcript and frames as
attachments, and a status message that starts with the verdict (``conformance.report.allure``
says what each is). The controller writes ``categories.json`` and ``environment.properties``
at the end of the session, and one result for each case record it built itself, with no
pytest item behind it (``ConformanceSession.built_records``: the gateway sandwich's upstream
case), in the same shape: labels, links, parameters, one step per clause it judged, its
transcript, its verdict's status. Every text handed to allure is redacted with the configured key.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conformance.caserecord import CaseRecord
from conformance.casestate import case_state
from conformance.report import allure as allure_report
from conformance.report import findings
from conformance.vocabulary import FAIL, FLAKY, PASS, VERDICTS

# an allure status for a pytest outcome (a verdict's, conformance.vocabulary)
_OUTCOME_STATUS = {"passed": "passed", "failed": "failed", "skipped": "skipped", "error": "broken"}

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
        for record in getattr(sess, "built_records", ()):
            self._write_built(record)

    def _write_built(self, record: CaseRecord) -> None:
        """One allure result for a record no pytest item wrote (allure-pytest's file logger
        writes it, as it writes the cases' own)."""
        from allure_commons import plugin_manager
        from allure_commons.model2 import (Attachment, Label, Link, Parameter, StatusDetails, TestResult,
                                           TestStepResult)
        from allure_commons.types import AttachmentType
        from allure_commons.utils import md5

        sess, redact = self.sess, self.sess.redact
        reg = sess.settings.registry
        filed = findings.primary(record)
        primary = reg[filed] if filed in reg else None
        ann = allure_report.case_annotations([reg[c] for c in record.clauses if c in reg], record.verdict,
                                             sess.settings.profile.name, sess.fingerprint(), primary=primary)
        module, _, name = record.nodeid.partition("::")
        stop = int(time.time() * 1000)
        status = allure_report.allure_status(record.verdict) \
            or _OUTCOME_STATUS.get(VERDICTS[record.verdict].outcome or "", "passed")
        result = TestResult(uuid=str(uuid.uuid4()), historyId=md5(record.nodeid), testCaseId=md5(record.nodeid),
                            fullName=module.replace("/", ".") + "#" + name, name=name, status=status,
                            stage="finished", start=stop - int(record.duration_s * 1000), stop=stop)
        result.labels = [Label(kind, redact(value)) for kind, value in ann.labels]
        result.labels += [Label("framework", "pytest"), Label("package", module.replace("/", ".")),
                          Label("suite", module.rpartition("/")[2])]
        result.links = [Link("spec", url, name) for url, name in ann.links]
        result.parameters = [Parameter(key, repr(redact(value))) for key, value in ann.parameters]
        result.steps = [_clause_step(observation, stop, redact) for observation in record.observations]
        result.steps += [TestStepResult(name=f"{clause}: NOT-REACHED", status="skipped", start=stop, stop=stop)
                         for clause in record.not_reached]
        if record.verdict != PASS:
            _, reason = findings.case_reason(record)
            result.statusDetails = StatusDetails(
                message=redact(allure_report.deviation_message(record.verdict, primary, reason)),
                trace=redact("\n".join(record.messages)), flaky=record.verdict == FLAKY or None)
        if record.transcript:
            source = f"{uuid.uuid4()}-attachment.txt"
            plugin_manager.hook.report_attached_data(body=redact(record.transcript), file_name=source)
            result.attachments.append(Attachment("transcript", source, AttachmentType.TEXT.mime_type))
        plugin_manager.hook.report_result(result=result)


def _clause_step(observation: dict, when: int, redact: Any) -> Any:
    """One step of a built record: a clause it judged, its verdict and message."""
    from allure_commons.model2 import StatusDetails, TestStepResult
    ok = observation.get("ok")
    title = f"{observation.get('clause')}: {observation.get('verdict') or (PASS if ok else FAIL)}"
    message = redact(str(observation.get("message") or ""))
    return TestStepResult(name=redact(title) + (f" ({message[:200]})" if message else ""),
                          status="passed" if ok else "failed", start=when, stop=when,
                          statusDetails=StatusDetails(message=message) if message and not ok else None)


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
