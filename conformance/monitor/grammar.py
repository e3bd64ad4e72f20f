"""The grammar of one response: its state and, next to it, the rules (§4.3 of docs/spec.md).

Created first, in_progress follows (item 11), item and part lifecycle and indexes in order
(12), announced items (13), deltas that add up and ``.done`` values that match the output
(14), one terminal event, last, carrying the response (15), an incomplete item last (16),
sequence numbers (17, §3.5: they restart per response; strictly increasing is the MUST, 0
then +1 the SHOULD). ``Leniency`` carries the profile's tolerances of item 16a: setup events
(``output_item.added``, ``content_part.added``, ``reasoning_summary_part.added``) and the
terminal ``output`` may be left out; what is left out is then an INFO observation. Items still
open at the terminal event that its ``output`` holds are a SHOULD finding (16b); a
``function_call_arguments.done`` without ``name`` too (§3.2). Each finding of a kind is
reported once per response. The attribution
decides which response an event belongs to; the methods here judge it and report through
``add(clause, message, request, pointer=...)``.
"""
from __future__ import annotations

import enum
from typing import Any, Callable

from conformance.monitor.clauses import (
    FC_DONE_NAME, SEQ_FROM_ZERO_BY_ONE, SEQ_MONOTONIC, SEQ_PRESENT, STREAM_ANNOUNCED_ITEM,
    STREAM_CREATED_FIRST, STREAM_DELTAS_ADD_UP, STREAM_DONE_MATCHES_OUTPUT, STREAM_IN_PROGRESS_FOLLOWS,
    STREAM_INCOMPLETE_ITEM_LAST, STREAM_INDEXES_IN_ORDER, STREAM_ITEM_DONE_BEFORE_TERMINAL,
    STREAM_ITEM_LIFECYCLE, STREAM_TERMINAL_RESPONSE,
)
from conformance.monitor.events import FAMILIES, LIFECYCLE_START, PART_FAMILY, TERMINAL_STATUS
from conformance.monitor.records import INFO, short

Add = Callable[..., Any]


class PartState(enum.StrEnum):
    """A content or reasoning-summary part: added, streaming, its text .done seen, closed."""

    OPEN = "open"
    DELTAS = "deltas"
    TEXT_DONE = "text-done"
    CLOSED = "closed"


_NO_MORE_DELTAS = (PartState.TEXT_DONE, PartState.CLOSED)
# a member read from a module global, not through the enum class (several times cheaper per delta)
_OPEN, _DELTAS = PartState.OPEN, PartState.DELTAS


class Leniency:
    """What the target's profile lets a response leave out (§4.3 item 16a): the item/part setup
    events, the terminal ``response.output``. ``"required"`` (the default) or ``"optional"``."""

    __slots__ = ("setup_events", "terminal_output")
    CHOICES = ("required", "optional")

    def __init__(self, setup_events: str = "required", terminal_output: str = "required") -> None:
        for name, value in (("setup_events", setup_events), ("terminal_output", terminal_output)):
            if value not in self.CHOICES:
                raise ValueError(f"{name} must be 'required' or 'optional', got {value!r}")
        self.setup_events = setup_events == "optional"  # True: optional
        self.terminal_output = terminal_output == "optional"


STRICT = Leniency()
FC_ARGUMENTS = "response.function_call_arguments"


class Item:
    """An output item announced by ``output_item.added`` (or, when setup events are optional,
    first seen in a later event)."""

    __slots__ = ("id", "output_index", "done", "parts", "next_part", "summary_parts", "next_summary",
                 "deltas", "done_values")

    def __init__(self, iid: str | None, output_index: Any) -> None:
        self.id = iid
        self.output_index = output_index  # as sent
        self.done = False
        self.parts: dict = {}  # content_index -> PartState
        self.next_part = 0
        self.summary_parts: dict = {}  # summary_index -> PartState
        self.next_summary = 0
        self.deltas: dict = {}  # (family, index) -> list of deltas
        self.done_values: dict = {}  # (family, index) -> value of the .done event


