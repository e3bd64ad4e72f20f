"""What a client-mode scenario recorded: the client's connections and frames as the reference
server saw them, the server's answers, and the client process's outcome. Plain data, written
by ``conformance.clientmode.stage`` and ``runner``, read by ``judge``; it never holds the key
(only whether and where the client sent it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Direction(enum.StrEnum):
    IN = "in"       # client -> server
    OUT = "out"     # server -> client


@dataclass
class Frame:
    at: float                 # seconds since the scenario started
    direction: Direction
    text: bool                # a text frame (False: binary)
    data: str                 # the payload (binary frames decoded with replacement)
    size: int                 # bytes on the wire
    event: dict | None = None     # the parsed JSON object, when it is one


@dataclass
class Connection:
    index: int
    opened: float
    path: str
    key_in_header: bool       # Authorization: Bearer <the scenario's key>
    key_in_url: bool          # the key (or any part of it) in the path or query
    refused: int = 0          # HTTP status of a refused upgrade (0: accepted)
    closed: float | None = None
    closed_by: str = ""       # "server" or "client"
    close_code: int | None = None
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Process:
    """The client command's outcome."""

    returncode: int | None    # None: killed at the deadline
    duration_s: float
    timed_out: bool
    stdout: str = ""
    stderr: str = ""
    start_error: str = ""     # the command could not be started at all


@dataclass
class Recording:
    connections: list[Connection] = field(default_factory=list)
    dead_ids: list[str] = field(default_factory=list)     # ids answered previous_response_not_found
    limit_errors: list[str] = field(default_factory=list)  # when each lifetime error went out
    process: Process | None = None

    def frames(self, direction: Direction | None = None) -> list[tuple[Connection, Frame]]:
        """Every frame in time order with its connection."""
        rows = [(c, f) for c in self.connections for f in c.frames if direction is None or f.direction is direction]
        return sorted(rows, key=lambda row: row[1].at)
