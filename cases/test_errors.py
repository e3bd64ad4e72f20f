"""Error events and connection survival: spec §3.10 and §4.10 (the WebSocket error envelope:
``type``, nested ``error.{type, code, message}``, ``status``), §4.1 item 4 (a request-scoped
error leaves the connection open and usable), §4.2 item 9 (``previous_response_id`` with
``conversation`` is rejected) and §1.4/§2.4 (malformed JSON, unknown client event types and
binary frames from the client, first or after a completed turn, and frames over the size limit;
OpenAI does not document the answer, so these are SHOULD). A binary frame may be refused by
an error event or a close frame; a connection dropped without a close frame is no refusal.

A shape of the field (the flat shape, a ``{"detail": …}`` body, a message-only error,
``status_code`` for ``status``) is named in the finding (conformance/errorshape.py); under P-open
a missing status breaks a MUST (ERR-STATUS-REQUIRED, §4.10 item 51a).

Errors are provoked without a model: a made-up ``previous_response_id``, ``background:true``
(where the profile says it is rejected), bad frames, and contradictory fields. Every error
event a case sees is checked against the envelope.
"""

from __future__ import annotations

import json

import pytest

from conformance import errorshape
from conformance.casekit import PROMPT, RAN, expect_monitor_clean, no_response_events, refusal_code
from conformance.client import HandshakeRefused, HarnessError
from conformance.schemas import P_OPEN, schemas_for

# made up, so no server can have it; store=false, so it cannot be hydrated either (§4.5 item 28)
UNKNOWN_ID = "resp_conformance_does_not_exist_0000"
UNKNOWN_CONVERSATION = "conv_conformance_0000"

# request-scoped errors that need no model: name -> (create fields, capability it needs)
PROVOCATIONS = {
    "unknown-previous-id": ({"previous_response_id": UNKNOWN_ID, "store": False}, None),
    "background": ({"background": True, "store": False}, "background_rejected"),
}


def _wait(target) -> float:
    """How long to wait for the answer to a bad frame (it should come at once)."""
    return 1.0 if target.is_embedded else min(5.0, target.turn_timeout / 4)


def _provocations() -> list:
    """The provocation names, each marked with the capability it needs (UNSUPPORTED before it runs)."""
    return [pytest.param(name, marks=pytest.mark.requires(capability,
                                                          reason=f"profile {{profile!r}} does not claim {capability}"))
            if capability else name
            for name, (_, capability) in sorted(PROVOCATIONS.items())]


def _provoke(conn, name: str):
    fields, _ = PROVOCATIONS[name]
    turn = conn.turn(input=PROMPT, **fields)
    if turn.status == "failed" and refusal_code(turn, conn.target) is not None:
        return turn     # a refusal the profile lets come as response.failed (§4.10 item 51a)
    if turn.status != "error":
        # the clause that covers this outcome is judged elsewhere (CACHE-MISS-*, CREATE-BACKGROUND-*)
        raise HarnessError(f"precondition: {name} did not produce a request-scoped error event ({turn.summary()})")
    return turn


def _errors(conn) -> list[dict]:
    return [m for m in conn.messages if m.get("type") == "error"]


def _check_envelopes(expect, conn, request_errors=()) -> None:
    """Every error event seen on ``conn`` against §3.10, a shape of the field named as what it
    is (conformance/errorshape.py); ``request_errors`` also need a status."""
    schemas = schemas_for(getattr(conn.target, "profile", None))
    p_open = schemas.variant == P_OPEN  # WebSocketErrorEvent: type optional, code a string (§5.1)
    for ev in _errors(conn):
        for clause in ("ERR-CODE-NESTED", "ERR-ENVELOPE"):
            shapes = errorshape.deviations(ev, clause)
            expect(clause, not shapes, ev, "the error event is " + "; ".join(shape.says for shape in shapes))
        err = ev["error"]
        if p_open:
            expect("ERR-ENVELOPE", isinstance(err.get("type", ""), str) and isinstance(err.get("message"), str)
                   and isinstance(err.get("code"), str), ev,
                   "error must hold code (string) and message (string); type, when present, a string (P-open)")
        else:
            expect("ERR-ENVELOPE", isinstance(err.get("type"), str) and isinstance(err.get("message"), str)
                   and (err.get("code") is None or isinstance(err.get("code"), str)), ev,
                   "error must hold type (string), code (string or null) and message (string)")
        issues = [f"{i.pointer or '(root)'}: {i.message}" for i in schemas.validate(ev)]
        expect("ERR-ENVELOPE", not issues, issues[:4], "the error event does not match the ws-error schema")
    for ev in request_errors:
        problem = errorshape.status_problem(ev)
        expect("ERR-STATUS-PRESENT", problem is None, ev, f"a request-level error event: {problem}")
    expect_monitor_clean(expect, conn, ("ERR-CODE-NESTED", "ERR-ENVELOPE"))


