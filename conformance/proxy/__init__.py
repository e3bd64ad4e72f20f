"""Proxy mode: ``python -m conformance proxy --listen HOST:PORT --upstream URL`` sits between
any client and any target, forwards WebSocket traffic unchanged, runs the streaming monitor on
every connection and writes an "observed traffic" report directory on exit (docs/proxy.md).

* ``observe`` — ``Watch`` (one connection's monitor, reached clauses, capped transcript) and
  ``Observer`` (the session: live finding log, records, report); no I/O
* ``relay``   — ``Relay`` (the asyncio server and upstream sockets) and ``ProxyThread``
* ``cli``     — the ``proxy`` subcommand
"""

from conformance.proxy.observe import Observer, Watch
from conformance.proxy.relay import ProxyThread, Relay

__all__ = ["Observer", "ProxyThread", "Relay", "Watch"]
