"""The proxy's sans-I/O pieces (issue 19 item 6): ``FrameReader`` reads the frames of a byte
stream the relay passes on unchanged (RFC 6455 section 5, RFC 7692), ``handshake`` rewrites only the
request target and ``Host`` of the client's upgrade request. Frames are made with websockets'
own sans-I/O writer, so both ends of the check are independent of the reader."""

from __future__ import annotations

import os
import zlib

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Close, Frame

from conformance.proxy import handshake
from conformance.proxy.frames import MAX_OBSERVED, Deflate, FrameReader, Kind, deflate_params


def wire(*frames: Frame, mask: bool = False, extension=None) -> bytes:
    out = []
    for frame in frames:
        out.append(frame.serialize(mask=mask, extensions=[extension] if extension else None))
    return b"".join(out)


def read(reader: FrameReader, data: bytes, step: int | None = None) -> list:
    if step is None:
        return reader.feed(data)
    out = []
    for i in range(0, len(data), step):
        out += reader.feed(data[i:i + step])
    return out


@pytest.mark.parametrize("step", [None, 1, 3, 1000])
@pytest.mark.parametrize("masked", [False, True])
def test_messages_fragments_and_control_frames_in_any_chunking(step, masked):
    data = wire(Frame(OP_TEXT, '{"type":"a"}'.encode()),
                Frame(OP_BINARY, bytes(range(200)) * 400),                # a 16-bit and a 64-bit length
                Frame(OP_TEXT, "é ☃ ".encode()[:3], fin=False),           # a split multi-byte character
                Frame(OP_PING, b"hi"),                                      # between two fragments
                Frame(OP_CONT, "é ☃ ".encode()[3:], fin=True),
                Frame(OP_CLOSE, Close(4001, "bye").serialize()), mask=masked)
    got = read(FrameReader(masked=masked), data, step)
    assert got == [(Kind.TEXT, '{"type":"a"}'), (Kind.BINARY, bytes(range(200)) * 400), (Kind.TEXT, "é ☃ "),
                   (Kind.CLOSE, (4001, "bye"))]


def test_close_without_a_code_reads_1005():
    assert FrameReader(masked=False).feed(wire(Frame(OP_CLOSE, b""))) == [(Kind.CLOSE, (1005, ""))]


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_permessage_deflate_inflates_each_message(no_context_takeover):
    sender = PerMessageDeflate(remote_no_context_takeover=False, local_no_context_takeover=no_context_takeover,
                               remote_max_window_bits=15, local_max_window_bits=15)
    messages = ['{"type":"response.output_text.delta","delta":"x"}' * 3] * 4
    data = wire(*(Frame(OP_TEXT, m.encode()) for m in messages), mask=True, extension=sender)
    reader = FrameReader(masked=True, deflate=Deflate(no_context_takeover))
    assert read(reader, data, 7) == [(Kind.TEXT, m) for m in messages]


def test_a_fragmented_compressed_message_inflates_whole():
    body = os.urandom(3000).hex().encode()
    deflater = zlib.compressobj(wbits=-15)
    packed = deflater.compress(body) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert packed.endswith(b"\x00\x00\xff\xff")
    packed = packed[:-4]
    first, rest = packed[:100], packed[100:]
    # RSV1 on the first frame only (RFC 7692 section 6.1); websockets' writer refuses RSV1 without its extension
    data = bytes([0x41, len(first)]) + first + bytes([0x80, 126]) + len(rest).to_bytes(2, "big") + rest
    assert FrameReader(masked=False, deflate=Deflate(False)).feed(data) == [(Kind.TEXT, body.decode())]


def test_an_oversize_message_is_passed_by_and_the_next_one_read():
    reader = FrameReader(masked=False)
    header = bytes([0x82, 127]) + (MAX_OBSERVED + 10).to_bytes(8, "big")
    got = reader.feed(header + b"\0" * 1000)
    got += reader.feed(b"\0" * (MAX_OBSERVED + 10 - 1000) + wire(Frame(OP_TEXT, b"next")))
    assert got == [(Kind.TOO_BIG, MAX_OBSERVED + 10), (Kind.TEXT, "next")]


