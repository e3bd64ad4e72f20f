"""Tenant isolation cases: spec §4.5 item 35a (a key of another tenant never continues, reads
or deletes a response of the first tenant, over either surface, store=true or store=false).

The first tenant is the run's key; the other tenant's key is declared by the operator
(``--other-tenant-key`` / ``$CONFORMANCE_OTHER_TENANT_KEY``, conformance/tenants.py; the
embedded server has one of its own). Without it the cases are skipped before they run, so
their clauses read UNTESTED with the reason saying how to test them; a profile that claims
``[target] multi_tenant`` is then not certified (conformance/report).

Every case plants a nonce in the first tenant's turn and looks for it in everything the other
tenant's key gets back: the events and errors of its connection (the continuation is a forced
``record_nonces`` probe, so a carried context would name the nonce) and the HTTP bodies
(docs/design.md "Model-free oracles"): that is TENANT-NO-CONTEXT-LEAK.
"""

from __future__ import annotations

import pytest

from conformance.casekit import RAN, refusal_code, setup_turn
from conformance.client import Connection, HarnessError, Turn, http_request
from conformance.probes import plant, probe_fields

NOT_FOUND = "previous_response_not_found"
LEAK = "TENANT-NO-CONTEXT-LEAK"


@pytest.fixture
def other_tenant(conformance_session, target):
    """A Target like the run's, with the other tenant's key (the case is skipped without one)."""
    key = conformance_session.settings.other_tenant_key
    assert key, "a tenant case ran without --other-tenant-key: its `other_tenant` mark was not honoured"
    return conformance_session.target_for(target.ws_url, target.http_base_url, embedded=target.is_embedded,
                                          api_key=key)


def _received(conn: Connection) -> str:
    """Everything the other tenant's socket received (frames as sent by the target)."""
    return "\n".join(text for _, direction, text in conn.transcript if direction == "received")


def _expect_refused(expect, target, clause: str, turn: Turn, what: str) -> None:
    code = refusal_code(turn, target)      # under P-open the refusal may come as response.failed
    if turn.status in RAN:
        how = f"was continued (turn {turn.status}) instead of failing with {NOT_FOUND}"
    else:
        how = f"ended {turn.status} with code {code!r} instead of {NOT_FOUND}"
    expect(clause, turn.status not in RAN and code == NOT_FOUND, turn, f"{what} {how}")


def _expect_no_leak(expect, text: str, nonce: str, evidence, where: str) -> None:
    expect(LEAK, nonce not in text, evidence,
           f"the nonce {nonce} the first tenant sent reached the other tenant's key ({where})")


def _continue_as_other(target, connect, other_tenant, expect, nonce: str, clause: str, store: bool) -> None:
    owner = connect()
    first = setup_turn(owner, input=plant(nonce), store=store)
    other = connect(target=other_tenant)          # a new connection with the other tenant's key
    probe = other.turn(**probe_fields(target, previous_response_id=first.response_id, store=store))
    _expect_refused(expect, target, clause, probe,
                    f"another tenant's continuation of the first tenant's store={str(store).lower()} response")
    _expect_no_leak(expect, _received(other), nonce, probe, "in the events of its continuation")


@pytest.mark.other_tenant
@pytest.mark.clause("TENANT-CONTINUE-STORE-TRUE", LEAK)
@pytest.mark.max_requests(creates=2)
def test_other_tenant_cannot_continue_store_true(target, connect, other_tenant, expect, nonce):
    _continue_as_other(target, connect, other_tenant, expect, nonce, "TENANT-CONTINUE-STORE-TRUE", store=True)


@pytest.mark.other_tenant
@pytest.mark.clause("TENANT-CONTINUE-STORE-FALSE", LEAK)
@pytest.mark.max_requests(creates=2)
def test_other_tenant_cannot_continue_store_false(target, connect, other_tenant, expect, nonce):
    # the first tenant's socket stays open: its cache still holds the response
    _continue_as_other(target, connect, other_tenant, expect, nonce, "TENANT-CONTINUE-STORE-FALSE", store=False)


@pytest.mark.other_tenant
@pytest.mark.clause(LEAK)
@pytest.mark.max_requests(creates=2)
def test_other_tenant_gets_nothing_of_the_first(target, connect, other_tenant, expect, nonce):
    # the leak alone: judged whether or not the continuation was refused (the cases above stop
    # at a continuation that ran, before their own nonce check)
    first = setup_turn(connect(), input=plant(nonce), store=True)
    other = connect(target=other_tenant)
    probe = other.turn(**probe_fields(target, previous_response_id=first.response_id, store=True))
    _expect_no_leak(expect, _received(other), nonce, probe,
                    f"in the events of a continuation of the first tenant's response (turn {probe.status})")


# --- HTTP: GET / DELETE /responses/{id} (clauses requiring stored_responses: not under ZDR) -----

def _response_url(target, response_id: str) -> str:
    if not target.http_base_url:
        raise HarnessError(f"cannot judge: no HTTP API base can be derived from {target.ws_url} "
                           "(the socket path does not end in /responses)")
    return f"{target.http_base_url.rstrip('/')}/responses/{response_id}"


def _stored(target, connect, nonce: str) -> str:
    """A store=true response of the first tenant that its own key can GET: its id."""
    first = setup_turn(connect(), input=plant(nonce), store=True)
    own = http_request(target, "GET", _response_url(target, first.response_id))
    if own.status != 200:
        raise HarnessError(f"cannot judge: the first tenant's own GET of its store=true response "
                           f"{first.response_id} answered {own.status} ({own.body[:200]})")
    return first.response_id


@pytest.mark.other_tenant
@pytest.mark.clause("TENANT-HTTP-GET", LEAK)
@pytest.mark.max_requests(creates=1, http=2)
def test_other_tenant_cannot_get(target, connect, other_tenant, expect, nonce):
    url = _response_url(target, _stored(target, connect, nonce))
    res = http_request(other_tenant, "GET", url)
    evidence = f"HTTP {res.status} {res.body[:300]}"
    expect("TENANT-HTTP-GET", 400 <= res.status < 500, evidence,
           f"another tenant's GET of the first tenant's stored response answered {res.status}, expected a 4xx")
    _expect_no_leak(expect, res.body, nonce, evidence, "in the body of its GET")


@pytest.mark.other_tenant
@pytest.mark.clause("TENANT-HTTP-DELETE", LEAK)
@pytest.mark.max_requests(creates=1, http=3)
def test_other_tenant_cannot_delete(target, connect, other_tenant, expect, nonce):
    url = _response_url(target, _stored(target, connect, nonce))
    res = http_request(other_tenant, "DELETE", url)
    evidence = f"HTTP {res.status} {res.body[:300]}"
    expect("TENANT-HTTP-DELETE", 400 <= res.status < 500, evidence,
           f"another tenant's DELETE of the first tenant's stored response answered {res.status}, expected a 4xx")
    _expect_no_leak(expect, res.body, nonce, evidence, "in the body of its DELETE")
    after = http_request(target, "GET", url)
    expect("TENANT-HTTP-DELETE", after.status == 200, f"HTTP {after.status} {after.body[:200]}",
           f"after another tenant's DELETE the first tenant's own GET answered {after.status}: "
           "the response was deleted")