# --- the envelope ----------------------------------------------------------------------------

@pytest.mark.clause("ERR-ENVELOPE", "ERR-CODE-NESTED", "ERR-STATUS-PRESENT")
@pytest.mark.parametrize("provocation", _provocations())
@pytest.mark.max_requests(creates=1)
def test_error_envelope(target, connect, expect, provocation):
    conn = connect()
    turn = _provoke(conn, provocation)
    if turn.status == "failed":
        expect.info(f"{provocation} was refused as response.failed (code {refusal_code(turn, target)!r}), "
                    "which the profile allows (§4.10 item 51a): no error event to check", "ERR-ENVELOPE")
        return
    _check_envelopes(expect, conn, [turn.error])


@pytest.mark.clause("ERR-STATUS-REQUIRED")
@pytest.mark.parametrize("provocation", _provocations())
@pytest.mark.max_requests(creates=1)
def test_error_status_required(target, connect, expect, provocation):
    """P-open: every WebSocket error carries status (the WebSocketErrorEvent requires it, §4.10
    item 51a), a MUST where the OpenAI profiles make it a SHOULD (ERR-STATUS-PRESENT)."""
    conn = connect()
    _provoke(conn, provocation)
    for ev in _errors(conn):
        problem = errorshape.status_problem(ev)
        expect("ERR-STATUS-REQUIRED", problem is None, ev, f"an error event under P-open: {problem}")


# --- the connection after a request-scoped error -----------------------------------------

@pytest.mark.clause("ERR-CONNECTION-USABLE", "ERR-CONNECTION-STAYS-OPEN", "ERR-ENVELOPE", "ERR-CODE-NESTED")
@pytest.mark.parametrize("provocation", _provocations())
@pytest.mark.max_requests(creates=2)
def test_connection_usable_after_error(target, connect, expect, provocation):
    conn = connect()
    failed = _provoke(conn, provocation)
    follow = conn.turn(input=PROMPT, store=False)
    expect("ERR-CONNECTION-STAYS-OPEN", follow.status != "closed", [failed, follow],
           f"the server closed the connection after the {failed.error_code!r} error "
           f"(close code {conn.close_code})")
    expect("ERR-CONNECTION-USABLE", follow.status in RAN, [failed, follow],
           f"after a {failed.error_code!r} error the next turn on the same connection ended {follow.status}")
    _check_envelopes(expect, conn)


# --- bad client frames (§1.4, §2.4: undocumented by OpenAI, hence SHOULD) ------------------

def _bad_frame_then_turn(conn, target, frame):
    """Send ``frame``, collect the answer (an error, ideally), then run a normal turn."""
    conn.send(frame)
    # wait for the error before the next create, so that it cannot be mistaken for its answer
    answer = conn.recv_until(lambda m: m.get("type") == "error", timeout=_wait(target))
    follow = conn.turn(input=PROMPT, store=False)
    return answer, follow


def _check_bad_frame(expect, clause, answer, follow, what: str) -> None:
    errors = [m for m in answer if m.get("type") == "error"]
    expect(clause, no_response_events(answer), [m.get("type") for m in answer],
           f"{what} started a response")
    expect(clause, errors, [m.get("type") for m in answer], f"{what} got no error event")
    status = errors[0].get("status") if errors else None
    expect(clause, status is None or (type(status) is int and 400 <= status <= 499), errors[:1],
           f"the error for {what} carries status {status!r}, expected a 4xx (400)")
    expect(clause, follow.status in RAN, follow, f"after {what} the next turn on the connection ended {follow.status}")


MALFORMED = {
    "not-json": '{"type": "response.create", "input": ',
    # a create wrapped in an array: a lax parser would run it
    "json-array": "[" + json.dumps({"type": "response.create", "input": PROMPT, "store": False}) + "]",
}


@pytest.mark.clause("CLIENT-MALFORMED-JSON", "ERR-ENVELOPE", "ERR-CODE-NESTED")
@pytest.mark.parametrize("kind", sorted(MALFORMED))
@pytest.mark.max_requests(creates=1)
def test_malformed_json_frame(target, connect, expect, kind):
    conn = connect()
    answer, follow = _bad_frame_then_turn(conn, target, MALFORMED[kind])
    _check_bad_frame(expect, "CLIENT-MALFORMED-JSON", answer, follow, f"a {kind} text frame")
    _check_envelopes(expect, conn)


