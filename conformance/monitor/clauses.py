"""Every clause id the streaming monitor reports, each declared once, with its reach scope.

The monitor's modules name clauses by these constants, never by string. ``SCOPE`` says, per
clause the monitor checks on every frame, which received events or sent creates make the
monitor apply it (``conformance.reach`` reads it: a rule about ``error`` events checks nothing
on a connection that never received one). ``EMITTED`` is every clause the monitor can report;
a clause with no scope (``CREATE-ANSWERED``, a timeout finding; the two trailing-frame
clauses, whose level the profile picks) is reached by the case that waits or listens, not by
frames. Spec §1.4, §1.5, §3, §3.10, §4.1 item 3, §4.3 (item 15a too), §4.4 (docs/spec.md).
No I/O.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable

Event = dict
Applies = Callable[[Event], bool]  # a received event the rule applies to
Needs = Callable[[dict], bool] | None  # a create the rule needs (None: any or none)


def _any(event: Event) -> bool:
    return True


def _type(event: Event) -> str:
    typ = event.get("type")
    return typ if isinstance(typ, str) else ""


def _error(event: Event) -> bool:
    return _type(event) == "error"


def _response_event(event: Event) -> bool:
    return _type(event).startswith("response.")


def _created(event: Event) -> bool:
    return _type(event) == "response.created"


def _item(event: Event) -> bool:
    return _type(event).startswith("response.output_item.")


def _delta(event: Event) -> bool:
    return _response_event(event) and _type(event).endswith(".delta")


def _done_value(event: Event) -> bool:
    return _response_event(event) and _type(event).endswith(".done")


def _incomplete(event: Event) -> bool:
    if _type(event) == "response.incomplete":
        return True
    item = event.get("item")
    return (_type(event) == "response.output_item.done" and isinstance(item, dict)
            and item.get("status") == "incomplete")


def _fc_done(event: Event) -> bool:
    return _type(event) == "response.function_call_arguments.done"


def _completed(event: Event) -> bool:
    return _type(event) == "response.completed"


def _default_lane(create: dict) -> bool:
    return "stream_id" not in create


def _named_lane(create: dict) -> bool:
    return "stream_id" in create


_scope: dict[str, tuple[Applies, Needs]] = {}
_emitted: list[str] = []


def _declare(clause: str, applies: Applies | None, needs: Needs = None) -> str:
    """Declare a clause the monitor reports; ``applies`` None: no frame makes it reached."""
    _emitted.append(clause)
    if applies is not None:
        _scope[clause] = (applies, needs)
    return clause


# frames and schemas (framing.py)
WS_TEXT_JSON_FRAMES = _declare("WS-TEXT-JSON-FRAMES", _any)
WS_NO_SSE_FRAMING = _declare("WS-NO-SSE-FRAMING", _any)
SCHEMA_SERVER_EVENT = _declare("SCHEMA-SERVER-EVENT", _any)
EXT_UNKNOWN_TOLERATED = _declare("EXT-UNKNOWN-TOLERATED", _any)
# errors
ERR_ENVELOPE = _declare("ERR-ENVELOPE", _error)
ERR_CODE_NESTED = _declare("ERR-CODE-NESTED", _error)
# one response's grammar (grammar.py) and its attribution (attribution.py)
STREAM_CREATED_FIRST = _declare("STREAM-CREATED-FIRST", _response_event)
STREAM_IN_PROGRESS_FOLLOWS = _declare("STREAM-IN-PROGRESS-FOLLOWS", _created)
STREAM_ONE_TERMINAL = _declare("STREAM-ONE-TERMINAL", _created)
STREAM_TERMINAL_LAST = _declare("STREAM-TERMINAL-LAST", _created)
STREAM_TERMINAL_RESPONSE = _declare("STREAM-TERMINAL-RESPONSE", _created)
STREAM_ITEM_LIFECYCLE = _declare("STREAM-ITEM-LIFECYCLE", _item)
STREAM_INDEXES_IN_ORDER = _declare("STREAM-INDEXES-IN-ORDER", _item)
STREAM_ANNOUNCED_ITEM = _declare("STREAM-ANNOUNCED-ITEM", _item)
STREAM_DELTAS_ADD_UP = _declare("STREAM-DELTAS-ADD-UP", _delta)
STREAM_DONE_MATCHES_OUTPUT = _declare("STREAM-DONE-MATCHES-OUTPUT", _done_value)
STREAM_INCOMPLETE_ITEM_LAST = _declare("STREAM-INCOMPLETE-ITEM-LAST", _incomplete)
STREAM_ITEM_DONE_BEFORE_TERMINAL = _declare("STREAM-ITEM-DONE-BEFORE-TERMINAL", _completed)
FC_DONE_NAME = _declare("FC-DONE-NAME", _fc_done)
SEQ_PRESENT = _declare("SEQ-PRESENT", _response_event)
SEQ_MONOTONIC = _declare("SEQ-MONOTONIC", _response_event)
SEQ_FROM_ZERO_BY_ONE = _declare("SEQ-FROM-ZERO-BY-ONE", _response_event)
QUEUE_ONE_IN_FLIGHT = _declare("QUEUE-ONE-IN-FLIGHT", _created)
PREVIOUS_ID_ECHOED = _declare("PREVIOUS-ID-ECHOED", _created)
LANE_DEFAULT_UNTAGGED = _declare("LANE-DEFAULT-UNTAGGED", _response_event, _default_lane)
LANE_TAGGED = _declare("LANE-TAGGED", _response_event, _named_lane)
# a private frame after the terminal event (§4.3 item 15a): which of the two is reported depends
# on the profile (MUST under P-open, SHOULD elsewhere), so no frame reaches them: the case that
# listens after the terminal event does
STREAM_NOTHING_AFTER_TERMINAL = _declare("STREAM-NOTHING-AFTER-TERMINAL", None)
STREAM_NO_TRAILING_FRAME = _declare("STREAM-NO-TRAILING-FRAME", None)
# timeouts (StreamMonitor.timed_out): judged by the case that waits, not by frames
CREATE_ANSWERED = _declare("CREATE-ANSWERED", None)

SCOPE: MappingProxyType[str, tuple[Applies, Needs]] = MappingProxyType(_scope)
# the scopes that read nothing but the event's type: one event per type answers them
BY_TYPE_ONLY: frozenset[Applies] = frozenset({_any, _error, _response_event, _created, _item, _delta, _done_value,
                                              _fc_done, _completed})
# the scopes that read more than the type, and the types whose events they read: for any other
# type the one event per type answers them too (a scope not listed here reads every event)
CONTENT_TYPES: MappingProxyType[Applies, frozenset[str]] = MappingProxyType(
    {_incomplete: frozenset({"response.output_item.done"})})
EMITTED: frozenset[str] = frozenset(_emitted)
