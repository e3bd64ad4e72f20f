"""Sequential processing on one connection: spec §4.4 item 19 (P-legacy: at most one response
in flight; a response.create sent meanwhile is queued and run in order, or — where the
profile says so — rejected with an error event).

Which response answers which create is told by a marker the create puts in ``metadata``
(the Response object echoes it), never by generated text. A case can only judge when its
creates really reach the server while the first response is still streaming: all creates go
out back to back, the first asking for a long answer (``casekit.long_turn``), and against a
target with test controls the connection is opened with ``X-Conformance-Turn-Delay-Ms`` so
every turn takes a while. When the timeline does not prove the overlap, the case says so
(ERROR, with how long the first response ran and how long it had to) instead of passing
vacuously.

Two more matters of one create per request: an abandoned request (the client read only its
``response.created``) ends before the next create's response starts and does not leak into
it (§4.4 item 19a), and turns with different input are not answered with the same response
(§4.5 item 35b). Both judge what a response answers with the nonce probe (conformance/probes.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest

from conformance.casekit import IN_FLIGHT_MARGIN_S, RAN, long_turn, paced, too_fast
from conformance.client import HarnessError
from conformance.monitor import TERMINAL_TYPES
from conformance.probes import PROBE_PROMPT, probe_fields, recorded_nonces, seen

ORDER_KEY = "conformance_order"
TURN_DELAY_MS = 100           # long enough for the later creates to land mid-stream on loopback
ABANDON_DELAY_MS = 400        # the abandoned response must outlast a created round trip on a loaded machine


def _prompt(n: int, of: int) -> str:
    return f"This is request {n} of {of}. Reply with the single word: ok"


def _open(target, connect):
    return paced(target, connect, TURN_DELAY_MS)


@dataclass
class _Resp:
    rid: str
    order: str | None
    created_at: int                  # index among received messages
    created_t: float
    terminal_at: int | None = None
    terminal_t: float | None = None
    terminal_type: str | None = None


@dataclass
class _Timeline:
    sent_t: list[float] = field(default_factory=list)      # each response.create, in order
    responses: list[_Resp] = field(default_factory=list)   # in order of response.created
    errors: list[tuple[int, float, dict]] = field(default_factory=list)

    def by_order(self, order: str) -> list[_Resp]:
        return [r for r in self.responses if r.order == order]

    def describe(self) -> str:
        rs = ", ".join(f"{r.rid}[{ORDER_KEY}={r.order}] created@{r.created_at} "
                       f"{(r.terminal_type or 'no terminal').split('.')[-1]}@{r.terminal_at}"
                       for r in self.responses)
        errs = ", ".join(f"error@{i} code={_code(e)!r}" for i, _, e in self.errors)
        return "; ".join(x for x in (rs, errs) if x) or "no responses, no errors"


def _code(event: dict):
    inner = event.get("error")
    return inner.get("code") if isinstance(inner, dict) else None


def _timeline(conn) -> _Timeline:
    """Read the connection's transcript back: which response (by id and echoed marker) was
    created and ended where, independently of the monitor's request matching."""
    tl = _Timeline()
    by_id: dict[str, _Resp] = {}
    index = 0
    for t, direction, text in conn.transcript:
        if direction not in ("sent", "received"):
            continue
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if direction == "sent":
            if isinstance(msg, dict) and msg.get("type") == "response.create":
                tl.sent_t.append(t)
            continue
        index += 1
        if not isinstance(msg, dict):
            continue
        typ = msg.get("type")
        resp = msg.get("response") if isinstance(msg.get("response"), dict) else {}
        rid = resp.get("id")
        if typ == "response.created" and isinstance(rid, str) and rid not in by_id:
            meta = resp.get("metadata") if isinstance(resp.get("metadata"), dict) else {}
            r = _Resp(rid, meta.get(ORDER_KEY), index, t)
            by_id[rid] = r
            tl.responses.append(r)
        elif typ in TERMINAL_TYPES and isinstance(rid, str) and rid in by_id:
            r = by_id[rid]
            if r.terminal_at is None:
                r.terminal_at, r.terminal_t, r.terminal_type = index, t, typ
            if r.order is None:   # fall back to the terminal's echo
                meta = resp.get("metadata") if isinstance(resp.get("metadata"), dict) else {}
                r.order = meta.get(ORDER_KEY)
        elif typ == "error":
            tl.errors.append((index, t, msg))
    return tl


