"""What a case looks like in allure results (``pytest --alluredir DIR``, allure-pytest).

Plain data, no pytest: ``case_annotations`` turns a case's clauses, verdict and turns into
labels, links to the clause's section of ``docs/spec.md``, parameters (profile, target and its
fingerprint) and one step per turn; ``categories`` and ``environment_properties`` are the two
files the controller writes into the results directory. ``conformance.allure_plugin`` calls
these from pytest hooks and hands the result to allure's API.

One result per case in every tab: allure's Behaviors tree files a result under every
epic x feature x story it carries, so a case gets exactly one of each — the clause it is filed
under (``conformance.report.findings.primary``: its first deviation, else its first clause):
epic = that clause's spec area, feature = its id, story = its requirement. Every clause the case
marks is a ``tag``. The status follows the verdict, not the exception that ended the case
(``allure_status``): a FAIL that also could not judge something is failed, not broken.

Every category matches the verdict the status message starts with (``FAIL: …``,
``NON-STRICT: …``): allure tells results apart only by status and message. The message of a
deviation names its clause and requirement only (``status_message``), so allure groups the cases
of one clause under one message; the particular findings go to the trace.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from conformance.vocabulary import ERROR, FAIL, FLAKY, INFO, KNOWN, NON_STRICT, STALE, UNSUPPORTED

SEVERITY = {"MUST": "critical", "SHOULD": "normal", "MAY": "minor"}
_LEVEL_RANK = {"MUST": 0, "SHOULD": 1, "MAY": 2}

# the headings of docs/spec.md (same numbers and titles as the protocol reference)
SPEC_SECTIONS = {
    "0": "0. Timeline / profiles",
    "1": "1. Connection", "1.1": "1.1 URL forms", "1.2": "1.2 Handshake",
    "1.3": "1.3 Refusal before upgrade", "1.4": "1.4 Message framing",
    "1.5": "1.5 Lifetime, close codes, keep-alive",
    "2": "2. Client events", "2.1": "2.1 `response.create`",
    "2.2": "2.2 `response.steer` (GA since Sep 2026; GPT-6 family only)",
    "2.3": "2.3 `response.inject` (beta, `OpenAI-Beta: responses_multi_agent=v1`)",
    "2.4": "2.4 Events that do NOT exist in the OpenAI public protocol",
    "3": "3. Server events", "3.1": "3.1 Common envelope",
    "3.2": "3.2 Shared streaming events (same payloads as HTTP SSE)",
    "3.3": "3.3 WebSocket-only server events", "3.4": "3.4 Full list of server event type strings",
    "3.5": "3.5 `sequence_number`", "3.6": "3.6 Response object (`response` in lifecycle events)",
    "3.7": "3.7 Usage object", "3.8": "3.8 Output items (selected)",
    "3.9": "3.9 Event shapes at item start (observed on the public API)",
    "3.10": "3.10 The WebSocket `error` event (`ResponseWsError`)",
    "4": "4. Semantics a suite must check", "4.0": "4.0 Profiles", "4.1": "4.1 Transport and framing",
    "4.2": "4.2 `response.create` validation",
    "4.3": "4.3 Event ordering within one response (same rules as HTTP streaming)",
    "4.4": "4.4 Concurrency and queueing", "4.5": "4.5 Continuation and the connection-local cache",
    "4.6": "4.6 Reconnect", "4.7": "4.7 `generate: false`", "4.8": "4.8 Compaction",
    "4.9": "4.9 Steering (P-steer)", "4.10": "4.10 Error envelope checks",
    "4.11": "4.11 Client conformance (client mode)",
    "5": "5. Differences between vendors and implementations",
    "6": "6. Open questions (sources silent or conflicting)", "7": "7. Sources",
}
SPEC_DOC = "docs/spec.md"
_SECTION_RE = re.compile(r"§(\d+(?:\.\d+)?)(?:\s+(?:item|question)\s+(\d+))?")

# (the verdict the status message starts with, what it means, statuses it applies to)
_CATEGORY_TABLE = (
    (FAIL, "a MUST clause was violated", ("failed",)),
    (NON_STRICT, "only SHOULD clauses were violated", ("passed", "failed")),
    (ERROR, "the run could not judge (not a conformance verdict)", ("broken", "failed")),
    (FLAKY, "the verdict changed between tries", ("passed", "failed", "broken")),
    (KNOWN, "a deviation recorded in the baseline", ("passed", "failed", "broken", "skipped")),
    (STALE, "a baseline entry whose case now passes", ("passed", "failed", "broken")),
    (UNSUPPORTED, "the profile does not claim the feature", ("skipped",)),
    (INFO, "observations and extensions only", ("passed",)),
)


def categories() -> list[dict]:
    """``categories.json``: one category per verdict that is not a plain PASS."""
    return [{"name": f"{verdict}: {meaning}", "matchedStatuses": list(statuses),
             "messageRegex": f"(?s){re.escape(verdict)}:.*"} for verdict, meaning, statuses in _CATEGORY_TABLE]


def status_message(verdict: str, message: str | None) -> str:
    """The status message allure shows: the verdict first, so that a category can match it."""
    text = (message or "").strip()
    if text.startswith(f"{verdict}:"):
        return text
    return f"{verdict}: {text}" if text else verdict


_EMBEDDED = "embedded reference server"


def target_name(fingerprint: dict) -> str:
    """Host and path; the embedded server's port changes per process, so it is left out."""
    if fingerprint.get("embedded"):
        return _EMBEDDED
    return f"{fingerprint.get('ws_host', '')}{fingerprint.get('ws_path', '')}"