class Grammar:
    """The grammar state of one response."""

    __slots__ = ("seq", "in_progress_due", "items", "by_output_index", "order", "incomplete_item", "once",
                 "queued", "lenient")

    def __init__(self, lenient: Leniency = STRICT) -> None:
        self.lenient = lenient
        self.seq: int | None = None  # highest sequence_number seen
        self.in_progress_due = False  # response.created seen: the next event must be response.in_progress
        self.items: dict = {}  # item id -> Item
        self.by_output_index: dict = {}  # output_index (as sent) -> Item
        self.order: list = []  # items in order of output_item.added
        self.incomplete_item: Item | None = None
        self.once: set = set()  # dedupe keys of findings reported once per response
        self.queued = False  # response.queued came first (or right after a queued response.created)

    def once_add(self, add: Add, request: Any, key: Any, clause: str, message: str, **fields: Any) -> None:
        """A finding reported once per response and ``(clause, key)``."""
        once_key = (clause, key)
        if once_key not in self.once:
            self.once.add(once_key)
            add(clause, message, request, **fields)

    def _tolerated_setup(self, add: Add, request: Any, clause: str, what: str) -> None:
        """A left-out setup event under ``setup_events = "optional"``: INFO, once per response."""
        self.once_add(add, request, "setup-optional", clause,
                      f"{what} (setup events are optional for this target, §4.3 item 16a)", kind=INFO)

    def new_item(self, iid: str | None, output_index: Any) -> Item:
        """An item of this response: announced, or (setup events optional) first seen in a
        delta, ``.done`` or ``output_item.done``."""
        item = Item(iid, output_index)
        self.order.append(item)
        if type(output_index) is int:
            self.by_output_index.setdefault(output_index, item)
        if iid is not None:
            self.items.setdefault(iid, item)
        return item

    # --- every event of the live response: sequence numbers, in_progress after created

    def step(self, add: Add, request: Any, event: dict, typ: str) -> None:
        seq = event.get("sequence_number")
        last = self.seq
        if last is not None and type(seq) is int and seq == last + 1:
            self.seq = seq
        else:
            self._number(add, request, seq, typ)
        if self.in_progress_due and typ != "response.created":
            self.in_progress_due = False
            # a warm-up (generate:false) ends right after created, without in_progress
            if typ != "response.in_progress" and not _is_empty_terminal(event, typ):
                add(STREAM_IN_PROGRESS_FOLLOWS, f"{typ} follows response.created; response.in_progress expected first",
                    request)

    def _number(self, add: Add, request: Any, seq: Any, typ: str) -> None:
        """A sequence_number other than the expected next one (§3.5, §4.3 item 17)."""
        if type(seq) is int and seq >= 0:
            last = self.seq
            if last is None:
                if seq != 0:
                    self.once_add(add, request, "seq", SEQ_FROM_ZERO_BY_ONE,
                                  f"first sequence_number of the response is {seq}, not 0 ({typ})")
                self.seq = seq
            elif seq <= last:
                self.once_add(add, request, "seq", SEQ_MONOTONIC,
                              f"sequence_number {seq} of {typ} does not exceed the previous {last}")
            else:
                self.once_add(add, request, "seq1", SEQ_FROM_ZERO_BY_ONE,
                              f"sequence_number jumps from {last} to {seq} ({typ})")
                self.seq = seq
        else:
            self.once_add(add, request, "seqp", SEQ_PRESENT,
                          f"{typ} has no non-negative integer sequence_number ({short(seq)})")
            # count it as numbered: the next event's gap is this defect, not another one
            self.seq = 0 if self.seq is None else self.seq + 1

    def shared_number(self, add: Add, request: Any, event: dict, typ: str) -> None:
        """steer/inject/extension events: part of the response's numbering, any time (§3.5)."""
        seq = event.get("sequence_number")
        if type(seq) is int and seq >= 0:
            last = self.seq
            if last is not None and seq <= last:
                self.once_add(add, request, "seq", SEQ_MONOTONIC,
                              f"sequence_number {seq} of {typ} does not exceed the previous {last}")
            else:
                if last is not None and seq != last + 1:
                    self.once_add(add, request, "seq1", SEQ_FROM_ZERO_BY_ONE,
                                  f"sequence_number jumps from {last} to {seq} ({typ})")
                self.seq = seq

    def first_event(self, add: Add, request: Any, first_type: str) -> None:
        """The response starts with ``first_type`` (item 11: queued or created first)."""
        if first_type not in LIFECYCLE_START and not self.queued:
            add(STREAM_CREATED_FIRST, f"first event of the response is {first_type}, not response.created", request)

    # --- items

    def item_added(self, add: Add, request: Any, event: dict, ids_elsewhere: Any) -> str | None:
        """``output_item.added`` (items 12, 16); returns the new item's id (None: no id)."""
        item = event.get("item")
        if type(item) is not dict:
            return None
        iid = item.get("id")
        if type(iid) is not str:
            iid = None
        output_index = event.get("output_index")
        if self.incomplete_item is not None:
            add(STREAM_INCOMPLETE_ITEM_LAST,
                f"item {iid!r} added after item {self.incomplete_item.id!r} ended incomplete", request)
        if output_index != len(self.order):
            add(STREAM_INDEXES_IN_ORDER,
                f"output_item.added has output_index {short(output_index)}, expected {len(self.order)}",
                request, pointer="/output_index")
        if iid is not None and (iid in self.items or iid in ids_elsewhere):
            add(STREAM_ITEM_LIFECYCLE, f"output_item.added repeats item id {iid!r}", request)
        self.new_item(iid, output_index)
        return iid

    def done_item(self, event: dict) -> tuple[str | None, Item | None]:
        """The item an ``output_item.done`` closes: by id, else by output_index."""
        item = event.get("item")
        iid = item.get("id") if type(item) is dict else None
        if type(iid) is not str:
            iid = None
        output_index = event.get("output_index")
        return iid, (self.items.get(iid) if iid is not None
                     else (self.by_output_index.get(output_index) if type(output_index) is int else None))

    def item_done(self, add: Add, request: Any, event: dict, iid: str | None, tracked: Item | None) -> None:
        """``output_item.done`` (items 12, 14, 16)."""
        if tracked is None:
            if not self.lenient.setup_events:
                add(STREAM_ITEM_LIFECYCLE, f"output_item.done for item {short(iid)} that was never added", request)
                return
            self._tolerated_setup(add, request, STREAM_ITEM_LIFECYCLE, f"output_item.done for item {short(iid)} "
                                  "that no output_item.added announced")
            tracked = self.new_item(iid, event.get("output_index"))
        if tracked.done:
            add(STREAM_ITEM_LIFECYCLE, f"second output_item.done for item {short(iid)}", request)
            return
        item = event.get("item")
        if type(item) is not dict:
            item = {}
        output_index = event.get("output_index")
        if output_index != tracked.output_index:
            add(STREAM_ANNOUNCED_ITEM,
                f"output_item.done for {iid!r} has output_index {short(output_index)}, "
                f"announced at {tracked.output_index}", request)
        for label, parts in (("content part", tracked.parts), ("summary part", tracked.summary_parts)):
            for idx, state in parts.items():
                if state != PartState.CLOSED:
                    add(STREAM_ITEM_LIFECYCLE, f"output_item.done for {iid!r} while its {label} {idx} is still open",
                        request)
        for base, idx in tracked.deltas:
            if (base, idx) not in tracked.done_values and FAMILIES[base][2] is None:  # parts: see content_part.done
                add(STREAM_ITEM_LIFECYCLE, f"output_item.done for {iid!r} without {base}.done after its deltas",
                    request)
        for (base, idx), value in tracked.done_values.items():
            got = output_value(item, base, idx)
            if got != value:
                add(STREAM_DONE_MATCHES_OUTPUT, f"output_item.done {iid!r}: {family_label(base, idx)} is {short(got)}, "
                    f"the .done event had {short(value)}", request)
        tracked.done = True
        if item.get("status") == "incomplete":
            self.incomplete_item = tracked

    def announced(self, add: Add, request: Any, event: dict, typ: str, item: Item | None, iid: Any) -> Item | None:
        """The open item an item event references by ``item_id`` (item 13: announced item)."""
        if item is None and iid is not None and self.lenient.setup_events:
            self._tolerated_setup(add, request, STREAM_ANNOUNCED_ITEM,
                                  f"{typ} references item_id {short(iid)}, not announced by output_item.added")
            return self.new_item(iid, event.get("output_index"))
        if item is None:
            self.once_add(add, request, ("id", iid), STREAM_ANNOUNCED_ITEM,
                          f"{typ} references item_id {short(iid)}, not announced by output_item.added")
            return None
        if item.done:
            self.once_add(add, request, ("done", iid), STREAM_ANNOUNCED_ITEM,
                          f"{typ} references item {iid!r} after its output_item.done")
            return None
        output_index = event.get("output_index")
        if output_index != item.output_index:
            self.once_add(add, request, ("oi", iid), STREAM_ANNOUNCED_ITEM,
                          f"{typ} for item {iid!r} has output_index {short(output_index)}, the item was announced at "
                          f"{item.output_index}")
        return item

    def announced_by_index(self, add: Add, request: Any, typ: str, output_index: Any, item: Item | None) -> Item | None:
        """The open item an event references by ``output_index`` only."""
        if item is None and type(output_index) is int and self.lenient.setup_events:
            self._tolerated_setup(add, request, STREAM_ANNOUNCED_ITEM,
                                  f"{typ} references output_index {output_index}, not announced by output_item.added")
            return self.new_item(None, output_index)
        if item is None:
            self.once_add(add, request, ("oi", short(output_index)), STREAM_ANNOUNCED_ITEM,
                          f"{typ} references output_index {short(output_index)}, not announced by output_item.added")
            return None
        if item.done:
            self.once_add(add, request, ("done", item.output_index), STREAM_ANNOUNCED_ITEM,
                          f"{typ} references output_index {short(output_index)} after its output_item.done")
            return None
        return item

    # --- parts and deltas

    def part_added(self, add: Add, request: Any, event: dict, typ: str, item: Item) -> None:
        """``content_part.added`` / ``reasoning_summary_part.added`` (item 12)."""
        summary = typ == "response.reasoning_summary_part.added"
        parts = item.summary_parts if summary else item.parts
        field_ = "summary_index" if summary else "content_index"
        idx = event.get(field_)
        expected = item.next_summary if summary else item.next_part
        try:
            added = idx in parts
        except TypeError:  # not even hashable, so not an index (the schema reports it)
            return
        if added:
            add(STREAM_ITEM_LIFECYCLE, f"{typ}: {field_} {short(idx)} of {item.id!r} added twice", request)
            return
        for other, state in parts.items():
            if state != PartState.CLOSED:
                add(STREAM_ITEM_LIFECYCLE, f"{typ} {short(idx)} of {item.id!r} while part {other} is still open",
                    request)
                break
        if idx != expected:
            add(STREAM_INDEXES_IN_ORDER, f"{typ} of {item.id!r} has {field_} {short(idx)}, expected {expected}",
                request, pointer="/" + field_)
        parts[idx] = PartState.OPEN
        nxt = (idx + 1) if type(idx) is int else expected + 1
        if summary:
            item.next_summary = max(item.next_summary, nxt)
        else:
            item.next_part = max(item.next_part, nxt)

    def part_done(self, add: Add, request: Any, event: dict, typ: str, item: Item) -> None:
        """``content_part.done`` / ``reasoning_summary_part.done`` (items 12, 14)."""
        summary = typ == "response.reasoning_summary_part.done"
        parts = item.summary_parts if summary else item.parts
        idx = event.get("summary_index" if summary else "content_index")
        try:
            state = parts.get(idx)
        except TypeError:
            return
        if state is None and self.lenient.setup_events:
            self._tolerated_setup(add, request, STREAM_ITEM_LIFECYCLE, f"{typ} for part {short(idx)} of {item.id!r} "
                                  "that was never added")
        elif state is None:
            add(STREAM_ITEM_LIFECYCLE, f"{typ} for part {short(idx)} of {item.id!r} that was never added", request)
            return
        if state == PartState.CLOSED:
            add(STREAM_ITEM_LIFECYCLE, f"second {typ} for part {idx} of {item.id!r}", request)
            return
        if state == PartState.DELTAS:
            add(STREAM_ITEM_LIFECYCLE, f"{typ} for part {idx} of {item.id!r} before the .done of its deltas", request)
        parts[idx] = PartState.CLOSED
        part = event.get("part")
        if type(part) is not dict:
            return
        if summary:
            base, fld = "response.reasoning_summary_text", "text"
        else:
            ptype = part.get("type")
            fam = PART_FAMILY.get(ptype) if type(ptype) is str else None
            if fam is None:
                return
            base, fld = fam
        value = item.done_values.get((base, idx))
        if value is not None and part.get(fld) != value:
            add(STREAM_DONE_MATCHES_OUTPUT, f"{typ} part {idx} of {item.id!r}: {fld} is {short(part.get(fld))}, "
                f"the .done event had {short(value)}", request)

    def delta(self, add: Add, request: Any, event: dict, typ: str, item: Item, info: tuple) -> None:
        """A ``.delta`` of a family (item 12): inside its open part, before its ``.done``."""
        base, _fld, idx_field, container = info
        idx = event.get(idx_field) if idx_field is not None else -1
        if container is not None:
            parts = item.parts if container == "part" else item.summary_parts
            try:
                state = parts.get(idx)
            except TypeError:
                return
            if state is _DELTAS:  # the common case first: the part is streaming
                pass
            elif state is None and self.lenient.setup_events:
                self._tolerated_setup(add, request, STREAM_ITEM_LIFECYCLE,
                                      f"{typ} for {idx_field} {short(idx)} of {item.id!r} before its part was added")
                _open_part(item, container, idx, PartState.DELTAS)
            elif state is None or state in _NO_MORE_DELTAS:
                self.once_add(add, request, ("delta-part", item.id, base, short(idx)), STREAM_ITEM_LIFECYCLE,
                              f"{typ} for {idx_field} {short(idx)} of {item.id!r} "
                              + ("before its part was added" if state is None else "after its part's .done"))
                if state is None:
                    return
            elif state == _OPEN:
                parts[idx] = _DELTAS
            key = (base, idx)
        else:
            key = (base, -1)
            if key in item.done_values:
                self.once_add(add, request, ("delta-after", item.id, base), STREAM_ITEM_LIFECYCLE,
                              f"{typ} for {item.id!r} after {base}.done")
        delta = event.get("delta")
        acc = item.deltas.get(key)
        if acc is None:
            acc = item.deltas[key] = []
        acc.append(delta if type(delta) is str else "")

    def text_done(self, add: Add, request: Any, event: dict, typ: str, item: Item, info: tuple) -> None:
        """The ``.done`` of a family (items 12, 14): once, in its part, equal to its deltas."""
        base, fld, idx_field, container = info
        idx = event.get(idx_field) if idx_field is not None else -1
        key = (base, idx)
        try:
            if key in item.done_values:
                add(STREAM_ITEM_LIFECYCLE, f"second {typ} for {item.id!r}", request)
                return
        except TypeError:
            return
        if container is not None:
            parts = item.parts if container == "part" else item.summary_parts
            state = parts.get(idx)
            if state is None and self.lenient.setup_events:
                self._tolerated_setup(add, request, STREAM_ITEM_LIFECYCLE,
                                      f"{typ} for {idx_field} {short(idx)} of {item.id!r} without an open part")
                _open_part(item, container, idx, PartState.TEXT_DONE)
            elif state is None or state in _NO_MORE_DELTAS:
                add(STREAM_ITEM_LIFECYCLE, f"{typ} for {idx_field} {short(idx)} of {item.id!r} "
                    + ("without an open part" if state is None else "after its part closed"), request)
            else:
                parts[idx] = PartState.TEXT_DONE
        if base == FC_ARGUMENTS and type(event.get("name")) is not str:  # §3.2: production leaves it out
            self.once_add(add, request, "fc-name", FC_DONE_NAME,
                          f"{typ} for {item.id!r} carries no name (the OpenAPI spec lists it)")
        value = event.get(fld)
        item.done_values[key] = value
        acc = item.deltas.get(key)
        joined = "".join(acc) if acc else ""
        if type(value) is str and joined != value:
            add(STREAM_DELTAS_ADD_UP,
                f"{typ} for {item.id!r}: deltas add up to {short(joined)}, .done has {short(value)}",
                request, pointer="/" + fld)

    # --- the terminal event

    def terminal(self, add: Add, request: Any, typ: str, resp: dict, rid: Any) -> None:
        """The terminal event's response (items 12, 14-16): status, id, usage, items, output."""
        want = TERMINAL_STATUS[typ]
        status = resp.get("status")
        if status != want:
            add(STREAM_TERMINAL_RESPONSE, f"{typ} carries response.status {short(status)}, expected {want!r}",
                request, pointer="/response/status")
        if request.response_id is not None and rid != request.response_id:
            add(STREAM_TERMINAL_RESPONSE, f"{typ} carries response id {short(rid)}, response.created had "
                f"{request.response_id!r}", request, pointer="/response/id")
        if typ == "response.completed" and type(resp.get("usage")) is not dict:
            add(STREAM_TERMINAL_RESPONSE, "response.completed without usage", request, pointer="/response/usage")
        if typ == "response.completed":  # at failed or incomplete, open items are tolerated
            open_items = [item for item in self.order if not item.done]
            if open_items:
                self._open_at_terminal(add, request, open_items, resp.get("output"))
        if self.incomplete_item is not None and typ != "response.incomplete":
            add(STREAM_INCOMPLETE_ITEM_LAST,
                f"item {self.incomplete_item.id!r} ended incomplete but the response ends with {typ}", request)
        if typ != "response.failed" and self.order:  # a failed response may drop partial output
            self._compare_output(add, request, resp)

    @staticmethod
    def _open_at_terminal(add: Add, request: Any, open_items: list, output: Any) -> None:
        """Items without ``output_item.done`` at response.completed: a SHOULD finding for those
        the terminal ``output`` holds (item 16b), the MUST of item 12 for the others."""
        ids = {o.get("id") for o in output if type(o) is dict} if type(output) is list else set()
        held = [item.id for item in open_items if item.id is not None and item.id in ids]
        lost = [item.id for item in open_items if item.id is None or item.id not in ids]
        if held:
            add(STREAM_ITEM_DONE_BEFORE_TERMINAL, f"response.completed while items are open: {held} "
                "(the terminal output holds them)", request)
        if lost:
            add(STREAM_ITEM_LIFECYCLE, f"response.completed while items are open: {lost}", request)

    def _compare_output(self, add: Add, request: Any, resp: dict) -> None:
        """Each streamed item's ``.done`` values against ``response.output`` (by id, else by
        position); a missing, null or empty output after streamed items is reported too (item
        14), as INFO when the profile makes the terminal output optional (item 16a)."""
        output = resp.get("output")
        if not output and self.lenient.terminal_output:
            what = "missing" if "output" not in resp else ("null" if output is None else "empty")
            add(STREAM_DONE_MATCHES_OUTPUT, f"terminal response.output is {what} (the terminal output is "
                "optional for this target, §4.3 item 16a)", request, kind=INFO)
            return
        if output is None:
            add(STREAM_DONE_MATCHES_OUTPUT, "terminal response.output is "
                + ("missing" if "output" not in resp else "null") + " after streamed items", request,
                pointer="/response/output")
            return
        if type(output) is not list:
            return
        by_id = {o["id"]: o for o in output if type(o) is dict and type(o.get("id")) is str}
        missing: list = []
        for pos, item in enumerate(self.order):
            if not item.done:
                continue
            out = by_id.get(item.id) if item.id is not None else None
            if out is None and item.id is None and pos < len(output) and type(output[pos]) is dict:
                out = output[pos]
            if out is None:
                missing.append(item.id if item.id is not None else f"#{pos}")
                continue
            for (base, idx), value in item.done_values.items():
                got = output_value(out, base, idx)
                if got != value:
                    add(STREAM_DONE_MATCHES_OUTPUT, f"terminal response.output item {item.id!r}: "
                        f"{family_label(base, idx)} is {short(got)}, the .done event had {short(value)}", request)
        if missing:
            add(STREAM_DONE_MATCHES_OUTPUT, f"terminal response.output lacks streamed items {missing}"
                + (" (output is empty)" if not output else ""), request)