def _drain_until(conn, done: Callable[[_Timeline], bool], timeout: float) -> _Timeline:
    """Read frames until ``done(timeline)`` or the deadline; matching is by id and marker, so
    an unusual rejection (e.g. one carrying a sequence_number) cannot stall the wait."""
    deadline = time.monotonic() + timeout
    tl = _timeline(conn)
    # ... and by the monitor: a terminal event ends its response whatever id it names
    while not done(tl) and conn.ended_requests() < len(conn.monitor.requests) and not conn.closed \
            and time.monotonic() < deadline:
        conn.recv_until(lambda m: True, timeout=deadline - time.monotonic())
        tl = _timeline(conn)
    return tl


def _answered(tl: _Timeline) -> int:
    return sum(1 for r in tl.responses if r.terminal_type) + len(tl.errors)


def _overlapping(tl: _Timeline) -> tuple[_Resp, _Resp] | None:
    """The first response created before its predecessor's terminal event, if any."""
    for prev, nxt in zip(tl.responses, tl.responses[1:]):
        if prev.terminal_at is None or prev.terminal_at > nxt.created_at:
            return prev, nxt
    return None


def _in_flight(tl: _Timeline, first: _Resp) -> tuple[bool, float | None, float]:
    """Did the last create reach the server before the first response ended? (proved, how
    long after the last send its terminal event came, how long after it had to come).

    The create-to-created round trip bounds twice the one-way latency, so a terminal event
    received later than ``last send + that round trip`` was sent by the server after the last
    create had arrived (frames are read continuously from right after the sends)."""
    if len(tl.sent_t) < 2:
        return False, None, IN_FLIGHT_MARGIN_S
    needed = first.created_t - tl.sent_t[0] + IN_FLIGHT_MARGIN_S
    if first.terminal_t is None:
        return False, None, needed
    ran = first.terminal_t - tl.sent_t[-1]
    return ran > needed, ran, needed


def _cannot_judge(target, tl: _Timeline, first: _Resp) -> HarnessError:
    _, ran, needed = _in_flight(tl, first)
    return HarnessError(too_fast(target, f"{len(tl.sent_t)} response.create frames were sent back to back",
                                 ran, needed) + ". Timeline: " + tl.describe())


@pytest.mark.clause("QUEUE-FIFO", "QUEUE-ONE-IN-FLIGHT")
@pytest.mark.max_requests(creates=3)
def test_queued_creates_run_in_order(target, connect, expect):
    conn = _open(target, connect)
    count = 3
    for n in range(1, count + 1):
        first = long_turn(target) if n == 1 else {"input": _prompt(n, count)}
        conn.create(**first, metadata={ORDER_KEY: str(n)}, store=False)
    tl = _drain_until(conn, lambda tl: _overlapping(tl) is not None or _answered(tl) >= count,
                      target.turn_timeout)

    expect("QUEUE-FIFO", not tl.errors, tl.describe(),
           "a response.create sent while a response was in flight was answered with an error "
           "instead of being queued")
    # no interleaving: response k+1 is created only after response k's terminal event
    pair = _overlapping(tl)
    if pair:
        prev, nxt = pair
        ended = f"came at frame {prev.terminal_at}" if prev.terminal_at is not None else "had not come"
        expect("QUEUE-ONE-IN-FLIGHT", False, tl.describe(),
               f"response {nxt.rid} was created while {prev.rid} was still in flight (its terminal "
               f"event {ended}; the next response.created came at frame {nxt.created_at})")
    expect("QUEUE-FIFO", len(tl.responses) == count and _answered(tl) == count,
           tl.describe() + (" (socket closed)" if conn.closed else ""),
           f"{count} creates were sent, {len(tl.responses)} responses started and {_answered(tl)} ended "
           f"within {target.turn_timeout:g}s: a queued response.create never got its response")
    if any(r.order is None for r in tl.responses):
        raise HarnessError("the target does not echo metadata in the Response object, so the responses "
                           "cannot be matched to their creates model-free: " + tl.describe())

    orders = [r.order for r in tl.responses]
    expected = [str(n) for n in range(1, count + 1)]
    expect("QUEUE-FIFO", orders == expected, tl.describe(),
           f"the responses answered the creates in the order {orders}, expected {expected} "
           f"(one response per create, in the order sent)")

    if not _in_flight(tl, tl.responses[0])[0]:
        raise _cannot_judge(target, tl, tl.responses[0])


