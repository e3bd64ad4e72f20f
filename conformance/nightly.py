"""The verdict of a night (scripts/nightly.sh, docs/nightly.md): from the suite's exit code,
its certificate and the diff against the previous night, the job's exit code and one line
saying why; and ``summary.md``. ``python -m conformance.nightly --suite-exit N --report DIR
[--previous FILE]`` is what the script calls after the run; ``decide`` is the logic, no I/O.

Exit codes of the night, first matching row wins:

======  =====================================================================================
night   when
======  =====================================================================================
4       the suite said usage error (4): a bad option or an unusable profile/baseline file
6       the suite said not usable (6), or the certificate says NOT-USABLE or checked no clause
7       the suite said incomplete (7), or the certificate's ``overall`` is ERROR
2       the job could not judge the night: the suite ended with another code (pytest's 2, 3,
        5, a signal) or wrote no certificate, or PREVIOUS is not a readable certificate
1       worse than PREVIOUS (``conformance.diff``: a regression, a clause checked no longer,
        certification lost); without PREVIOUS: the suite said nonconformant (1)
0       the run tested the target and nothing got worse (without PREVIOUS: conformant)
======  =====================================================================================

Rows 4-7 do not look at PREVIOUS: a night that could not test, or not test everything, is red
whatever the night before was. Until the suite's preflight exists, an unreachable target makes
every case ERROR (exit 1, ``overall`` ERROR): row 7 catches it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conformance import diff, vocabulary

# the suite's exit codes (docs/nightly.md; conformance.exitcodes when it exists)
CONFORMANT, NONCONFORMANT, USAGE_ERROR, NOT_USABLE, INCOMPLETE = 0, 1, 4, 6, 7
# the night's own
GREEN, WORSE, JOB_FAILED = 0, 1, 2
PYTEST_OWN = {2: "interrupted", 3: "internal error", 5: "no tests collected"}


@dataclass
class Night:
    status: int
    reason: str                      # one line
    diff: dict | None = None         # conformance.diff.compare, when there was a PREVIOUS
    notes: list[str] = field(default_factory=list)


def _usage_line(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip().startswith("ERROR:")]
    return lines[-1][len("ERROR:"):].strip() if lines else "see pytest.log"


def decide(suite_exit: int, cert: dict | None, previous: dict | None = None, *,
           previous_error: str = "", log: str = "") -> Night:
    """The night's exit code and reason (table above). ``previous``: PREVIOUS's certificate
    (None: no PREVIOUS); ``previous_error``: why PREVIOUS could not be read."""
    if suite_exit == USAGE_ERROR:
        return Night(USAGE_ERROR, f"usage error (suite exit 4): {_usage_line(log)}")
    overall = (cert or {}).get("overall")
    if suite_exit == NOT_USABLE or overall == vocabulary.NOT_USABLE:
        said = diff.preflight_line(cert or {})
        return Night(NOT_USABLE, f"the target could not be tested (suite exit {suite_exit}, NOT-USABLE)"
                     + (f": {said}" if said else ": see pytest.log"))
    if cert is not None and cert.get("clauses") and not diff.checked(cert) and suite_exit in (0, 1):
        return Night(NOT_USABLE, f"the run checked no clause (suite exit {suite_exit}, overall {overall}): "
                                 "nothing was tested")
    if suite_exit == INCOMPLETE or overall == diff.INCOMPLETE:
        errors = sum(1 for case in diff.cases(cert or {}) if case.verdict == vocabulary.ERROR)
        stalled = (cert or {}).get("stalled") or {}
        why = f"; the run stopped early: {stalled.get('message')}" if stalled.get("message") else ""
        return Night(INCOMPLETE, f"incomplete (suite exit {suite_exit}, overall {overall}): "
                                 f"{errors} case(s) could not be judged{why}")
    if suite_exit not in (CONFORMANT, NONCONFORMANT):
        what = PYTEST_OWN.get(suite_exit, "unexpected exit")
        return Night(JOB_FAILED, f"the suite ended with exit {suite_exit} ({what}): see pytest.log")
    if cert is None:
        return Night(JOB_FAILED, f"the run wrote no certificate (suite exit {suite_exit}): see pytest.log")
    if previous_error:
        return Night(JOB_FAILED, f"PREVIOUS is unusable: {previous_error}")
    if previous is None:
        if suite_exit == NONCONFORMANT:
            return Night(WORSE, f"nonconformant (suite exit 1, overall {overall}) and no PREVIOUS to compare with")
        return Night(GREEN, f"conformant (overall {overall}); no PREVIOUS to compare with")
    try:
        result = diff.compare(previous, cert)
    except diff.CertificateError as exc:
        return Night(JOB_FAILED, f"cannot compare with PREVIOUS: {exc}")
    if result["reasons"]:
        line = "worse than PREVIOUS: " + "; ".join(text for _, text in result["reasons"])
        return Night(WORSE, line if len(line) <= 400 else line[:399] + "…", result)
    if suite_exit == NONCONFORMANT:
        return Night(GREEN, f"no worse than PREVIOUS (still nonconformant: overall {overall})", result)
    return Night(GREEN, f"conformant (overall {overall}) and no worse than PREVIOUS", result)


def summary(cert: dict | None, night: Night, previous: dict | None = None) -> str:
    """summary.md: the night's verdict first, then the run, then the diff."""
    out = [f"# Nightly conformance: {(cert or {}).get('overall', 'no certificate')}", "",
           f"**Night: {'GREEN' if night.status == 0 else 'RED'} (exit {night.status})**: {night.reason}", ""]
    if cert is not None:
        target = cert.get("target") or {}
        certification = cert.get("certification") or {}
        reasons = [r if len(r) <= 160 else r[:159] + "…" for r in certification.get("reasons") or []]
        out.append("Certified: yes" if certification.get("certified") else
                   "Certified: no — " + ("; ".join(reasons) or "(no reason recorded)"))
        out.append("")
        if cert.get("stalled"):
            stalled = cert["stalled"]
            out += [f"**Run stopped early ({stalled.get('reason')}) since {stalled.get('since')}**: "
                    f"{stalled.get('message')}", ""]
        out += [f"Target {target.get('ws_host')}{target.get('ws_path')}, profile {cert.get('profile')}, "
                f"model {target.get('model')}, run {cert.get('run_id')} ({cert.get('duration_s')} s).", ""]
        cases = (cert.get("counts") or {}).get("cases") or {}
        counts = {k: v for k, v in cases.items() if v and k != "total"}
        out.append("Cases: " + (", ".join(f"{v} {k}" for k, v in counts.items()) or "none")
                   + f" (of {cases.get('total', 0)}).")
        usage = cert.get("usage") or {}
        out.append(f"Spent: {usage.get('creates', 0)} response.create, {usage.get('http_requests', 0)} HTTP requests, "
                   f"{usage.get('input_tokens', 0)} input and {usage.get('output_tokens', 0)} output tokens.")
        review = cert.get("baseline")
        if review:
            out.append(f"Baseline: {review.get('known')} case(s) KNOWN, {review.get('stale')} entry(ies) STALE.")
            for e in review.get("entries", []):
                if e.get("status") == vocabulary.STALE:
                    out.append(f"- remove known #{e.get('index')} ({e.get('clause') or e.get('case')}): it passes now")
        out.append("")
    if night.diff is not None and previous is not None and cert is not None:
        out.append(diff.render(previous, cert, night.diff))
    elif previous is None:
        out.append("No previous certificate: no diff (the first night, or PREVIOUS not found).")
    return "\n".join(out) + "\n"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.nightly",
                                description="the night's verdict after scripts/nightly.sh ran the suite")
    parser.add_argument("--suite-exit", type=int, required=True, metavar="N", help="the suite's exit code")
    parser.add_argument("--report", required=True, metavar="DIR", help="the run's report directory")
    parser.add_argument("--previous", default=None, metavar="FILE", help="the previous night's certificate.json")
    args = parser.parse_args(argv)
    try:
        return _night(args)
    except Exception as exc:  # noqa: BLE001 - a crash here must not read as "worse" (exit 1)
        print(f"nightly: RED (exit {JOB_FAILED}): the night could not be judged: {type(exc).__name__}: {exc}")
        return JOB_FAILED


def _night(args: argparse.Namespace) -> int:
    report = Path(args.report)
    cert = _read_json(report / "certificate.json")
    try:
        log = (report / "pytest.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        log = ""
    previous, previous_error = None, ""
    if args.previous:
        try:
            previous = diff.load(args.previous)
        except diff.CertificateError as exc:
            previous_error = str(exc)
    night = decide(args.suite_exit, cert, previous, previous_error=previous_error, log=log)
    text = summary(cert, night, previous)
    (report / "summary.md").write_text(text, encoding="utf-8")
    if night.diff is not None and cert is not None and previous is not None:
        (report / "diff.md").write_text(diff.render(previous, cert, night.diff), encoding="utf-8")
    (report / "verdict.txt").write_text(f"exit {night.status}: {night.reason}\n", encoding="utf-8")
    print(f"nightly: {'GREEN' if night.status == 0 else 'RED'} (exit {night.status}): {night.reason}")
    return night.status


if __name__ == "__main__":
    sys.exit(main())