def _open_part(item: Item, container: str, idx: Any, state: PartState) -> None:
    """A part first seen in a delta or ``.done`` (setup events optional); later parts are
    expected after it."""
    nxt = idx + 1 if type(idx) is int else None
    if container == "part":
        item.parts[idx] = state
        if nxt is not None:
            item.next_part = max(item.next_part, nxt)
    else:
        item.summary_parts[idx] = state
        if nxt is not None:
            item.next_summary = max(item.next_summary, nxt)


def _is_empty_terminal(event: dict, typ: str) -> bool:
    if typ not in TERMINAL_STATUS:
        return False
    resp = event.get("response")
    return type(resp) is dict and not resp.get("output")


def output_value(item: dict, base: str, idx: Any) -> Any:
    """The value of a delta family in an output item (None when absent)."""
    fld, _idx_field, container = FAMILIES[base]
    if container is None:
        return item.get(fld)
    seq = item.get("content" if container == "part" else "summary")
    if type(seq) is not list or type(idx) is not int or not 0 <= idx < len(seq):
        return None
    part = seq[idx]
    return part.get(fld) if type(part) is dict else None


def family_label(base: str, idx: Any) -> str:
    fld, _idx_field, container = FAMILIES[base]
    if container is None:
        return fld
    return f"{'content' if container == 'part' else 'summary'}[{idx}].{fld}"
