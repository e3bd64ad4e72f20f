"""Proxy mode: ``python -m conformance proxy --listen HOST:PORT --upstream URL`` sits between
any client and any target, relays WebSocket traffic unchanged (its bytes), runs the streaming monitor on
every connection and writes an "observed traffic" report directory on exit (docs/proxy.md).

* ``observe`` — ``Watch`` (one connection's monitor, reached clauses, capped transcript) and
  ``Observer`` (the session: live finding log, records, report); no I/O
* ``relay``   — ``Relay`` (the asyncio server: the upgrade, then the bytes both ways) and ``ProxyThread``
* ``handshake`` — the upgrade request and answer as relayed; ``frames`` — ``FrameReader``,
  the frames in a relayed byte stream; both without I/O
* ``cli``     — the ``proxy`` subcommand
"""

from conformance.proxy.observe import Observer, Watch
from conformance.proxy.relay import ProxyThread, Relay

__all__ = ["Observer", "ProxyThread", "Relay", "Watch"]
