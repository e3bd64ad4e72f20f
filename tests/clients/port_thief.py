"""A pytest plugin for tests/test_sandwich_ports.py (``-p port_thief``, tests/clients on
PYTHONPATH): a process that takes the port the sandwich picked for its gateway, as another
program on the machine may between the suite's pick and the gateway's bind. The thief is the
suite's own controller process, so it existed before the gateway started. Its mode is
``CONFORMANCE_TEST_PORT_THIEF``:

* ``before``: it listens on the picked port before the gateway starts;
* ``race:DIR``: it waits for ``broken_gateway.py port-taken`` to write the port it was given to
  ``DIR/go``, listens there, and writes ``DIR/done``: the gateway then fails to bind. Once
  ``done`` exists, ``port-taken`` is a plain relay;
* ``always:DIR``: as ``race``, for every port the gateway is given.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

MODE_VARIABLE = "CONFORMANCE_TEST_PORT_THIEF"
WATCH_S = 60.0          # the thief watches for the gateway's request this long
POLL_S = 0.02
HELD = pytest.StashKey[list]()      # the thief's listening sockets, closed with the process


def listen_on(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    return sock


def watch(folder: Path, held: list, every: bool) -> None:
    """Take the port named in ``go`` each time it changes (``every``) or once."""
    deadline = time.monotonic() + WATCH_S
    taken: set[str] = set()
    while time.monotonic() < deadline:
        try:
            port = (folder / "go").read_text().strip()
        except OSError:
            port = ""
        if port and port not in taken:
            taken.add(port)
            held.append(listen_on(int(port)))
            (folder / "done").write_text(port)
            if not every:
                return
        time.sleep(POLL_S)


@pytest.hookimpl(trylast=True)      # after conformance.plugin built the settings (tryfirst)
def pytest_configure(config: pytest.Config) -> None:
    from conformance.session import SESSION_KEY
    mode = os.environ.get(MODE_VARIABLE, "")
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or sess.is_worker or sess.settings.gateway is None or not mode:
        return
    held: list = []
    config.stash[HELD] = held
    if mode == "before":
        held.append(listen_on(sess.settings.gateway.port))
        return
    how, _, folder = mode.partition(":")
    threading.Thread(target=watch, args=(Path(folder), held, how == "always"), daemon=True).start()
