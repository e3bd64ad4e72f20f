"""What each profile key changes: every key a profile may set is read (issue 15 item 11).

A profile states facts about a target; a fact that no case reads would be a claim the
certificate seems to vouch for without checking it. The rule: every key of the profile
schema (``conformance.target._DEFAULTS``) changes a plan (which cases run, what they may
spend), a verdict (what a case expects), or what the report names; any other key is refused
as unknown when the profile is loaded. ``tests/test_profile_keys.py`` flips each key of
``EFFECTS`` and sees the difference; a key missing here fails that test.

Case-level requirements: ``@pytest.mark.requires("capability", ..., reason="...")`` on a case
that checks only part of a clause (e.g. the wrong-key refusal of WS-AUTH-BEARER needs
``keys_checked``, the missing-key refusal does not) makes that case alone UNSUPPORTED, before
it runs. It is the one way a case says what the profile must claim (tests/test_profile_keys.py
checks that no case decides UNSUPPORTED from the profile while it runs); only an answer of
the target itself ("rejected generate:false") is ``verdict.unsupported(reason)`` at run time.

A client's claims: in client mode the profile names the server the client is written for, so
its ``features.lanes`` says what that server offers, not what the client does. A client says
what it does with ``--client-claims`` (``CLIENT_CLAIMS``: each claim gives one capability that
the lane and steering clauses require); without the claim they are UNSUPPORTED, never FAIL.
"""

from __future__ import annotations

from typing import Any, Iterable

from conformance.verdicts import unsupported_reason

PLAN, VERDICT, REPORT = "plan", "verdict", "report"

# --client-claims NAME -> the capability it gives (docs/clients.md "Lanes and steering")
CLIENT_CLAIMS: dict[str, str] = {"lanes": "client_lanes", "steering": "client_steering"}

# key -> (what it changes, who reads it)
EFFECTS: dict[str, tuple[str, str]] = {
    "name": (REPORT, "the certificate's profile name and fingerprint"),
    "description": (REPORT, "the report header's profile line"),
    "extends": (PLAN, "the built-in profile whose facts the file starts from"),
    "spec_profiles": (PLAN, "clauses whose `profiles` share none are UNSUPPORTED (verdicts.unsupported_reason)"),
    "target.default_model": (PLAN, "the model of every turn unless --model (Settings.model)"),
    "target.auth_header": (PLAN, "the header carrying the key unless --auth-header"),
    "target.keys_checked": (PLAN, "capability keys_checked: the wrong-key refusal case (cases/test_transport.py)"),
    "target.multi_tenant": (PLAN, "capability multi_tenant: the tenant-isolation clauses (cases/test_tenants.py); "
                                  "claimed and UNTESTED, they keep the certificate from certifying"),
    "connection.lifetime_seconds": (VERDICT, "the lifetime the slow lifetime case waits for and judges; the embedded server's lifetime"),
    "connection.limit_error_code": (VERDICT, "the error code expected at the lifetime limit (cases/test_lifetime.py)"),
    "connection.max_frame_bytes": (VERDICT, "the oversize-frame case: 0 reports (INFO), a limit is judged (cases/test_errors.py)"),
    "concurrency.busy_policy": (PLAN, "capabilities busy_policy_queue / busy_policy_reject (and a client "
                                      "clause's should_when level)"),
    "concurrency.busy_error_code": (VERDICT, "the code expected when a busy create is rejected (cases/test_sequential.py)"),
    "concurrency.max_active": (VERDICT, "LANE-ACTIVE-LIMIT: how many creates it sends and the limit it judges"),
    "concurrency.max_named_lanes": (VERDICT, "LANE-NAMED-LIMIT: how many lane names it opens and the limit it judges"),
    "features.generate_false": (PLAN, "capability generate_false"),
    "features.stream_field": (PLAN, "capability stream_field_tolerated (\"tolerated\"): also the level of "
                                    "CLIENT-CREATE-NO-STREAM (should_when)"),
    "features.background_rejected": (PLAN, "capability background_rejected"),
    "features.compact_endpoint": (PLAN, "capability compact_endpoint"),
    "features.context_management": (PLAN, "capability context_management"),
    "features.http_endpoint": (PLAN, "capability http_endpoint"),
    "features.lanes": (PLAN, "capability lanes"),
    "features.lanes_concurrent": (PLAN, "capability lanes_concurrent"),
    "features.steering": (PLAN, "capability steering"),
    "features.test_controls": (PLAN, "capability test_controls"),
    "features.reference_engine": (PLAN, "capability reference_engine"),
    "cache.store_true_hydrates": (PLAN, "capability store_true_hydrates (not under zdr)"),
    "cache.zdr": (PLAN, "capability zdr"),
    "cache.latest_only": (PLAN, "capability cache_latest_only"),
    "errors.not_found_status": (VERDICT, "the status expected with previous_response_not_found (0: any 4xx)"),
    "errors.not_found_as": (VERDICT, "whether previous_response_not_found may come as response.failed with "
                                     "response.error.code (\"error_or_failed\") or only as an error event"),
    "errors.invalid_request_types": (VERDICT, "the error.type names accepted with previous_response_not_found "
                                              "and the lifetime error (cases/test_cache.py, test_lifetime.py)"),
    "stream.setup_events": (VERDICT, "left-out setup events: INFO (optional) or FAIL (required), in the monitor"),
    "stream.terminal_output": (VERDICT, "a left-out terminal response.output: INFO (optional) or FAIL (required)"),
    "deadlines.turn_timeout": (VERDICT, "the idle deadline of a turn unless --turn-timeout (conformance/deadlines.py)"),
    "deadlines.idle_after_done": (VERDICT, "the idle deadline once a turn's output is done (conformance/deadlines.py)"),
}


