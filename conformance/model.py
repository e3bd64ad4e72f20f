"""Reference model of the state a Responses WebSocket server must keep (sans-I/O).

Implements docs/spec.md §4.4 (queueing, lanes and their limits), §4.5 (continuation
and the connection-local cache: items 25-35), §4.6 (reconnect, connection lifetime), §4.7
(``generate:false`` warm-ups are cached like other responses) and §4.9 (steering: who accepts
a steer, and the successor as the lane's latest response), as far as they decide the
*outcome* of a ``response.create`` or ``response.steer``. It never needs a model's text: only ids, flags and
``call_id``s. No I/O, no clock of its own (callers pass times), no pytest.

API
---

* ``Capabilities`` (dataclass; build it directly or with ``Capabilities.from_profile(p)``
  from a profile or a partial profile table, whose missing keys take the defaults of
  ``conformance.target``; the dataclass defaults are those of an empty profile, a self-test
  keeps them equal): ``store_true_hydrates``, ``zdr``,
  ``busy_policy`` (``"queue"`` | ``"reject"`` | ``"either"``: P-open allows both, so a busy
  create is predicted queued and ``Prediction.may_reject_busy`` says a rejection is as good),
  ``busy_error_code`` (``None`` = any),
  ``generate_false``, ``lifetime_s`` (``None`` = unlimited), ``lanes``, ``max_named_lanes``,
  ``background_rejected``, ``not_found_status`` (``0`` = any 4xx: ``expected_status`` is then
  ``None``), ``steering``.
* ``World(capabilities)`` holds the persisted store (``store=true`` responses, across
  connections, never under ZDR) and the connections:
  * ``world.open(now=None) -> conn_id``; ``world.close(conn_id)`` (its cache is gone);
  * ``world.predict(conn_id, request, now=None) -> Prediction`` — pure: what must happen to this
    ``response.create`` if it were sent now;
  * ``world.send(conn_id, request, now=None) -> Prediction`` — the same, and the request is
    now in flight on its lane (so later creates of that lane are queued behind it, or
    rejected under ``busy_policy="reject"``);
  * ``world.observe(conn_id, request, response_id, outcome, *, call_ids=(), response=None,
    code=None)`` — what really happened (``outcome`` is a ``Prediction.outcome`` value, or
    ``"failed"`` / ``"incomplete"`` for a response that started and ended so); the id the
    server assigned becomes the lane's cached response. ``call_ids`` (or the terminal
    ``response`` object, from whose ``output`` they are read) are the tool calls the response
    made, so that a later ``function_call_output`` for an unknown ``call_id`` is predicted
    ``"invalid"``. ``code`` (the error code, if any) tells a ``limit_reached`` by the lane
    limit from one by the connection lifetime (only the latter expires the connection).
  * ``world.predict_steer(conn_id, target_id, running=...) -> Prediction`` — what a
    ``response.steer`` naming ``target_id`` must get: ``steer_accepted`` while the target runs
    (the caller knows: it saw the target's ``response.created`` and no terminal event yet),
    else ``steer_failed`` with ``expected_code`` (``None`` for an ended target: either of
    ``STEER_ENDED_CODES``);
  * ``world.observe_successor(conn_id, target_id, successor_id, lane, store=...)`` — an
    accepted steer's successor ran: it continues the target and is its lane's latest response.
* ``Prediction(outcome, expected_code, expected_status, queued_behind, hydrated, reason)``;
  ``outcome`` ∈ ``completes``, ``not_found`` (``previous_response_not_found``), ``invalid`` (a
  4xx for bad input, e.g. an orphan ``function_call_output``, ``background:true``, a bad
  ``stream_id``, ``previous_response_id`` with ``conversation``), ``rejected_busy``,
  ``limit_reached`` (connection lifetime, or the 33rd named lane).

Rules (spec items in brackets)
------------------------------

* Each lane (``stream_id``; absent = default lane) caches its latest response [25]; P-legacy
  is the default lane alone. A continuation hits when ``previous_response_id`` is the latest
  response of any lane of this connection (a cross-lane fork reads another lane's latest
  [33]); a non-latest id is a miss.
* A miss on an id persisted with ``store=true`` is hydrated when ``store_true_hydrates`` (and
  not ZDR) [27]; any other miss is ``not_found`` [28], including ids of other or closed
  connections [29, 36] and everything under ZDR that was not cached [35].
* A continuation that fails (``invalid``, ``not_found``, or a response that ends ``failed``)
  evicts the referenced id from the lane it was sent on; a failed cross-lane fork leaves the
  other lane's entry alone [30, 31]. The evicted id stays hydratable when it was persisted.
  ``rejected_busy`` and ``limit_reached`` do not evict (the turn never ran; transport-level,
  [32]).
* ``generate:false`` responses are cached like others [34]; where the capability is off the
  create is ``invalid``.
* Responses that end ``incomplete`` are cached (they can be continued); ``failed`` ones are
  not (spec §6 question 12 is open; this is the model's choice).
* Tool calls: every response remembers the ``call_id``s of its context (inherited from its
  parent, its own calls, and calls echoed in its input). A ``*_output`` input item (e.g.
  ``function_call_output``) whose ``call_id`` is not in the context is an orphan: ``invalid``
  [30's scenario].
* Queueing [19, 20]: ``send`` puts a request in flight on its lane until ``observe``. A
  create sent while its lane is busy is ``queued_behind`` the in-flight ones (``queue``) or
  ``rejected_busy`` (``reject``). Its prediction assumes the requests ahead end as predicted:
  one predicted to complete will replace the lane's latest response, so a continuation from
  the current latest becomes a miss; one predicted to fail evicts its parent.
* Lifetime [38]: with ``lifetime_s``, a create at ``now - opened >= lifetime_s`` is
  ``limit_reached`` (``websocket_connection_limit_reached``).
* Lanes [6, 22]: with ``lanes``, a ``stream_id`` that is not 1-256 chars of
  ``[A-Za-z0-9_.-]`` is ``invalid`` (``invalid_stream_id``); the ``max_named_lanes + 1``-th
  distinct name is ``limit_reached`` (``websocket_stream_limit_reached``). Without ``lanes``
  any ``stream_id`` is ``invalid`` (code not asserted). ``stream_id: null`` counts as absent.
* Steering [46-49]: without ``steering`` every steer fails ``steering_not_supported``; a
  running target accepts; a response that ended on this connection refuses
  (``response_already_completed`` / ``response_not_active``); any other id is
  ``response_not_found``. The successor's context is the target's plus the steer input, and
  it replaces the target as the lane's latest response [47, 23a].
* Contract with the caller: every ``send`` is followed by an ``observe`` of the same request
  (object identity, else equality), or the lane stays busy in the model.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from conformance.monitor.events import valid_lane_name
from conformance.target import profile_from_table

__all__ = [
    "Capabilities",
    "Prediction",
    "World",
    "Conn",
    "OUTCOMES",
    "NOT_FOUND_CODE",
    "LIMIT_CODE",
    "STREAM_LIMIT_CODE",
    "INVALID_STREAM_ID_CODE",
    "STEER_ACCEPTED",
    "STEER_FAILED",
    "STEER_ENDED_CODES",
]

COMPLETES, NOT_FOUND, INVALID, REJECTED_BUSY, LIMIT_REACHED = (
    "completes", "not_found", "invalid", "rejected_busy", "limit_reached")
OUTCOMES = (COMPLETES, NOT_FOUND, INVALID, REJECTED_BUSY, LIMIT_REACHED)
# outcomes observe() accepts beyond the predicted ones: how a started response really ended
_ENDED = {"completed": COMPLETES, "incomplete": "incomplete", "failed": "failed"}

STEER_ACCEPTED, STEER_FAILED = "steer_accepted", "steer_failed"
STEER_ENDED_CODES = ("response_already_completed", "response_not_active")
NOT_FOUND_CODE = "previous_response_not_found"
LIMIT_CODE = "websocket_connection_limit_reached"
STREAM_LIMIT_CODE = "websocket_stream_limit_reached"
INVALID_STREAM_ID_CODE = "invalid_stream_id"

@dataclass(frozen=True)
class Capabilities:
    """What the target claims (the profile's facts that decide outcomes)."""

    store_true_hydrates: bool = True
    zdr: bool = False
    busy_policy: str = "queue"
    busy_error_code: str | None = None
    generate_false: bool = True
    lifetime_s: float | None = 3600.0
    lanes: bool = False
    max_named_lanes: int = 32
    background_rejected: bool = True
    not_found_status: int = 400
    steering: bool = False

    def __post_init__(self) -> None:
        if self.busy_policy not in ("queue", "reject", "either"):
            raise ValueError(f"busy_policy must be 'queue', 'reject' or 'either', not {self.busy_policy!r}")

    @property
    def hydrates(self) -> bool:
        return self.store_true_hydrates and not self.zdr

    @classmethod
    def from_profile(cls, profile: Any) -> "Capabilities":
        """From a ``conformance.target.Profile``, or a (partial) profile table: the keys it
        leaves out take the profile defaults of ``conformance.target`` (the one place they
        are written down)."""
        if isinstance(profile, Mapping):
            profile = profile_from_table(profile)
        lifetime = profile.lifetime_seconds
        return cls(
            store_true_hydrates=bool(profile.cache["store_true_hydrates"]),
            zdr=bool(profile.cache["zdr"]),
            busy_policy=profile.busy_policy,
            busy_error_code=profile.busy_error_code or None,
            generate_false=bool(profile.features["generate_false"]),
            lifetime_s=lifetime if lifetime else None,
            lanes=bool(profile.features["lanes"]),
            max_named_lanes=profile.max_named_lanes,
            background_rejected=bool(profile.features["background_rejected"]),
            not_found_status=profile.not_found_status,
            steering=bool(profile.features["steering"]),
        )


@dataclass(frozen=True)
class Prediction:
    """What must happen to one response.create."""

    outcome: str
    expected_code: str | None = None  # None: any code (or none) is acceptable
    expected_status: int | None = None
    queued_behind: int = 0  # requests ahead of it on its lane that are predicted to run (busy)
    hydrated: bool = False  # completes only by hydrating a store=true id
    reason: str = ""
    may_reject_busy: bool = False  # busy_policy "either": rejected_busy is acceptable too

    @property
    def ok(self) -> bool:
        return self.outcome == COMPLETES


@dataclass
class _Record:
    """A response the model knows about (its id and the call_ids of its context only)."""

    id: str
    calls: frozenset  # call_ids in its context: a *_output for any of them is not an orphan


@dataclass
class _Flight:
    request: dict
    lane: str | None
    prediction: Prediction


@dataclass
class Conn:
    """One connection: the per-lane cache and the requests in flight."""

    id: int
    opened: float | None
    latest: dict = field(default_factory=dict)  # lane -> _Record (the lane's cached response)
    named_lanes: set = field(default_factory=set)
    started: set = field(default_factory=set)  # ids of responses that ran on it (steer targets)
    inflight: dict = field(default_factory=dict)  # lane -> deque[_Flight]
    closed: bool = False
    expired: bool = False


def _lane_of(request: Mapping) -> str | None:
    sid = request.get("stream_id")
    return sid if isinstance(sid, str) else None


def _input_items(request: Mapping) -> list:
    items = request.get("input")
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _calls_in(items: Iterable[Mapping]) -> set:
    """call_ids of tool calls (items with a call_id whose type is not *_output)."""
    out = set()
    for item in items:
        cid = item.get("call_id")
        typ = item.get("type")
        if isinstance(cid, str) and isinstance(typ, str) and not typ.endswith("_output"):
            out.add(cid)
    return out


def _outputs_in(items: Iterable[Mapping]) -> list:
    """call_ids answered by tool outputs (items of a *_output type with a call_id)."""
    out = []
    for item in items:
        cid = item.get("call_id")
        typ = item.get("type")
        if isinstance(cid, str) and isinstance(typ, str) and typ.endswith("_output"):
            out.append(cid)
    return out


class World:
    """The persisted store and every connection's state; see the module docstring."""

    def __init__(self, capabilities: Capabilities | None = None, **kwargs: Any) -> None:
        if capabilities is None:
            capabilities = Capabilities(**kwargs)
        elif kwargs:
            raise TypeError("pass either a Capabilities or keyword arguments, not both")
        self.caps = capabilities
        self.store: dict[str, _Record] = {}  # persisted store=true responses (never under ZDR)
        self.conns: dict[int, Conn] = {}  # never shrinks (close() marks a connection closed)

    # -- connections -------------------------------------------------------------------

    def open(self, now: float | None = None) -> int:
        cid = len(self.conns)
        self.conns[cid] = Conn(cid, now)
        return cid

    def close(self, conn_id: int) -> None:
        """The socket closed: the cache of every lane and the queued requests are gone [36]."""
        conn = self.conns[conn_id]
        conn.closed = True
        conn.latest.clear()
        conn.inflight.clear()

    def cached(self, conn_id: int) -> dict[str | None, str]:
        """lane -> id of the lane's cached response (for tests and reports)."""
        return {lane: rec.id for lane, rec in self.conns[conn_id].latest.items()}

    # -- prediction --------------------------------------------------------------------

    def predict(self, conn_id: int, request: Mapping, now: float | None = None) -> Prediction:
        prediction = self._predict(conn_id, request, now)
        if self.caps.busy_policy == "either" and prediction.queued_behind and prediction.outcome != LIMIT_REACHED:
            prediction = replace(prediction, may_reject_busy=True)
        return prediction

    def _predict(self, conn_id: int, request: Mapping, now: float | None = None) -> Prediction:
        conn = self.conns[conn_id]
        if conn.closed:
            raise ValueError(f"connection {conn_id} is closed")
        caps = self.caps
        lane = _lane_of(request)
        ahead = list(conn.inflight.get(lane, ()))
        busy = sum(1 for f in ahead if f.prediction.outcome == COMPLETES)

        # connection-level limits first: the turn never starts
        if conn.expired or (caps.lifetime_s is not None and now is not None and conn.opened is not None
                            and now - conn.opened >= caps.lifetime_s):
            return Prediction(LIMIT_REACHED, LIMIT_CODE, 400, reason="connection lifetime reached [38]")

        # validation of the create itself
        sid = request.get("stream_id")
        if sid is not None:  # stream_id: null is taken as absent (the default lane)
            if not caps.lanes:
                return Prediction(INVALID, None, 400, reason="stream_id on a target without lanes")
            if not valid_lane_name(sid):
                return Prediction(INVALID, INVALID_STREAM_ID_CODE, 400, reason="bad stream_id [6]")
            if sid not in conn.named_lanes and len(conn.named_lanes) >= caps.max_named_lanes:
                return Prediction(LIMIT_REACHED, STREAM_LIMIT_CODE, 400,
                                  reason=f"more than {caps.max_named_lanes} named lanes [22]")
        if request.get("background") is True and caps.background_rejected:
            return Prediction(INVALID, None, 400, reason="background:true is not supported [7]")
        if request.get("previous_response_id") is not None and request.get("conversation") is not None:
            return Prediction(INVALID, None, 400, reason="previous_response_id with conversation [9]")
        if request.get("generate") is False and not caps.generate_false:
            return Prediction(INVALID, None, 400, reason="generate:false unsupported by the target")

        # busy lane
        if busy and caps.busy_policy == "reject":
            return Prediction(REJECTED_BUSY, caps.busy_error_code, None, queued_behind=0,
                              reason="lane busy and the target rejects concurrent creates [19]")

        # continuation against the cache as it will be when this request runs
        prev = request.get("previous_response_id")
        context_calls: frozenset = frozenset()
        hydrated = False
        if prev is not None:
            record = self._lookup_cached(conn, prev, ahead, lane)
            if record is None:
                stored = self.store.get(prev) if caps.hydrates else None
                if stored is None:
                    return Prediction(NOT_FOUND, NOT_FOUND_CODE, caps.not_found_status or None, queued_behind=busy,
                                      reason=f"{prev!r} is not cached on this connection and not hydratable [28]")
                record, hydrated = stored, True
            context_calls = record.calls

        # orphan tool outputs
        items = _input_items(request)
        known = context_calls | _calls_in(items)
        orphans = [cid for cid in _outputs_in(items) if cid not in known]
        if orphans:
            return Prediction(INVALID, None, 400, queued_behind=busy, hydrated=hydrated,
                              reason=f"tool output for unknown call_id {orphans[0]!r} [30]")
        return Prediction(COMPLETES, None, None, queued_behind=busy, hydrated=hydrated,
                          reason="hydrated from the store [27]" if hydrated else
                          ("cache hit [26]" if prev is not None else "new chain"))

    def _lookup_cached(self, conn: Conn, prev: str, ahead: list, lane: str | None) -> _Record | None:
        """prev among the lanes' latest responses, as they will be once ``ahead`` has run."""
        replaced_lanes = set()
        evicted = set()
        for flight in ahead:
            prediction = flight.prediction
            if prediction.outcome == COMPLETES:
                replaced_lanes.add(flight.lane)
            elif prediction.outcome in (INVALID, NOT_FOUND):
                parent = flight.request.get("previous_response_id")
                if parent is not None:
                    evicted.add((flight.lane, parent))
        for lane_key, record in conn.latest.items():
            if record.id != prev or lane_key in replaced_lanes or (lane_key, prev) in evicted:
                continue
            return record
        return None

    def predict_steer(self, conn_id: int, target_id: str, *, running: bool) -> Prediction:
        """What a ``response.steer`` naming ``target_id`` must get [46-49]."""
        conn = self.conns[conn_id]
        if not self.caps.steering:
            return Prediction(STEER_FAILED, "steering_not_supported", reason="the target does not claim steering [49]")
        if running:
            return Prediction(STEER_ACCEPTED, reason="the target is running on this connection [47]")
        if target_id in conn.started:
            return Prediction(STEER_FAILED, None, reason="the target has ended [46]")
        return Prediction(STEER_FAILED, "response_not_found", reason="not a response of this connection [46]")

    def observe_successor(self, conn_id: int, target_id: str, successor_id: str, lane: str | None, *,
                          store: bool = True) -> None:
        """An accepted steer's successor ran: it continues the target on the target's lane."""
        conn = self.conns[conn_id]
        parent = self._find(conn, target_id)
        record = _Record(successor_id, parent.calls if parent is not None else frozenset())
        conn.started.add(successor_id)
        conn.latest[lane] = record
        if store and not self.caps.zdr:
            self.store[successor_id] = record

    def send(self, conn_id: int, request: dict, now: float | None = None) -> Prediction:
        """predict(), then the request is in flight on its lane until observe()."""
        prediction = self.predict(conn_id, request, now)
        conn = self.conns[conn_id]
        lane = _lane_of(request)
        outcome = prediction.outcome
        if outcome == LIMIT_REACHED:
            if prediction.expected_code == LIMIT_CODE:
                conn.expired = True
            return prediction
        if outcome == REJECTED_BUSY:
            return prediction
        self._count_lane(conn, request)
        conn.inflight.setdefault(lane, deque()).append(_Flight(request, lane, prediction))
        return prediction

    def _count_lane(self, conn: Conn, request: Mapping) -> None:
        sid = request.get("stream_id")
        if self.caps.lanes and valid_lane_name(sid):
            conn.named_lanes.add(sid)

    # -- observation -------------------------------------------------------------------

    def observe(self, conn_id: int, request: Mapping, response_id: str | None, outcome: str, *,
                call_ids: Iterable[str] = (), response: Mapping | None = None,
                code: str | None = None) -> None:
        """Bring the model in step with what the server did for ``request``.

        ``outcome``: a ``Prediction.outcome`` value, or how a started response ended
        (``"completed"`` = ``"completes"``, ``"incomplete"``, ``"failed"``). ``code`` (the
        error code, when there was one) tells a lane limit from the lifetime limit.
        """
        conn = self.conns[conn_id]
        outcome = _ENDED.get(outcome, outcome)
        if outcome not in OUTCOMES and outcome not in ("incomplete", "failed"):
            raise ValueError(f"unknown outcome {outcome!r}")
        lane = _lane_of(request)
        self._land(conn, request, lane)
        if conn.closed or outcome == REJECTED_BUSY:
            return
        if outcome == LIMIT_REACHED:
            sid = request.get("stream_id")
            lane_limit = code == STREAM_LIMIT_CODE or (
                code is None and isinstance(sid, str) and sid not in conn.named_lanes
                and len(conn.named_lanes) >= self.caps.max_named_lanes)
            if not lane_limit:
                conn.expired = True
            return
        self._count_lane(conn, request)
        if response_id is not None:
            conn.started.add(response_id)
        prev = request.get("previous_response_id")
        if outcome in (NOT_FOUND, INVALID, "failed"):
            if prev is not None:
                self._evict(conn, lane, prev)
            return
        # completes / incomplete: the new response is the lane's latest
        if response_id is None:
            return
        parent = self._find(conn, prev) if prev is not None else None
        calls = set(parent.calls) if parent is not None else set()
        calls |= _calls_in(_input_items(request))
        calls |= set(call_ids)
        if response is not None:
            output = response.get("output")
            if isinstance(output, list):
                calls |= _calls_in(o for o in output if isinstance(o, Mapping))
        store = request.get("store", True) is not False
        record = _Record(response_id, frozenset(calls))
        conn.latest[lane] = record
        if store and not self.caps.zdr:
            self.store[response_id] = record

    def _land(self, conn: Conn, request: Mapping, lane: str | None) -> None:
        """The request is no longer in flight."""
        queue = conn.inflight.get(lane)
        if not queue:
            return
        for i, flight in enumerate(queue):
            if flight.request is request:
                del queue[i]
                return
        for i, flight in enumerate(queue):
            if flight.request == request:
                del queue[i]
                return

    def _find(self, conn: Conn, rid: str) -> _Record | None:
        for record in conn.latest.values():
            if record.id == rid:
                return record
        return self.store.get(rid)

    @staticmethod
    def _evict(conn: Conn, lane: str | None, rid: str) -> None:
        record = conn.latest.get(lane)
        if record is not None and record.id == rid:
            del conn.latest[lane]
