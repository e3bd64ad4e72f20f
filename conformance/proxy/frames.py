"""WebSocket frames read off a byte stream the proxy relays unchanged (sans-I/O, RFC 6455 section 5).

The relay writes each chunk it reads to the other side as it is, then gives the chunk to the
``FrameReader`` of that direction, which cuts it into frames, unmasks the client's, joins
fragmented messages, inflates permessage-deflate messages (RFC 7692; the client and the
upstream negotiate it between themselves) and returns what the monitor reads: whole text and
binary messages and close frames. Pings and pongs pass through unread. A stream the reader
cannot follow (a reserved opcode, an extension it does not know) is still relayed: the reader
says so once and reads nothing more of that direction. No sockets, no asyncio.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass

from websockets.utils import apply_mask     # the C speedup when websockets has it

MAX_OBSERVED = 64 * 2**20     # bytes of one message kept for the monitor; bigger ones are relayed unread
DEFLATE_TAIL = b"\x00\x00\xff\xff"       # RFC 7692 section 7.2.2: removed by the sender, put back to inflate
NO_STATUS = 1005


class Kind(enum.Enum):
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    TOO_BIG = 100       # a message over MAX_OBSERVED: relayed, not read (data: its size in bytes)
    LOST = 101          # the reader cannot follow this direction any more (data: why)


@dataclass(frozen=True)
class Deflate:
    """What permessage-deflate, as the upstream accepted it, means for one direction."""
    no_context_takeover: bool


def deflate_params(extensions: list[str], from_client: bool) -> Deflate | None | str:
    """The upstream's ``Sec-WebSocket-Extensions`` answer read for one direction: None (no
    compression), a ``Deflate``, or one line naming an extension the reader does not know."""
    found: Deflate | None = None
    for value in extensions:
        for ext in value.split(","):
            name, *params = [p.strip() for p in ext.split(";")]
            if not name:
                continue
            if name.lower() != "permessage-deflate":
                return f"extension {name!r}"
            keys = {p.split("=", 1)[0].strip().lower() for p in params}
            found = Deflate(("client_no_context_takeover" if from_client else "server_no_context_takeover") in keys)
    return found


def close_payload(payload: bytes) -> tuple[int, str]:
    """A close frame's (code, reason); 1005 when it has no code (RFC 6455 section 7.1.5)."""
    if len(payload) < 2:
        return NO_STATUS, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")


