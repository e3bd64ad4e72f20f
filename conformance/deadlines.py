"""Deadlines that fit the work a turn still has to do (§1.5 of docs/spec.md; docs/nightly.md,
"Deadlines").

A turn waits with an idle deadline: seconds since its last frame. Before the first frame and
while output streams, the target may be thinking (a model's time to first token, a hosted tool,
a long reasoning pause), so the wait is long (``--turn-timeout``, 60 s against a real target).
Once the turn's output is *done* (the last event is ``response.output_item.done`` of a message
or a function call, and no announced item is still open) the model has nothing more to generate:
what is left is the terminal event. A shorter idle deadline (``idle_after_done``, 10 s) then
applies; it is never longer than the turn's idle deadline.

===========================  ==================  =============================================
deadline                     default             set by
===========================  ==================  =============================================
idle, before the output is   60 s (--target),    ``--turn-timeout``, else the profile's
done                         10 s (embedded)     ``[deadlines] turn_timeout`` (0: the default)
idle, after the output is    10 s                the profile's ``[deadlines] idle_after_done``
done
===========================  ==================  =============================================

A *quiet period* (listening for stray frames after a terminal event) lasts a few of the
largest gaps between the frames of the response it follows, within [QUIET_MIN, its cap]: a
target that streamed its events 20 ms apart would send a stray one at about that pace, so
two seconds of silence per case would be spent for nothing (issue 15 item 12).

No I/O, no pytest import.
"""

from __future__ import annotations

from typing import Any

TURN_TIMEOUT_TARGET = 60.0
TURN_TIMEOUT_EMBEDDED = 10.0
IDLE_AFTER_DONE = 10.0
# items after which the model hands back control or has finished speaking; a hosted tool call
# or a reasoning item may be followed by a long pause before the next item, so not these
FINAL_ITEM_TYPES = frozenset({"message", "function_call"})


def turn_timeouts(cli: float | None, profile: Any, embedded: bool) -> tuple[float, float]:
    """(idle deadline, idle deadline after the output is done) for a run."""
    configured = profile.get("deadlines.turn_timeout", 0) if profile is not None else 0
    if cli is not None:
        idle = float(cli)
    elif configured:
        idle = float(configured)
    else:
        idle = TURN_TIMEOUT_EMBEDDED if embedded else TURN_TIMEOUT_TARGET
    after = profile.get("deadlines.idle_after_done", IDLE_AFTER_DONE) if profile is not None else IDLE_AFTER_DONE
    after = float(after) if after else idle
    return idle, min(idle, after)


def output_done(request: Any) -> bool:
    """The turn's output is done: its last event is the ``output_item.done`` of a final item
    and no announced item is open (``rs``: a monitor ``RequestState``)."""
    if not request.events:
        return False
    last = request.events[-1]
    if not isinstance(last, dict) or last.get("type") != "response.output_item.done":
        return False
    item = last.get("item")
    if not isinstance(item, dict) or item.get("type") not in FINAL_ITEM_TYPES:
        return False
    return all(it.done for it in getattr(request.grammar, "order", ()))


QUIET_MIN = 0.2          # seconds
QUIET_GAPS = 3           # this many of the response's largest gap between frames


def quiet_period(frame_times: list[float], cap: float) -> float:
    """How long to listen after a terminal event, from the receive times of its response's
    frames (the first gap, the time to the first frame, left out: it is the target thinking)."""
    gaps = [b - a for a, b in zip(frame_times[1:], frame_times[2:])]
    if not gaps:
        return max(QUIET_MIN, cap)
    return min(cap, max(QUIET_MIN, QUIET_GAPS * max(gaps)))
