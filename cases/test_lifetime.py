"""Connection lifetime and reconnect: spec §4.6 (items 37-38) and §1.5.

At its lifetime limit a server reports ``websocket_connection_limit_reached`` (status 400,
``invalid_request_error``) either unprompted right before it closes (xAI) or in reply to the
next ``response.create`` on the aged socket (field reports of OpenAI); both are accepted
(§4.6 item 38). Against a target with test controls the limit is shortened with the
``X-Conformance-Lifetime`` handshake header; otherwise the real limit (the profile's
``lifetime_seconds``: 60 minutes for OpenAI, 25 for xAI) is waited out by a case that runs
only with ``--run-slow``.

An idle socket (§4.6 item 38b): after an idle period between turns the next turn runs, or the
server has reported a well-formed ``websocket_connection_limit_reached`` (unsolicited on the idle
socket, judged like the reply form, or as the reply) and closes; a silent close fails. The
short idle runs always; the long one (``--idle-seconds``, past proxy idle timeouts) with
``--run-slow``.

After a close the client starts a new chain on a new socket with the full context as input
(§4.6 item 37); a nonce planted in the earlier turns proves the new chain sees all of it.
"""

from __future__ import annotations

import time

import pytest

from conformance.casekit import PROMPT, RAN
from conformance.client import HarnessError
from conformance.probes import PROBE_PROMPT, probe_fields, recorded_nonces, seen

SHORT_LIFETIME_S = 1.0        # X-Conformance-Lifetime: keeps the core suite fast
SHORT_MARGIN_S = 0.5          # how long past the limit the short case waits for the server
EARLY_FRACTION = 0.9          # a close before this share of the lifetime is not the limit
SHORT_IDLE_S = 2.0            # the idle period of the always-run idle case
CLOSE_WAIT_S = 2.0            # how long a socket may take to close after the limit error

def _error_body(event: dict) -> dict:
    inner = event.get("error")
    return inner if isinstance(inner, dict) else {}


def _limit_error_problems(target, event: dict) -> list[str]:
    """What is wrong with a ``websocket_connection_limit_reached`` envelope (§3.10)."""
    body = _error_body(event)
    want = target.profile.limit_error_code
    problems = []
    if body.get("code") != want:
        problems.append(f"error.code is {body.get('code')!r}, expected {want!r}")
    if event.get("status") != 400:
        problems.append(f"status is {event.get('status')!r}, expected 400")
    if body.get("type") not in target.profile.invalid_request_types:
        problems.append(f"error.type is {body.get('type')!r}, expected one of {list(target.profile.invalid_request_types)}")
    return problems


def _first_turn(conn, what: str):
    turn = conn.turn(input=PROMPT, store=False)
    if turn.status not in RAN:
        raise HarnessError(f"cannot judge: the turn {what} did not run ({turn.summary()})")
    return turn