class FrameReader:
    """One direction of a WebSocket connection: ``feed(chunk)`` returns the finished
    ``(Kind, data)`` messages in the chunk (data: str for text, bytes for binary, (code, reason)
    for a close)."""

    def __init__(self, masked: bool, deflate: Deflate | None = None) -> None:
        self.masked = masked                  # the client masks its frames (RFC 6455 section 5.3)
        self.deflate = deflate
        self._inflater = zlib.decompressobj(-15) if deflate else None
        self._buf = bytearray()
        self._skip = 0                        # payload bytes of an oversize frame still to pass by
        self._parts: list[bytes] = []         # the frames of a fragmented message so far
        self._opcode = 0                      # that message's opcode
        self._compressed = False
        self._size = 0
        self._too_big = False
        self._need = 0                        # bytes the frame at the buffer's start needs
        self.lost: str | None = None

    def feed(self, data: bytes) -> list[tuple[Kind, object]]:
        if self.lost is not None:
            return []
        out: list[tuple[Kind, object]] = []
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return out
            data = data[self._skip:]
            self._skip = 0
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:         # a big frame still arriving: no copy, no parse
                return out
            data = bytes(buf)
            buf.clear()
        pos = self._frames(data, out)
        if pos < len(data) and self.lost is None and not self._skip:
            buf += data[pos:] if pos else data
        return out

    def _frames(self, data: bytes, out: list) -> int:
        """Read whole frames from ``data``; returns where the first incomplete one starts."""
        pos, end = 0, len(data)
        self._need = 0
        while end - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length, head = second & 0x7F, pos + 2
            if length == 126:
                if end - head < 2:
                    break
                length, head = int.from_bytes(data[head:head + 2], "big"), head + 2
            elif length == 127:
                if end - head < 8:
                    break
                length, head = int.from_bytes(data[head:head + 8], "big"), head + 8
            mask = None
            if second & 0x80:
                if end - head < 4:
                    break
                mask, head = data[head:head + 4], head + 4
            opcode, fin = first & 0x0F, first & 0x80
            if opcode < 8 and (self._too_big or (0 if opcode else self._size) + length > MAX_OBSERVED):
                if not self._oversize(opcode, first, length, out):
                    return end
                if end - head < length:
                    self._skip = length - (end - head)
                    if fin:
                        self._finish_too_big(out)
                    return end
                pos = head + length
                if fin:
                    self._finish_too_big(out)
                continue
            if end - head < length:
                self._need = head + length - pos
                break
            payload = data[head:head + length]
            pos = head + length
            if mask is not None:
                payload = apply_mask(payload, mask)
            if first & 0x70 and not (first & 0x40 and self._inflater is not None and opcode in (1, 2)):
                self._lose(f"a frame with reserved bits 0x{first & 0x70:02x} set", out)
                return end
            if opcode >= 8:
                if opcode == 8:
                    out.append((Kind.CLOSE, close_payload(payload)))
                elif opcode not in (9, 10):
                    self._lose(f"a frame with reserved opcode {opcode}", out)
                    return end
                continue
            if opcode:                            # the first frame of a message
                if opcode not in (1, 2):
                    self._lose(f"a frame with reserved opcode {opcode}", out)
                    return end
                if self._opcode:
                    self._lose("a new message before the last one's final frame", out)
                    return end
                self._opcode, self._compressed, self._size = opcode, bool(first & 0x40), 0
                if fin:                           # the common case: a message in one frame
                    self._message(payload, out)
                    if self.lost is not None:
                        return end
                    continue
                self._parts = [payload]
            elif not self._opcode:
                self._lose("a continuation frame outside a message", out)
                return end
            else:
                self._parts.append(payload)
            self._size += length
            if fin:
                self._message(b"".join(self._parts), out)
                self._parts = []
                if self.lost is not None:
                    return end
        return pos

    def _message(self, payload: bytes, out: list) -> None:
        opcode, self._opcode = self._opcode, 0
        if self._compressed:
            payload = self._inflate(payload)
            if payload is None:
                out.append((Kind.LOST, self.lost) if self.lost else (Kind.TOO_BIG, MAX_OBSERVED))
                return
        if opcode == 1:
            out.append((Kind.TEXT, payload.decode("utf-8", "replace")))
        else:
            out.append((Kind.BINARY, bytes(payload)))

    def _inflate(self, payload: bytes) -> bytes | None:
        """Inflate one message; None when it grows past MAX_OBSERVED."""
        inflater = self._inflater
        assert inflater is not None
        try:
            data = inflater.decompress(payload + DEFLATE_TAIL, MAX_OBSERVED + 1)
            big = len(data) > MAX_OBSERVED
            while inflater.unconsumed_tail:       # past the cap: inflate on, so the window stays right
                inflater.decompress(inflater.unconsumed_tail, MAX_OBSERVED)
        except zlib.error as exc:
            self._inflater = None
            self.lost = f"a compressed message that does not inflate ({exc})"
            return None
        if self.deflate is not None and self.deflate.no_context_takeover:
            self._inflater = zlib.decompressobj(-15)
        return None if big else data

    def _oversize(self, opcode: int, first: int, length: int, out: list) -> bool:
        """A frame that makes its message bigger than MAX_OBSERVED: relayed, not read. False
        when the direction is lost (a compressed message: its window cannot be followed)."""
        if opcode:
            self._opcode, self._compressed, self._size = opcode, bool(first & 0x40), 0
        if self._compressed:
            self._lose("a compressed message too big to inflate", out)
            return False
        self._too_big, self._parts = True, []
        self._size += length
        return True

    def _finish_too_big(self, out: list) -> None:
        out.append((Kind.TOO_BIG, self._size))
        self._opcode, self._too_big, self._parts, self._size = 0, False, [], 0

    def _lose(self, why: str, out: list) -> None:
        self.lost = why
        self._buf.clear()
        self._parts = []
        out.append((Kind.LOST, why))