@pytest.mark.clause("CLIENT-UNKNOWN-EVENT", "ERR-ENVELOPE", "ERR-CODE-NESTED")
@pytest.mark.max_requests(creates=1)
def test_unknown_client_event(target, connect, expect):
    # clearly not an event of any API (response.cancel is accepted by some gateways, §2.4)
    conn = connect()
    event = json.dumps({"type": "conformance.unknown_event", "input": PROMPT})
    answer, follow = _bad_frame_then_turn(conn, target, event)
    _check_bad_frame(expect, "CLIENT-UNKNOWN-EVENT", answer, follow, "a client event of unknown type")
    _check_envelopes(expect, conn)


def _closed_cleanly(conn) -> bool:
    """The server closed with a close frame: a connection dropped without one (1006) is no clean
    refusal (issue 17 item 9)."""
    return conn.closed and conn.close_code not in (None, 1006)


def _dropped(conn) -> str:
    return (f" (the connection was dropped without a close frame, code {conn.close_code})"
            if conn.closed and not _closed_cleanly(conn) else "")


@pytest.mark.clause("CLIENT-BINARY-FRAME", "ERR-ENVELOPE", "ERR-CODE-NESTED")
@pytest.mark.max_requests(creates=1)
def test_binary_frame_refused(target, connect, expect):
    conn = connect()
    # a valid create, but in a binary frame: it must not run
    conn.send(json.dumps({"type": "response.create", "model": target.model, "input": PROMPT, "store": False,
                          **({"max_output_tokens": target.max_output_tokens} if target.max_output_tokens else {})}
                         ).encode())
    answer = conn.recv_until(lambda m: m.get("type") == "error", timeout=_wait(target))
    answer += [o.message for o in conn.recv_frames(0.2 if target.is_embedded else 1.0) if o.message is not None]
    expect("CLIENT-BINARY-FRAME", no_response_events(answer), [m.get("type") for m in answer],
           "a binary frame was processed as a turn")
    expect("CLIENT-BINARY-FRAME", any(m.get("type") == "error" for m in answer) or _closed_cleanly(conn),
           [m.get("type") for m in answer], "a binary frame got neither an error event nor a close"
           + _dropped(conn))
    _check_envelopes(expect, conn)
    # the server stays up: a new connection runs a turn
    fresh = connect()
    turn = fresh.turn(input=PROMPT, store=False)
    expect("CLIENT-BINARY-FRAME", turn.status in RAN, turn, "after a binary frame a new connection could not run a turn")


# --- bad client frames after a completed turn (§1.4, §2.4) ---------------------------------

def _mid_connection_answer(conn, target, kind: str) -> list[dict]:
    """Send the bad frame of ``kind`` and collect its answer (an error, or a close)."""
    if kind == "binary":
        conn.send(json.dumps({"type": "response.create", "model": target.model, "input": PROMPT,
                              "store": False}).encode())
    elif kind == "unknown-event":
        conn.send(json.dumps({"type": "conformance.unknown_event", "input": PROMPT}))
    else:
        conn.send(MALFORMED["not-json"])
    answer = conn.recv_until(lambda m: m.get("type") == "error", timeout=_wait(target))
    if kind == "binary":    # a binary create that runs shows itself after the error wait
        answer += [o.message for o in conn.recv_frames(0.2 if target.is_embedded else 1.0) if o.message is not None]
    return answer


MID_CONNECTION = {"malformed-json": "CLIENT-MALFORMED-JSON", "unknown-event": "CLIENT-UNKNOWN-EVENT",
                  "binary": "CLIENT-BINARY-FRAME"}


@pytest.mark.max_requests(creates=3)     # 2, and the binary frame's create if a server runs it
@pytest.mark.clause("CLIENT-MALFORMED-JSON", "CLIENT-UNKNOWN-EVENT", "CLIENT-BINARY-FRAME", "ERR-ENVELOPE",
                    "ERR-CODE-NESTED")
@pytest.mark.parametrize("kind", sorted(MID_CONNECTION))
def test_bad_frame_after_completed_turn(target, connect, expect, kind):
    """Not only the first frame: after a completed turn a bad frame still gets its answer (an
    error event; a close also answers a binary frame), and a later valid turn still works."""
    clause = MID_CONNECTION[kind]
    conn = connect()
    first = conn.turn(input=PROMPT, store=False)
    if first.status not in RAN:
        raise HarnessError(f"precondition: the first turn did not run ({first.summary()})")
    answer = _mid_connection_answer(conn, target, kind)
    what = f"a {kind} frame after a completed turn"
    expect(clause, no_response_events(answer), [m.get("type") for m in answer], f"{what} started a response")
    closed = kind == "binary" and conn.closed
    expect(clause, (closed and _closed_cleanly(conn)) or any(m.get("type") == "error" for m in answer),
           [m.get("type") for m in answer],
           f"{what} got " + ("neither an error event nor a close" + _dropped(conn) if kind == "binary"
                             else "no error event"))
    follow = (connect() if closed else conn).turn(input=PROMPT, store=False)
    expect(clause, follow.status in RAN, follow,
           f"after {what} the next valid turn ({'on a new connection' if closed else 'on the connection'}) "
           f"ended {follow.status}")
    _check_envelopes(expect, conn)