def _judge_expiry(target, conn, expect, lifetime: float, margin: float, after_limit_timeout: float) -> None:
    """Idle until the limit plus ``margin``, then judge both lifetime clauses."""
    # the server's clock starts inside our handshake: "too late" counts from its end (a slow
    # handshake, e.g. through a gateway on a loaded machine, must not shorten the wait), "too
    # early" from its start
    since_handshake = time.monotonic() - conn.handshake_done
    unprompted = conn.recv_until(lambda m: m.get("type") == "error",
                                 timeout=max(0.0, lifetime + margin - since_handshake))
    age = time.monotonic() - conn.t0
    started = [m for m in unprompted if m.get("type") == "response.created"]
    expect("LIFETIME-NO-TURN-AFTER-LIMIT", not started, started[:1],
           "a response started on an idle connection although no response.create was sent")
    errors = [m for m in unprompted if m.get("type") == "error"]

    if errors:   # form 1: the error arrives on its own (then the server closes)
        problems = _limit_error_problems(target, errors[0])
        expect("LIFETIME-LIMIT-ERROR", not problems, errors[0],
               "the error sent at the lifetime limit is not websocket_connection_limit_reached as "
               "specified: " + "; ".join(problems))
        # the limit is the one the profile states ([connection] lifetime_seconds): far earlier
        # is not "at the limit", and a client relying on the stated lifetime loses its socket
        expect("LIFETIME-LIMIT-ERROR", age >= lifetime * EARLY_FRACTION, errors[0],
               f"the lifetime limit was reported after {age:.1f}s; the lifetime is {lifetime:g}s "
               f"(profile [connection] lifetime_seconds, or the shortened test lifetime)")
        if conn.closed:
            return
        # still open: whatever comes next, no turn may start on this socket
        late = conn.turn(input=PROMPT, store=False, timeout=after_limit_timeout)
        expect("LIFETIME-NO-TURN-AFTER-LIMIT", "response.created" not in late.event_types, late,
               "after reporting the lifetime limit the server still started a response")
        return

    if conn.closed:
        if age < lifetime * EARLY_FRACTION:
            raise HarnessError(f"cannot judge: the connection closed after {age:.1f}s, before the "
                               f"{lifetime:g}s lifetime limit (idle timeout or network drop); "
                               f"close code {conn.close_code} {conn.close_detail}")
        expect("LIFETIME-LIMIT-ERROR", False, f"close code {conn.close_code} after {age:.1f}s",
               "the connection was closed at its lifetime limit without a "
               "websocket_connection_limit_reached error event")

    # form 2: the socket is still open; the next create must be answered with the limit error
    turn = conn.turn(input=PROMPT, store=False, timeout=after_limit_timeout)
    if turn.status == "error":
        problems = _limit_error_problems(target, turn.error or {})
        expect("LIFETIME-LIMIT-ERROR", not problems, turn,
               "the create sent past the lifetime limit was answered with an error that is not "
               "websocket_connection_limit_reached as specified: " + "; ".join(problems))
    else:
        expect("LIFETIME-LIMIT-ERROR", False, turn,
               f"{time.monotonic() - conn.handshake_done:.1f}s after the handshake of a connection with a "
               f"{lifetime:g}s lifetime, no "
               "websocket_connection_limit_reached was sent, neither on its own nor in reply to a create")
    expect("LIFETIME-NO-TURN-AFTER-LIMIT", "response.created" not in turn.event_types, turn,
           "a response started on a connection past its lifetime limit")


@pytest.mark.clause("LIFETIME-LIMIT-ERROR", "LIFETIME-NO-TURN-AFTER-LIMIT")
@pytest.mark.max_requests(creates=2)
def test_limit_error_at_shortened_lifetime(target, connect, expect):
    if not target.has("test_controls"):
        pytest.skip("needs test controls (X-Conformance-Lifetime); "
                    "test_limit_error_at_real_lifetime covers real targets with --run-slow")
    conn = connect(headers={"X-Conformance-Lifetime": str(SHORT_LIFETIME_S)})
    _first_turn(conn, f"inside the {SHORT_LIFETIME_S:g}s lifetime")
    _judge_expiry(target, conn, expect, SHORT_LIFETIME_S, SHORT_MARGIN_S, after_limit_timeout=1.0)


@pytest.mark.slow
@pytest.mark.clause("LIFETIME-LIMIT-ERROR", "LIFETIME-NO-TURN-AFTER-LIMIT")
@pytest.mark.max_requests(creates=2)
def test_limit_error_at_real_lifetime(target, connect, expect):
    if target.has("test_controls"):
        pytest.skip("the target honours X-Conformance-Lifetime: test_limit_error_at_shortened_lifetime covers it")
    lifetime = target.profile.lifetime_seconds
    # idle, no application traffic; the WebSocket library still answers/sends protocol pings
    margin = min(120.0, max(10.0, 0.05 * lifetime))
    conn = connect()
    _first_turn(conn, "at the start of the connection")
    _judge_expiry(target, conn, expect, lifetime, margin, after_limit_timeout=target.turn_timeout)