@pytest.mark.parametrize("first_byte, why", [(0x83, "reserved opcode 3"), (0xC1, "reserved bits 0x40"),
                                             (0x80, "continuation frame outside a message")])
def test_a_stream_it_cannot_follow_is_lost_once(first_byte, why):
    reader = FrameReader(masked=False)
    got = reader.feed(bytes([first_byte, 1, 0]) + wire(Frame(OP_TEXT, b"later")))
    assert len(got) == 1 and got[0][0] is Kind.LOST and why in got[0][1]
    assert reader.feed(wire(Frame(OP_TEXT, b"more"))) == []


def test_deflate_params_per_direction():
    offer = ["permessage-deflate; client_no_context_takeover; server_max_window_bits=10"]
    assert deflate_params(offer, from_client=True) == Deflate(True)
    assert deflate_params(offer, from_client=False) == Deflate(False)
    assert deflate_params([], from_client=True) is None
    assert "x-webkit" in deflate_params(["x-webkit-deflate-frame"], from_client=False)


REQUEST = (b"GET /v1/responses?trace=1 HTTP/1.1\r\nHost: 127.0.0.1:8766\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Authorization: Bearer sk-abc\r\nProxy-Authorization: Basic eA==\r\nX-Custom:  v  \r\n\r\n")


def test_the_upgrade_request_changes_only_target_and_host():
    head, rest = handshake.split_head(REQUEST + b"early")
    assert rest == b"early"
    request = handshake.parse(head, request=True)
    out = handshake.upstream_request(request, "wss://api.example.com/v1/responses?api-version=1")
    lines = out.split(b"\r\n")
    assert lines[0] == b"GET /v1/responses?api-version=1&trace=1 HTTP/1.1"
    assert lines[1] == b"Host: api.example.com"
    assert b"Authorization: Bearer sk-abc" in lines and b"X-Custom:  v  " in lines      # byte for byte
    assert b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in lines
    assert not any(line.lower().startswith((b"proxy-authorization", b"host: 127")) for line in lines)
    assert out.endswith(b"\r\n\r\n")
    assert handshake.host_header("ws://127.0.0.1:9000/x") == "127.0.0.1:9000"
    assert handshake.host_header("wss://[::1]:443/x") == "[::1]"