def fingerprint_digest(fingerprint: dict) -> str:
    """A short stable hash of the target fingerprint (same target, profile, model: same value,
    also across xdist workers)."""
    stable = {k: v for k, v in fingerprint.items() if k != "profile_source"}
    if stable.get("embedded"):
        stable["ws_host"] = _EMBEDDED
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def environment_properties(fingerprint: dict, profile: str, suite_version: str, spec_profiles: Iterable[str]) -> str:
    """``environment.properties`` (Java properties: ``key=value`` lines, ``\\``-escaped)."""
    rows = [("target", target_name(fingerprint)), ("target.fingerprint", fingerprint_digest(fingerprint)),
            ("target.embedded", str(bool(fingerprint.get("embedded"))).lower()),
            ("profile", profile), ("spec_profiles", ", ".join(sorted(spec_profiles))),
            ("model", str(fingerprint.get("model", ""))),
            ("capabilities", ", ".join(fingerprint.get("capabilities", []))),
            ("suite.version", suite_version)]
    return "".join(f"{_prop(k)}={_prop(v)}\n" for k, v in rows)


def _prop(text: str) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return out.replace("=", "\\=").replace(":", "\\:")


def spec_section(source: str) -> str | None:
    """The first spec section a clause's ``source`` names ("§4.3 item 14 [S1]" -> "4.3")."""
    match = _SECTION_RE.search(source or "")
    return match.group(1) if match else None


def spec_anchor(section: str) -> str:
    """The docs/spec.md heading anchor of a section (GitHub's rule: lower case, punctuation
    dropped, spaces to hyphens)."""
    title = SPEC_SECTIONS.get(section, section)
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def spec_area(section: str | None) -> str:
    """The epic: the section's number and short title ("§4.3 Event ordering within one response")."""
    if section is None:
        return "unsectioned"
    title = SPEC_SECTIONS.get(section, section).split(" (")[0].replace("`", "")
    number, _, rest = title.partition(" ")
    return f"§{number.rstrip('.')} {rest}".strip()


# Clauses of one spec profile alone form an area of their own, wherever in docs/spec.md their
# items are (lanes span §4.2-§4.5); steering clauses are §4.9 already.
PROFILE_AREAS = {("P-lanes",): "Lanes (stream_id, P-lanes)", ("P-steer",): "§4.9 Steering"}


def area_sort_key(area: str) -> tuple:
    """Areas in spec order (§4.10 after §4.9); the lanes area next to §4.4, where its
    core rules (items 20-23a) are."""
    match = re.match(r"§(\d+)(?:\.(\d+))?", area)
    return (int(match.group(1)), int(match.group(2) or 0), 0, area) if match else (4, 4, 1, area)


def clause_area(clause: Any) -> str:
    """The area a clause is reported under (allure epic, certificate ``area``)."""
    return PROFILE_AREAS.get(tuple(clause.profiles)) or spec_area(spec_section(clause.source))


@dataclass
class Step:
    title: str
    params: dict[str, str]
    problem: str | None = None          # a violation found in this turn's frames (step fails)