@pytest.mark.clause("QUEUE-REJECT-CODE", "QUEUE-ONE-IN-FLIGHT")
@pytest.mark.max_requests(creates=2)
def test_busy_create_rejected(target, connect, expect):
    code = target.profile.busy_error_code
    conn = _open(target, connect)
    conn.create(**long_turn(target), metadata={ORDER_KEY: "1"}, store=False)
    conn.create(input=_prompt(2, 2), metadata={ORDER_KEY: "2"}, store=False)

    def answered(tl: _Timeline) -> bool:
        first_done = any(r.terminal_type for r in tl.by_order("1"))
        return first_done and (bool(tl.errors) or any(r.terminal_type for r in tl.by_order("2")))

    tl = _drain_until(conn, answered, target.turn_timeout)

    ran = tl.by_order("1")
    if not ran:
        raise HarnessError("the first response.create did not start a response (nothing to be busy "
                           "with): " + tl.describe())
    first_resp = ran[0]
    queued = tl.by_order("2")
    if queued and not tl.errors and not _in_flight(tl, first_resp)[0]:
        raise _cannot_judge(target, tl, first_resp)
    if queued:   # not rejected; at least it must not have run alongside the first
        expect("QUEUE-ONE-IN-FLIGHT",
               first_resp.terminal_at is not None and first_resp.terminal_at < queued[0].created_at,
               tl.describe(), f"response {queued[0].rid} was created while {first_resp.rid} was still in flight")
    expect("QUEUE-REJECT-CODE", not queued, tl.describe(),
           "the profile says a create sent while a response is in flight is rejected, "
           "but it was queued and run")
    expect("QUEUE-REJECT-CODE", len(tl.errors) == 1, tl.describe(),
           f"expected exactly one error event (the rejection), got {len(tl.errors)}")
    got = _code(tl.errors[0][2])
    if code:
        expect("QUEUE-REJECT-CODE", got == code, tl.errors[0][2],
               f"the busy rejection has error.code {got!r}, the profile says {code!r}")
    expect("QUEUE-REJECT-CODE", first_resp.terminal_type in ("response.completed", "response.incomplete"),
           tl.describe(), "the in-flight response did not finish normally after the rejection")

    after = conn.turn(input=_prompt(3, 3), store=False)
    expect("QUEUE-REJECT-CODE", after.status in ("completed", "incomplete"), after,
           "after the busy rejection the connection did not run the next turn")


def _created_ids(conn) -> list:
    """The response ids of every ``response.created`` the socket received, in order."""
    ids = []
    for _, direction, text in conn.transcript:
        if direction != "received":
            continue
        try:
            msg = json.loads(text)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "response.created" and isinstance(msg.get("response"), dict):
            ids.append(msg["response"].get("id"))
    return ids


def _coded(code: str, text: str) -> str:
    return f"The code is {code}. {text}"


