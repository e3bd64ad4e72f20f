"""The WebSocket upgrade as the proxy relays it (sans-I/O, RFC 6455 section 4; §1.1 of docs/spec.md).

The client's upgrade request goes upstream as the client wrote it, header lines byte for
byte (``Authorization`` and ``Sec-WebSocket-Key`` too), with two changes: the request target
becomes the upstream URL's path with the client's query parameters added, and ``Host`` names the
upstream; ``Proxy-Authorization`` and ``Proxy-Connection`` are meant for a proxy and stop here.
The upstream's answer goes back to the client unchanged, so the client and the upstream
negotiate subprotocol and extensions between themselves. A request that asks for no upgrade
(the HTTP API beside the socket) keeps its own target. Nothing here logs a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.datastructures import Headers

HEAD_LIMIT = 64 * 1024        # bytes of a request or response head (the line and its headers)
END = b"\r\n\r\n"
FOR_THE_PROXY = frozenset({b"host", b"proxy-authorization", b"proxy-connection"})


class HeadError(ValueError):
    """A head that is not HTTP/1.1 as RFC 9112 writes it (one line for the log)."""


@dataclass
class Head:
    """A request or response head: its first line's parts and its header lines."""
    first: tuple[str, str, str]         # (method, target, version) or (version, status, reason)
    lines: list[bytes]                  # header lines as sent, without CRLF
    headers: Headers                    # the same, to read

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of the header ``name``, in order."""
        return [part.strip() for value in self.headers.get_all(name) for part in value.split(",") if part.strip()]


def split_head(buffer: bytes | bytearray) -> tuple[bytes, bytes] | None:
    """(head, the bytes after it) once ``buffer`` holds a whole head; None until then;
    HeadError when it grows past HEAD_LIMIT."""
    end = buffer.find(END)
    if end < 0:
        if len(buffer) > HEAD_LIMIT:
            raise HeadError(f"no end of the HTTP head within {HEAD_LIMIT} bytes")
        return None
    return bytes(buffer[:end]), bytes(buffer[end + len(END):])


def parse(head: bytes, request: bool) -> Head:
    first, *lines = head.split(b"\r\n")
    parts = first.decode("latin-1").split(" ", 2)
    if request and (len(parts) != 3 or not parts[2].startswith("HTTP/1.")):
        raise HeadError("not an HTTP/1.1 request line")
    if not request:
        if len(parts) == 2:
            parts.append("")
        if len(parts) != 3 or not parts[0].startswith("HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
            raise HeadError("not an HTTP/1.1 status line")
    headers = Headers()
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise HeadError("a malformed header line")
        headers[name.decode("latin-1")] = value.strip(b" \t").decode("latin-1")
    return Head((parts[0], parts[1], parts[2]), lines, headers)


def upstream_target(upstream: str, client_target: str) -> str:
    """The request target upstream: the upstream URL's path and query, the client's query
    parameters added (the path stays the upstream's)."""
    up = urlsplit(upstream)
    query = parse_qsl(up.query, keep_blank_values=True) + parse_qsl(urlsplit(client_target).query,
                                                                     keep_blank_values=True)
    return urlunsplit(("", "", up.path or "/", urlencode(query), ""))


def host_header(upstream: str) -> str:
    parts = urlsplit(upstream)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "wss" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def is_upgrade(request: Head) -> bool:
    """Does the request ask for a WebSocket (``Upgrade: websocket``)?"""
    return any(value.lower() == "websocket" for value in request.values("Upgrade"))


def upstream_request(request: Head, upstream: str) -> bytes:
    """The client's request head as it goes upstream (see the module docstring); a plain HTTP
    request (no upgrade: the HTTP API beside the socket) keeps its own target."""
    method, target, version = request.first
    if is_upgrade(request):
        target = upstream_target(upstream, target)
    out = [f"{method} {target} {version}".encode("latin-1"),
           b"Host: " + host_header(upstream).encode("idna")]
    out += [line for line in request.lines if line.partition(b":")[0].strip().lower() not in FOR_THE_PROXY]
    return b"\r\n".join(out) + END


def plain_response(status: int, reason: str, body: str) -> bytes:
    """The proxy's own answer (its upstream is unreachable, the request is not HTTP)."""
    data = body.encode("utf-8")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode("latin-1") + data


def body_length(response: Head) -> int | None:
    """The body's length a response head announces (Content-Length); None when it does not."""
    values = response.headers.get_all("Content-Length")
    if len(values) == 1 and values[0].strip().isdigit():
        return int(values[0])
    return None