# --- oversize client frames (§1.4, §1.5: no limit documented, hence SHOULD) ------------------

OVERSIZE_UNKNOWN_BYTES = 32 * 2**20     # sent when the profile does not know the limit


def _oversize_frame(size: int) -> str:
    """A text frame of ``size`` bytes that needs no model whatever the server makes of it."""
    head, tail = '{"type": "conformance.oversize", "padding": "', '"}'
    return head + "x" * max(0, size - len(head) - len(tail)) + tail


def _oversize_outcome(conn, answer: list[dict], during_send: bool) -> tuple[bool, str]:
    """(answered as the clause asks, what happened in words)."""
    errors = [m for m in answer if m.get("type") == "error"]
    if errors:
        status = errors[0].get("status")
        ok = status is None or (type(status) is int and 400 <= status <= 499)
        return ok, f"an error event (status {status!r}, code {(errors[0].get('error') or {}).get('code')!r})"
    if conn.closed and not conn.closed_by_peer:
        return False, f"no answer: the server stopped reading ({conn.close_detail})"
    if conn.closed and during_send and conn.close_code != 1009:
        # the server closed while the frame was still arriving: its close frame (1009) can be
        # lost in the TCP reset that unread data causes, so the client sees 1006. Prompt, not silent.
        return True, f"a close while the frame was still being sent (close code {conn.close_code})"
    if conn.closed:
        return conn.close_code == 1009, f"a close with code {conn.close_code}"
    return False, "no answer at all (neither a close nor an error event)"


@pytest.mark.max_requests(creates=0)     # no model call: one oversize frame, two connections
@pytest.mark.clause("CLIENT-OVERSIZE-FRAME")
def test_oversize_frame(target, connect, expect, verdict):
    # no model call: the frame is an unknown event padded past the limit
    limit = target.profile.max_frame_bytes
    size = limit + 1024 if limit else OVERSIZE_UNKNOWN_BYTES
    conn = connect()
    conn.send(_oversize_frame(size), timeout=max(10.0, target.turn_timeout))
    during_send = conn.closed
    answer = conn.recv_until(lambda m: m.get("type") == "error", timeout=_wait(target))
    ok, outcome = _oversize_outcome(conn, answer, during_send)
    try:
        connect()
        up = True
    except (HarnessError, HandshakeRefused) as exc:
        up, outcome = False, f"{outcome}; then a new connection failed: {exc}"
    if not limit:
        verdict.info(f"not checked: the profile's max_frame_bytes = 0 (the limit is unknown, so no answer is "
                     f"wrong); a {size}-byte client frame got {outcome}; a new connection "
                     f"{'opened' if up else 'did not open'}", "CLIENT-OVERSIZE-FRAME")
        return
    expect("CLIENT-OVERSIZE-FRAME", ok and up, [m.get("type") for m in answer],
           f"a {size}-byte client frame (over the profile's max_frame_bytes {limit}) got {outcome}; "
           "expected a 1009 close or a 4xx error event, and the server up for new connections")


# --- contradictory fields --------------------------------------------------------------------

@pytest.mark.clause("CREATE-PREVIOUS-AND-CONVERSATION", "STREAM-REJECTED-AS-ERROR", "ERR-ENVELOPE",
                    "ERR-CODE-NESTED", "ERR-STATUS-PRESENT")
@pytest.mark.max_requests(creates=2)
def test_previous_response_and_conversation_rejected(connect, expect):
    conn = connect()
    first = conn.turn(input=PROMPT, store=False)
    if first.status not in RAN:
        raise HarnessError(f"precondition: the first turn did not run ({first.summary()})")
    # a real previous id, so the pair is the fault (the made-up conversation may be one too)
    turn = conn.turn(input=PROMPT, store=False, previous_response_id=first.response_id,
                     conversation=UNKNOWN_CONVERSATION)
    expect("CREATE-PREVIOUS-AND-CONVERSATION", turn.status == "error" and no_response_events(turn.events), turn,
           "previous_response_id together with conversation was not rejected with an error event")
    expect("STREAM-REJECTED-AS-ERROR", turn.event_types == ["error"], turn,
           "the rejection should be exactly one error event and nothing else")
    _check_envelopes(expect, conn, [turn.error])