def _judge_idle(target, conn, expect, idle: float) -> None:
    """Idle ``idle`` seconds between turns, then judge IDLE-TURN-OR-LIMIT."""
    clause = "IDLE-TURN-OR-LIMIT"
    _first_turn(conn, "before the idle period")
    pushed = conn.recv_until(lambda m: m.get("type") == "error", timeout=idle)
    started = [m for m in pushed if m.get("type") == "response.created"]
    expect(clause, not started, started[:1], "a response started on an idle connection although no "
                                              "response.create was sent")
    errors = [m for m in pushed if m.get("type") == "error"]
    if errors:   # unsolicited on the idle socket: judged like the reply form, then the close
        problems = _limit_error_problems(target, errors[0])
        expect(clause, not problems, errors[0],
               "the error pushed unsolicited on the idle socket is not websocket_connection_limit_reached "
               "as specified: " + "; ".join(problems))
        conn.recv_until(lambda m: False, timeout=CLOSE_WAIT_S)
        if not conn.closed:
            late = conn.turn(input=PROMPT, store=False, timeout=CLOSE_WAIT_S)
            expect(clause, "response.created" not in late.event_types, late,
                   "after reporting the connection limit on the idle socket the server still started a response")
        return
    if conn.closed:
        expect(clause, False, f"close code {conn.close_code} {conn.close_detail}",
               f"the server closed the socket after {idle:g}s idle without a websocket_connection_limit_reached "
               "error event: a client cannot tell that from a network drop")
        return
    turn = conn.turn(input=PROMPT, store=False)
    if turn.status == "error":
        problems = _limit_error_problems(target, turn.error or {})
        expect(clause, not problems, turn,
               f"the turn after {idle:g}s idle was refused with an error that is not "
               "websocket_connection_limit_reached as specified: " + "; ".join(problems))
        return
    expect(clause, turn.status in RAN, turn,
           f"the turn after {idle:g}s idle did not run ({turn.summary()}) and no connection-limit error came")


@pytest.mark.clause("IDLE-TURN-OR-LIMIT")
@pytest.mark.max_requests(creates=2)
def test_turn_after_short_idle(target, connect, expect):
    _judge_idle(target, connect(), expect, SHORT_IDLE_S)


@pytest.mark.slow
@pytest.mark.clause("IDLE-TURN-OR-LIMIT")
@pytest.mark.max_requests(creates=2)
def test_turn_after_long_idle(target, connect, expect, conformance_session):
    # idle, no application traffic; the WebSocket library still answers/sends protocol pings
    _judge_idle(target, connect(), expect, conformance_session.settings.idle_seconds)


def _as_input(turn) -> list[dict]:
    """The assistant messages of a turn as plain input messages (ids and statuses dropped,
    so they are valid input with store=false)."""
    out = []
    for item in turn.output:
        if isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant":
            text = "".join(str(p.get("text", "")) for p in item.get("content") or []
                           if isinstance(p, dict) and p.get("type") == "output_text")
            if text:
                out.append({"role": "assistant", "content": text})
    return out


@pytest.mark.clause("RECONNECT-FULL-CONTEXT")
@pytest.mark.max_requests(creates=3)
def test_reconnect_with_full_context(target, connect, expect, nonce_factory):
    early, middle = nonce_factory(), nonce_factory()
    conn = connect()
    said1 = [{"role": "user", "content": f"The first code is {early}. {PROMPT}"}]
    t1 = conn.turn(input=said1, store=False)
    said2 = [{"role": "user", "content": f"The second code is {middle}. {PROMPT}"}]
    t2 = conn.turn(input=said2, previous_response_id=t1.response_id, store=False)
    if t1.status not in RAN or t2.status not in RAN:
        raise HarnessError(f"cannot judge: the conversation before the reconnect did not run "
                           f"({t1.summary()} / {t2.summary()})")
    conn.close()

    # new socket, new chain: previous_response_id omitted, the whole conversation re-sent
    history = said1 + _as_input(t1) + said2 + _as_input(t2)
    again = connect()
    probe = again.turn(**probe_fields(target, input=history + [{"role": "user", "content": PROBE_PROMPT}],
                                      store=False))
    expect("RECONNECT-FULL-CONTEXT", probe.status == "completed", probe,
           "a new chain with the full context as input, on a new connection, did not complete")
    recorded = recorded_nonces(probe)
    missing = [n for n in (early, middle) if not seen(recorded, n)]
    expect("RECONNECT-FULL-CONTEXT", not missing, f"recorded {recorded}",
           f"the new chain did not see the re-sent context: {missing} not recorded")
