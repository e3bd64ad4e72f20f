"""The reference server: a faithful, deterministic implementation of the OpenAI Responses
API WebSocket mode (profile ``openai``: P-legacy on the default lane, concurrent ``stream_id``
lanes, steering behind a switch; switches for xAI and Open Responses), used
as the suite's embedded default target and as an offline mock for client developers.

Layout (protocol logic apart from I/O):

* ``config``   — ``ServerConfig``, profiles, resolved ``Settings``
* ``defects``  — ``DEFECTS``: named ways to break one behaviour each
* ``validate`` — client event parsing and ``response.create`` validation (§2, §4.2)
* ``engine``   — the deterministic stand-in for a model
* ``state``    — connection cache (per lane) and the store (§4.5-4.7)
* ``stream``   — a generation as the event sequence of one response (§3, §4.3)
* ``core``     — one turn, transport-independent (continuation, eviction, warm-up)
* ``session``  — one WebSocket connection: a FIFO per lane, the active and lane-name
  limits, busy policy, steering, lifetime (§1.5, §4.4, §4.9)
* ``app``      — aiohttp wiring, ``ReferenceServer``, ``ServerThread``
* ``__main__`` — the command line
"""

from .app import ReferenceServer, ServerThread
from .config import PROFILES, ServerConfig
from .defects import DEFECTS, Defect

__all__ = ["DEFECTS", "Defect", "PROFILES", "ReferenceServer", "ServerConfig", "ServerThread"]
