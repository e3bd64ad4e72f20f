"""Where the sandwich's gateway listens (docs/clients.md "Gateways", issue 18's port race).

The suite picks a free port, closes it and tells the gateway to listen there; between the two,
another process may take the port (another run's server asking for port 0, say). The gateway
then fails to bind and exits, or keeps trying, and the suite's probe would reach the stranger.
``Sandwich.start`` asks this module three questions and starts again on a new port when the
answer is "taken":

* ``accepts``: does anything accept a TCP connection on 127.0.0.1:PORT now;
* ``listeners``: which processes hold a listening socket on that port (Linux ``/proc``; None
  where that cannot be read), each with its process group, session and start time;
* ``owner``: is that the gateway (a process of the group it was started in), a stranger (a
  process that existed before the gateway started, so not one it launched), or unknown (a
  listener we cannot read, or one started later outside its group, e.g. a container's proxy).

Nothing here kills or binds anything; it reads ``/proc`` and opens a TCP connection.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
PROC = Path("/proc")
LISTEN_STATE = "0A"             # /proc/net/tcp's state column for LISTEN
# local addresses a connection to 127.0.0.1 reaches: 127.0.0.1, 0.0.0.0, ::, ::ffff:127.0.0.1
_REACHED = frozenset({"0100007F", "00000000", "0" * 32, "0000000000000000FFFF00000100007F"})
OURS, STRANGER, UNKNOWN = "ours", "stranger", "unknown"


@dataclass(frozen=True)
class Listener:
    """A process that holds a listening socket on the port."""

    pid: int
    group: int          # process group id
    session: int
    started: int        # clock ticks after boot (/proc/PID/stat field 22)
    command: str

    def describe(self) -> str:
        return f"pid {self.pid}: {self.command[:120]}" if self.command else f"pid {self.pid}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str] | None:
    wanted = f"{port:04X}"
    inodes: set[str] = set()
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN_STATE:
                continue
            address, _, local_port = fields[1].partition(":")
            if local_port == wanted and address in _REACHED:
                inodes.add(fields[9])
    return inodes if readable else None


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(process group, session, start time) of ``pid``, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = text[text.rfind(")") + 2:].split()
    try:
        return int(fields[2]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def started(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[2] if stat else None


def listeners(port: int) -> list[Listener] | None:
    """The processes holding a listening socket on ``port``; None where /proc cannot tell.
    Processes whose descriptors we may not read (another user's) are missing from the list."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for proc_dir in PROC.glob("[0-9]*"):
        try:
            holds = any(os.readlink(fd) in targets for fd in (proc_dir / "fd").iterdir())
        except OSError:
            continue
        stat = _stat(int(proc_dir.name)) if holds else None
        if stat is None:
            continue
        try:
            command = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = ""
        found.append(Listener(int(proc_dir.name), stat[0], stat[1], stat[2], command))
    return found


def owner(port: int, gateway_pid: int, gateway_started: int | None) -> tuple[str, Listener | None]:
    """OURS, STRANGER or UNKNOWN for whatever listens on ``port``, with the listener that
    decided it. The gateway was started in a session of its own whose id is its pid."""
    found = listeners(port)
    if not found:
        return UNKNOWN, None
    for listener in found:
        if gateway_pid in (listener.group, listener.session):
            return OURS, listener
    for listener in found:
        if gateway_started is not None and listener.started < gateway_started:
            return STRANGER, listener
    return UNKNOWN, found[0]