def unsupported(clause_ids: Iterable[str], requires: Iterable[Any], registry: Any, profile: Any,
                claimed: frozenset = frozenset()) -> str | None:
    """Why a case is UNSUPPORTED under ``profile`` before it runs, or None: its own ``requires``
    marks, then each clause's ``requires``/``profiles``, then the marks that carry their own
    ``reason`` (they say what the case itself cannot provoke, so a clause that does not apply
    at all is named first). ``claimed``: the capabilities of a client's claims. Unknown clause
    ids are left to the collection check."""
    caps, specs = profile.capabilities() | claimed, profile.spec_profiles
    marks = list(requires)
    reason = case_unsupported([mark for mark in marks if "reason" not in mark.kwargs], caps, profile.name)
    if reason:
        return reason
    for cid in clause_ids:
        if cid in registry:
            reason = client_unclaimed(registry[cid], caps) or unsupported_reason(registry[cid], caps, specs,
                                                                                profile.name)
            if reason:
                return reason
    return case_unsupported([mark for mark in marks if "reason" in mark.kwargs], caps, profile.name)


def case_unsupported(marks: Iterable[Any], capabilities: frozenset, profile_name: str) -> str | None:
    """Why a case's own ``requires`` marks make it UNSUPPORTED under this profile, or None.
    A mark's ``reason`` (``{profile}`` stands for the profile's name) replaces the default text."""
    missing = []
    for mark in marks:
        lacking = [capability for capability in mark.args if capability not in capabilities]
        if lacking and mark.kwargs.get("reason"):
            return "UNSUPPORTED: " + mark.kwargs["reason"].format(profile=profile_name)
        missing += lacking
    if not missing:
        return None
    return (f"UNSUPPORTED: this case requires {', '.join(dict.fromkeys(missing))}, "
            f"which profile {profile_name!r} does not claim")


def client_unclaimed(clause: Any, capabilities: frozenset) -> str | None:
    """Why a client clause does not apply: it requires a claim the client did not make."""
    missing = [name for name, cap in CLIENT_CLAIMS.items() if cap in clause.requires and cap not in capabilities]
    if not missing:
        return None
    return (f"UNSUPPORTED: {clause.id} requires the claim {', '.join(missing)}, which the client does not make "
            f"(--client-claims {','.join(missing)})")