@pytest.mark.clause("QUEUE-ABANDONED-NO-LEAK")
@pytest.mark.max_requests(creates=2)
def test_abandoned_request_does_not_leak(target, connect, expect, nonce_factory):
    abandoned, fresh = nonce_factory(), nonce_factory()
    # the embedded server honours the delay whatever profile it plays
    conn = (connect(headers={"X-Conformance-Turn-Delay-Ms": str(ABANDON_DELAY_MS)}) if target.is_embedded
            else paced(target, connect, ABANDON_DELAY_MS))
    first_fields = long_turn(target)
    first_fields["input"] = _coded(abandoned, first_fields["input"])
    conn.create(**first_fields, metadata={ORDER_KEY: "1"}, store=False)
    # the client abandons the first request: it reads up to its response.created, no further
    conn.recv_until(lambda m: m.get("type") in ("response.created", "error"), timeout=target.turn_timeout)
    second = conn.create(**probe_fields(target, input=_coded(fresh, PROBE_PROMPT)),
                         metadata={ORDER_KEY: "2"}, store=False)
    turn = conn.wait(second)
    tl = _timeline(conn)

    started = tl.responses
    if not started:
        raise HarnessError("the first response.create did not start a response (nothing to abandon): "
                           + tl.describe())
    if any(r.order is None for r in started):
        raise HarnessError("the target does not echo metadata in the Response object, so the responses "
                           "cannot be matched to their creates model-free: " + tl.describe())
    first = tl.by_order("1")[0] if tl.by_order("1") else None
    if first is None:
        raise HarnessError("the response of the first create was not seen: " + tl.describe())
    later = tl.by_order("2")
    if not later:
        # rejected as busy: the profile's busy policy and QUEUE-REJECT-CODE judge the rejection
        if target.profile.busy_policy == "queue":
            raise HarnessError(f"cannot judge: the second create got no response ({turn.summary()}); "
                               "QUEUE-FIFO judges a queue-policy target that rejects it")
        expect("QUEUE-ABANDONED-NO-LEAK", first.terminal_at is not None, tl.describe(),
               "the abandoned response never ended after the next create was rejected")
        return
    nxt = later[0]
    ended = f"came at frame {first.terminal_at}" if first.terminal_at is not None else "never came"
    expect("QUEUE-ABANDONED-NO-LEAK", first.terminal_at is not None and first.terminal_at < nxt.created_at,
           tl.describe(), f"the abandoned response {first.rid} did not end before the next response "
                          f"{nxt.rid} started (its terminal event {ended}; the next response.created came "
                          f"at frame {nxt.created_at})")
    if turn.status in RAN:
        recorded = recorded_nonces(turn)
        expect("QUEUE-ABANDONED-NO-LEAK", not seen(recorded, abandoned), f"recorded {recorded}",
               f"the response to the second create names the code {abandoned} that only the abandoned "
               "request carried: the abandoned request leaked into the next response")
        expect("QUEUE-ABANDONED-NO-LEAK", seen(recorded, fresh), f"recorded {recorded}",
               f"the response to the second create does not name its own code {fresh}: it does not "
               "answer the second request")
    else:
        raise HarnessError(f"cannot judge: the second create did not run ({turn.summary()})")
    if not _in_flight(tl, first)[0]:
        raise _cannot_judge(target, tl, first)


@pytest.mark.clause("REQUEST-NO-REPLAY")
@pytest.mark.max_requests(creates=2)
def test_turns_are_not_replayed(target, connect, expect, nonce_factory):
    conn = connect()
    codes = (nonce_factory(), nonce_factory())
    turns = [conn.turn(**probe_fields(target, input=_coded(code, PROBE_PROMPT), store=False)) for code in codes]
    # a replayed response reuses the first id, so the monitor does not take it for the second's
    created = _created_ids(conn)
    repeated = sorted({rid for rid in created if created.count(rid) > 1})
    expect("REQUEST-NO-REPLAY", not repeated, f"response.created ids in order: {created}",
           f"response.created of {repeated} came more than once: a later create was answered with an "
           "earlier result")
    if any(t.status not in RAN for t in turns):
        raise HarnessError("cannot judge: a turn did not run (" + " / ".join(t.summary() for t in turns) + ")")
    first, second = turns
    expect("REQUEST-NO-REPLAY", first.response_id != second.response_id, second,
           f"two creates with different input both got the response id {second.response_id!r}: "
           "the second was answered with the first result")
    recorded = recorded_nonces(second)
    expect("REQUEST-NO-REPLAY", not seen(recorded, codes[0]), f"recorded {recorded}",
           f"the second turn (a new conversation holding only {codes[1]}) names the first turn's code "
           f"{codes[0]}: its output is the first result replayed")
