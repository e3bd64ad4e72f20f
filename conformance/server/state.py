"""What the server remembers (spec §4.5-4.7): the connection-local cache and the store.

Pure data structures, no I/O except the optional JSON-lines file of the store.

* ``ConnectionCache``: per connection, the latest response of each lane (``None`` = the
  default lane), §4.5 items 25-26.  A lookup by id searches every lane's entry.
* ``ResponseStore``: store=true responses, per API key, persisted in memory and optionally
  appended to a JSON-lines file; a cache miss hydrates from it (§4.5 item 27).  Nothing is
  put there under ZDR (item 35) or for store=false (item 28).
* ``Entry``: what a later turn needs to continue from a response: its context (the chain's
  inputs and outputs, in order) and the response object itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass

log = logging.getLogger("conformance.server")


class IdFactory:
    """Unique ids: a random per-process prefix and a counter (``resp_<hex>``, ``msg_<hex>``...)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def new(self, prefix: str) -> str:
        return f"{prefix}_{self._prefix}{next(self._counter):010x}"


@dataclass(slots=True)
class Entry:
    id: str
    owner: str
    context: tuple  # items carried into a continuation: earlier inputs + outputs, in order
    response: dict  # the final response object
    store: bool
    lane: str | None = None


ANY_LANE = object()


class ConnectionCache:
    """The connection-local cache: the latest response per lane (P-legacy: one lane)."""

    __slots__ = ("_lanes", "_made", "_older")

    def __init__(self, keep_older: bool = False) -> None:
        self._lanes: dict[str | None, Entry] = {}
        self._made: set | None = None  # only for the store-true-not-cached defect
        # only for the keeps-older-responses defect: the responses a newer one replaced
        self._older: dict[str, Entry] | None = {} if keep_older else None

    def get(self, response_id: str) -> Entry | None:
        for entry in self._lanes.values():
            if entry.id == response_id:
                return entry
        return self._older.get(response_id) if self._older else None

    def remember(self, lane: str | None, entry: Entry) -> None:
        replaced = self._lanes.get(lane)
        if self._older is not None and replaced is not None:
            self._older[replaced.id] = replaced
        self._lanes[lane] = entry

    def forget_lane(self, lane: str | None, made_here: str | None = None) -> None:
        """Only for the store-*-not-cached defects: the lane keeps no latest response."""
        self._lanes.pop(lane, None)
        if made_here is not None:
            if self._made is None:
                self._made = set()
            self._made.add(made_here)

    def made_here(self, response_id: str) -> bool:
        return self._made is not None and response_id in self._made

    def evict(self, response_id: str, lane: str | None | object = ANY_LANE) -> bool:
        """Drop ``response_id``; with ``lane`` only when it is that lane's latest response, so
        that a failed cross-lane fork keeps its parent (§4.4 item 23a, §4.5 item 31)."""
        if self._older and response_id in self._older:
            del self._older[response_id]
            return True
        for key, entry in list(self._lanes.items()):
            if entry.id == response_id:
                if lane is not ANY_LANE and key != lane:
                    return False
                del self._lanes[key]
                return True
        return False

    def lanes(self) -> dict:
        return dict(self._lanes)

    def clear(self) -> None:
        self._lanes.clear()
        if self._older:
            self._older.clear()


class ResponseStore:
    """store=true responses (per key), optionally persisted to a JSON-lines file."""

    def __init__(self, path: str | None = None) -> None:
        self._entries: dict[str, Entry] = {}
        self._path = path
        self._lock = threading.Lock()
        if path and os.path.exists(path):
            self._load(path)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                    if rec.get("op") == "delete":
                        self._entries.pop(rec["id"], None)
                    else:
                        entry = Entry(rec["id"], rec["owner"], tuple(rec["context"]), rec["response"], True)
                        self._entries[entry.id] = entry
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("store %s: skipping unreadable line %d", path, line_number)

    def _append(self, record: dict) -> None:
        if not self._path:
            return
        with self._lock, open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")

    def put(self, entry: Entry) -> None:
        self._entries[entry.id] = entry
        if self._path:
            self._append({"op": "put", "id": entry.id, "owner": entry.owner,
                          "context": list(entry.context), "response": entry.response})

    def get(self, response_id: str, owner: str, any_owner: bool = False) -> Entry | None:
        """The entry if ``owner`` owns it (``any_owner``: only for the tenant defects)."""
        entry = self._entries.get(response_id)
        if entry is None or (entry.owner != owner and not any_owner):
            return None
        return entry

    def delete(self, response_id: str, owner: str, any_owner: bool = False) -> bool:
        entry = self.get(response_id, owner, any_owner)
        if entry is None:
            return False
        del self._entries[response_id]
        self._append({"op": "delete", "id": response_id})
        return True

    def __len__(self) -> int:
        return len(self._entries)


class ClosedCaches:
    """Only for the cache-survives-reconnect defect: the entries of closed connections'
    caches, per API key (the newest ``limit`` per key), consulted by later connections."""

    def __init__(self, limit: int = 1024) -> None:
        self._by_owner: dict[str, dict[str, Entry]] = {}
        self._limit = limit

    def keep(self, owner: str, cache: "ConnectionCache") -> None:
        kept = self._by_owner.setdefault(owner, {})
        for entry in cache.lanes().values():
            kept.pop(entry.id, None)
            kept[entry.id] = entry
        while len(kept) > self._limit:
            del kept[next(iter(kept))]

    def get(self, response_id: str, owner: str) -> Entry | None:
        kept = self._by_owner.get(owner)
        return None if kept is None else kept.get(response_id)


class SharedStoreFalse:
    """Only for the store-false-shared-across-connections defect (and, with ``any_owner``,
    tenant-continues-store-false): a server-wide cache of store=false responses (exactly what
    the spec forbids)."""

    def __init__(self, any_owner: bool = False) -> None:
        self._entries: dict[str, Entry] = {}
        self._any_owner = any_owner

    def put(self, entry: Entry) -> None:
        self._entries[entry.id] = entry

    def get(self, response_id: str, owner: str) -> Entry | None:
        entry = self._entries.get(response_id)
        return entry if entry is not None and (entry.owner == owner or self._any_owner) else None