def test_heads_that_are_not_http_are_refused_in_one_line():
    assert handshake.split_head(b"GET / HTTP/1.1\r\n") is None
    with pytest.raises(handshake.HeadError, match="no end of the HTTP head"):
        handshake.split_head(b"x" * (handshake.HEAD_LIMIT + 1))
    with pytest.raises(handshake.HeadError, match="request line"):
        handshake.parse(b"HELLO", request=True)
    with pytest.raises(handshake.HeadError, match="status line"):
        handshake.parse(b"SSH-2.0-OpenSSH", request=False)
    response = handshake.parse(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12", request=False)
    assert response.first[1] == "401" and handshake.body_length(response) == 12


def test_reach_scopes_marked_by_type_only_read_nothing_else():
    """reach.by_monitor answers the BY_TYPE_ONLY scopes from one event per type (the proxy's
    bookkeeping, issue 19 item 6): each must give the same answer for an event and for its bare type."""
    import json
    from pathlib import Path

    from conformance.monitor.clauses import BY_TYPE_ONLY, SCOPE
    from conformance.reach import by_monitor

    events: list = []
    examples = Path(__file__).resolve().parent / "data" / "examples"
    for path in sorted(examples.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        events += [ev for ev in (data if isinstance(data, list) else [data]) if isinstance(ev, dict)]
    events += [{"type": t, "sequence_number": 1} for t in (
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed", "response.incomplete", "response.steer.failed")]
    events += [{"type": "response.output_item.done", "item": {"status": "incomplete"}}, {"type": 7}, {}]
    assert len({ev.get("type") for ev in events if isinstance(ev.get("type"), str)}) > 10
    marked = [applies for applies, _ in SCOPE.values() if applies in BY_TYPE_ONLY]
    assert marked
    for applies in marked:
        for ev in events:
            assert applies(ev) == applies({"type": ev.get("type")}), (applies.__name__, ev)
    creates = [{"type": "response.create"}, {"type": "response.create", "stream_id": "a"}]
    for cut in range(len(events)):
        batch = events[cut:cut + 5]
        every_event = {clause for clause, (applies, needs) in SCOPE.items()
                       if (needs is None or any(needs(c) for c in creates)) and any(applies(ev) for ev in batch)}
        assert by_monitor(batch, creates) == every_event


def test_content_scopes_read_more_than_the_type_only_of_their_types():
    """A scope of clauses.CONTENT_TYPES reads the content of its listed types only: for an event
    of any other type it answers as for the bare type (the proxy asks it only about those)."""
    from conformance.monitor.clauses import CONTENT_TYPES

    assert CONTENT_TYPES
    events = [{"type": t, "item": {"status": s}, "response": {"status": s}, "status": s}
              for t in ("response.output_item.added", "response.output_item.done", "response.incomplete",
                        "response.completed", "response.content_part.done", "error", "x.custom")
              for s in ("incomplete", "completed", None)]
    reads_content = False
    for applies, types in CONTENT_TYPES.items():
        for ev in events:
            bare = applies({"type": ev["type"]})
            if ev["type"] not in types:
                assert applies(ev) == bare, (applies.__name__, ev)
            reads_content |= applies(ev) != bare
    assert reads_content  # a listed type's content does change some answer


def test_watch_reaches_what_every_event_of_its_batches_reaches():
    """The proxy gives reach only the first event of each type of a batch and the events a
    scope that reads more applies to: the clauses reached are those of every event, batch by
    batch, on the example streams and mutations of them (incomplete items, lanes, errors)."""
    import json
    import random

    from conformance import reach
    from conformance import verdicts as V
    from conformance.proxy.observe import REACH_BATCH, Watch
    from monitor_mutations import load_streams, mutate

    registry = V.ClauseRegistry.load(V.default_clauses_path())
    bases = load_streams()
    rng = random.Random(6)
    streams = [frames * 9 for frames in bases] + [mutate(rng.choice(bases), rng) * 9 for _ in range(150)]
    # an incomplete item whose output_item.done is not the first of its batch
    done = {"type": "response.output_item.done", "output_index": 0, "sequence_number": 3}
    streams.append([("c", {"type": "response.create"}), ("s", dict(done, item={"status": "completed"})),
                    ("s", dict(done, item={"status": "incomplete"}))])
    seen = set()
    for number, frames in enumerate(streams):
        watch = Watch(1, "127.0.0.1:1", registry=registry, schemas=False)
        expected: set = set()
        batch: list = []
        creates: dict = {}
        for direction, msg in frames:
            data = msg if direction == "raw" else json.dumps(msg)
            if direction == "c":
                watch.client_frame(data)
                if isinstance(msg, dict) and msg.get("type") == "response.create":
                    creates.setdefault("stream_id" in msg, msg)
                continue
            watch.upstream_frame(data)
            event = _parsed(data)
            if event is not None:
                batch.append(event)
                if len(batch) >= REACH_BATCH:
                    expected |= reach.by_monitor(batch, creates.values())
                    batch = []
        watch.close("upstream closed", judge=True)
        expected |= reach.by_monitor(batch, creates.values())
        assert watch.recorder.checked == expected, f"stream {number}"
        seen |= expected
    assert {"STREAM-INCOMPLETE-ITEM-LAST", "ERR-ENVELOPE", "LANE-TAGGED"} <= seen


def _parsed(data):
    """What StreamMonitor.feed gives as ``message`` for a text frame holding a typed event."""
    from conformance.monitor import StreamMonitor

    return StreamMonitor(False).feed(data).message