@dataclass
class Annotations:
    labels: list[tuple[str, str]] = field(default_factory=list)      # (label type, value)
    links: list[tuple[str, str]] = field(default_factory=list)       # (url, name)
    parameters: list[tuple[str, str]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def case_annotations(clauses: Iterable[Any], verdict: str, profile: str, fingerprint: dict,
                     requests: Iterable[Any] = (), primary: Any = None) -> Annotations:
    """Labels, links, parameters and steps of one case. ``clauses`` are registry ``Clause``
    objects (the ones the case marks); ``primary`` the ``Clause`` it is filed under (default:
    the first of ``clauses``); ``requests`` the monitor's request states of every connection,
    in order."""
    out = Annotations()
    clauses = list(clauses)
    primary = primary or (clauses[0] if clauses else None)
    if primary is not None:     # one of each: Behaviors counts a result once per combination
        out.labels += [("epic", clause_area(primary)), ("feature", primary.id), ("story", primary.requirement)]
    by_section: dict[str, list[str]] = {}
    for clause in clauses:
        section = spec_section(clause.source)
        out.labels.append(("tag", clause.id))
        if section is not None:
            by_section.setdefault(section, []).append(clause.id)
    # one link per section (allure keeps one link per URL), named after its clauses
    out.links = [(f"{SPEC_DOC}#{spec_anchor(s)}", f"{spec_area(s)} ({', '.join(ids)})") for s, ids in by_section.items()]
    if clauses:
        level = min((c.level for c in clauses), key=_LEVEL_RANK.__getitem__)
        out.labels.append(("severity", SEVERITY[level]))
    out.labels.append(("tag", verdict))
    out.labels = list(dict.fromkeys(out.labels))
    out.parameters = [("profile", profile),
                      ("target", target_name(fingerprint)),
                      ("target fingerprint", fingerprint_digest(fingerprint))]
    out.steps = [turn_step(n, rs) for n, rs in enumerate(requests, 1)]
    return out


_KEY_FIELDS = ("model", "previous_response_id", "store", "generate", "stream_id", "background",
               "max_output_tokens", "tool_choice")


def turn_step(number: int, request: Any) -> Step:
    """One step for one request (``RequestState``): the create's key fields and the outcome."""
    create = getattr(request, "create", None) or {}
    params = {k: _short(create[k]) for k in _KEY_FIELDS if k in create}
    if "input" in create:
        params["input"] = _short(create["input"], 120)
    if create.get("tools"):
        params["tools"] = str(len(create["tools"]))
    error = getattr(request, "error", None)
    if isinstance(error, dict):
        outcome = error_outcome(error)
    elif getattr(request, "terminal_type", None):
        outcome = f"{request.terminal_type} {getattr(request, 'response_id', '') or ''}".strip()
    else:
        outcome = f"no terminal event (state {getattr(request, 'state', '?')})"
    params["outcome"] = outcome
    params["events"] = str(len(getattr(request, "events", ()) or ()))
    origin = getattr(request, "origin", "create")
    what = "response.create" if origin == "create" else f"{origin} response"
    fields = ", ".join(f"{k}={params[k]}" for k in ("previous_response_id", "store", "generate", "stream_id")
                       if k in params)
    title = f"turn {number}: {what}" + (f" ({fields})" if fields else "") + f" → {outcome}"
    problems = [f"{f.clause}: {f.message}" for f in getattr(request, "findings", ()) or ()
                if getattr(f, "kind", "violation") == "violation"]
    return Step(title, params, "; ".join(problems)[:500] or None)


def error_outcome(event: dict) -> str:
    """A step's outcome for an error event: its code (nested, or the legacy flat shape), else
    its type, and the status; says so when the event carries no code at all."""
    err = event.get("error") if isinstance(event.get("error"), dict) else {}
    code = err.get("code") or event.get("code")
    kind = err.get("type") or (event.get("type") if event.get("type") != "error" else None)
    name = f"error {code}" if code else (f"error without code (type {kind})" if kind else "error without code")
    status = event.get("status", err.get("status"))
    return name + (f" (status {status})" if status is not None else " (no status)")


# the allure status of a verdict where it is not the one the exception gave (None: keep allure's)
ALLURE_STATUS = {FAIL: "failed", FLAKY: "failed", ERROR: "broken"}
_DEVIATION_VERDICTS = (FAIL, NON_STRICT, FLAKY, KNOWN)


def allure_status(verdict: str) -> str | None:
    return ALLURE_STATUS.get(verdict)


def deviation_message(verdict: str, clause: Any, reason: str) -> str:
    """The status message: for a deviation its clause, level and requirement (the same for every
    case filed under the clause); otherwise the reason."""
    if verdict in _DEVIATION_VERDICTS and clause is not None:
        return status_message(verdict, f"{clause.id} ({clause.level}): {clause.requirement}")
    return status_message(verdict, reason)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
