"""Streaming monitor for Responses WebSocket server frames (sans-I/O): §1.4, §3, §4.1 item 3,
§4.3, §4.4 and §4.10 of docs/spec.md.

``events`` holds the event facts, ``clauses`` every clause id it reports (with its reach
scope), ``framing`` the frame and schema checks, ``grammar`` the rules of one response,
``requests`` a connection's requests and lanes, ``attribution`` the dispatch table (``RULES``)
and its handlers, which request a frame answers, and ``stream`` the ``StreamMonitor`` facade
that holds these parts (docs/interfaces.md).
"""
from conformance.monitor.requests import Phase, RequestState
from conformance.monitor.events import KNOWN_EVENT_TYPES, TERMINAL_STATUS, TERMINAL_TYPES, WILD_EXTENSIONS
from conformance.monitor.framing import PERMISSIVE, PermissiveSchemas
from conformance.monitor.grammar import Leniency, PartState
from conformance.monitor.records import EXTENSION, INFO, VIOLATION, Finding, Observed
from conformance.monitor.stream import StreamMonitor

__all__ = [
    "Finding",
    "Observed",
    "RequestState",
    "StreamMonitor",
    "PermissiveSchemas",
    "PERMISSIVE",
    "KNOWN_EVENT_TYPES",
    "WILD_EXTENSIONS",
    "TERMINAL_STATUS",
    "TERMINAL_TYPES",
    "Phase",
    "PartState",
    "VIOLATION",
    "EXTENSION",
    "INFO",
    "Leniency",
]
