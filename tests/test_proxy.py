"""Proxy mode (issue 12 part 1, docs/proxy.md): the official openai SDK and openai-agents drive
the reference server through ``conformance.proxy`` — clean, then with each named defect the
monitor can see in a client's traffic (its clause must be reported) — plus the transport
promises: frames, close codes, subprotocol, compression and headers unchanged, the key never in
a log or report, bad upstreams reported without crashing the proxy, memory capped, and the CLI
writing the report on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import openai
import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conformance import verdicts as V
from conformance.proxy import Observer, ProxyThread
from conformance.reach import MONITOR_SCOPE
from conformance.server import DEFECTS, ServerThread
from conformance.target import load_profile

pytestmark = pytest.mark.timeout(60)

KEY = "sk-proxy-test-0123456789abcdef"
MODEL = "gpt-test"
TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "certificate.json").read_text(encoding="utf-8"))
TOOL = {"type": "function", "name": "get_weather", "description": "Get current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False}, "strict": True}
# the defects the monitor can see in a client's traffic: their clause is one it governs
# a defect of a profile fact (Defect.profile) is tolerated under this proxy's profile (openai)
VISIBLE = sorted(name for name, d in DEFECTS.items() if d.clause in MONITOR_SCOPE and not d.profile)
# two creates sent back to back interleave only when the first is still streaming
SERVER_OPTIONS = {"interleave-responses": {"ttft_ms": 100}}


class Proxied:
    """A reference server (optionally with defects) behind a proxy; ``log`` collects stderr lines."""

    def __init__(self, upstream: str | None = None, transcript_cap: int = 400, **server: object) -> None:
        self.server = None
        if upstream is None:
            self.server = ServerThread(api_keys=(KEY,), **server).start()
            upstream = self.server.ws_url
        self.log: list[str] = []
        self.observer = Observer(registry=V.ClauseRegistry.load(V.default_clauses_path()), upstream=upstream,
                                 listen="127.0.0.1:0", profile=load_profile("openai"),
                                 transcript_cap=transcript_cap, log=self.log.append)
        self.proxy = ProxyThread(upstream, self.observer).start()

    def stop(self) -> None:
        self.proxy.stop()
        if self.server is not None:
            self.server.stop()

    def findings(self) -> set[str]:
        return {o["clause"] for r in self.observer.records() for o in r["observations"] if not o["ok"]}


@pytest.fixture
def proxied():
    made: list[Proxied] = []

    def make(**kw: object) -> Proxied:
        made.append(Proxied(**kw))
        return made[-1]
    yield make
    for p in made:
        p.stop()


def _until_done(conn, timeout: float = 3.0) -> list:
    """Events of one response via the SDK; a deadline instead of the SDK's endless wait (the
    SDK's socket is read directly so that a defective stream cannot hang the test)."""
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            raw = conn._connection.recv(timeout=max(0.01, deadline - time.monotonic()))
        except (TimeoutError, ConnectionClosed):
            break
        try:
            ev = conn.parse_event(raw)
        except Exception:  # noqa: BLE001 - a defect's unparseable frame: the proxy judges it
            continue
        events.append(ev)
        if getattr(ev, "type", None) in TERMINAL:
            break
    return events


class _Stalled(Exception):
    """A turn ended by its deadline."""


def _turn(conn, out: list) -> list:
    """One turn's events (appended to ``out``); ``_Stalled`` when it had no terminal event."""
    events = _until_done(conn)
    out.append(events)
    if not events or getattr(events[-1], "type", None) not in TERMINAL:
        raise _Stalled()
    return events


def sdk_traffic(base_url: str) -> list:
    """What an SDK user does: chained turns, a forced tool call and its output, a cut-short
    turn, a continuation of an unknown id (an error), a turn and an error on a named lane, and
    two creates back to back. A turn that ends by its deadline (no terminal event: the SDK
    would wait forever) ends the conversation there, as it would an SDK user's."""
    client = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=10)
    out = []
    try:
        with client.responses.connect() as conn:
            conn.response.create(model=MODEL, store=False, input="Hello there.")
            t1 = _turn(conn, out)
            rid = getattr(getattr(t1[-1], "response", None), "id", None) if t1 else None
            conn.response.create(model=MODEL, store=False, previous_response_id=rid, tools=[TOOL],
                                 tool_choice="required", input="What's the weather in Paris?")
            t2 = _turn(conn, out)
            resp = getattr(t2[-1], "response", None) if t2 else None
            calls = [i for i in (getattr(resp, "output", None) or []) if getattr(i, "type", "") == "function_call"]
            if calls:
                conn.response.create(model=MODEL, store=False, previous_response_id=resp.id, tools=[TOOL],
                                     input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                             "output": '{"temp_c": 21}'}])
                _turn(conn, out)
            conn.response.create(model=MODEL, store=False, max_output_tokens=16, input="Tell me a long story " * 20)
            _turn(conn, out)
            conn.response.create(model=MODEL, store=False, previous_response_id="resp_unknown000", input="x")
            _turn(conn, out)
            # a named lane (§4.4 items 20-23a): its events and its request errors carry the stream_id
            conn.response.create(model=MODEL, store=False, stream_id="lane-a", input="On a lane.")
            _turn(conn, out)
            conn.response.create(model=MODEL, store=False, stream_id="lane-a",
                                 previous_response_id="resp_unknown001", input="x")
            _turn(conn, out)
            conn.response.create(model=MODEL, store=False, input="first of two")
            conn.response.create(model=MODEL, store=False, input="second of two")
            _turn(conn, out)
            _turn(conn, out)
    except (ConnectionClosed, _Stalled):  # a defect closed the socket or stalled the stream: what came
        pass                               # so far is what the proxy judged
    return out


def _validate(cert: dict) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(cert)]
    assert not errors, errors


# --- the official SDK ------------------------------------------------------------------------

def test_sdk_clean_through_proxy_has_no_findings(proxied, tmp_path):
    p = proxied()
    turns = sdk_traffic(p.proxy.base_url())
    assert [t[-1].type for t in turns] == ["response.completed"] * 3 + ["response.incomplete", "error",
                                                                        "response.completed", "error",
                                                                        "response.completed", "response.completed"]
    p.proxy.stop()
    paths = p.observer.write(tmp_path, "20260101-000000-abcdef")
    cert = json.loads(Path(paths["certificate"]).read_text(encoding="utf-8"))
    _validate(cert)
    assert p.findings() == set() and p.log == []
    assert cert["mode"] == "observed" and cert["overall"] == "PASS"
    assert cert["certification"]["certified"] is False
    assert "observed traffic" in cert["certification"]["reasons"][0]
    assert cert["observed"]["connections"] == 1 and cert["observed"]["frames"]["from_client"] == 9
    passed = {r["id"] for r in cert["clauses"] if r["verdict"] == "PASS"}
    assert {"STREAM-ONE-TERMINAL", "SEQ-FROM-ZERO-BY-ONE", "ERR-ENVELOPE", "STREAM-INCOMPLETE-ITEM-LAST"} <= passed
    assert cert["usage"]["creates"] == 9 and cert["usage"]["input_tokens"] > 0
    assert "observed traffic" in Path(paths["html"]).read_text(encoding="utf-8")
    assert not (tmp_path / "transcripts").exists()
    assert len(p.observer.watches[0].transcript) == 0       # a clean connection keeps no frames
    assert KEY not in "".join(f.read_text(encoding="utf-8") for f in tmp_path.rglob("*") if f.is_file())


@pytest.mark.parametrize("defect", VISIBLE)
def test_sdk_through_proxy_reports_the_defects_clause(proxied, tmp_path, defect):
    p = proxied(defects=(defect,), **SERVER_OPTIONS.get(defect, {}))
    sdk_traffic(p.proxy.base_url())
    p.proxy.stop()
    clause = DEFECTS[defect].clause
    assert clause in p.findings(), (defect, p.findings())
    assert any(f" {clause} " in line for line in p.log)                # the live log said so
    paths = p.observer.write(tmp_path, "20260101-000000-abcdef")
    cert = json.loads(Path(paths["certificate"]).read_text(encoding="utf-8"))
    _validate(cert)
    row = next(r for r in cert["clauses"] if r["id"] == clause)
    assert row["verdict"] in ("FAIL", "NON-STRICT")
    transcript = next(tmp_path.glob("transcripts/*.txt")).read_text(encoding="utf-8")
    assert ">> " in transcript and "<< " in transcript and KEY not in transcript


# --- openai-agents ---------------------------------------------------------------------------

def _agents_run(base_url: str) -> str:
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)          # no trace export to the network

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get current weather for a city."""
        return f"{city}: 21 C"

    agent = agents.Agent(name="weather", instructions="Be terse.", tools=[get_weather],
                         model_settings=agents.ModelSettings(tool_choice="required", store=False))

    async def go() -> str:
        async with agents.responses_websocket_session(api_key=KEY, base_url=base_url) as session:
            agent_ = agent.clone(model=MODEL, reset_tool_choice=True)
            result = await asyncio.wait_for(session.run(agent_, "Weather in Paris?", max_turns=4), 20)
            return str(result.final_output)
    return asyncio.run(go())


def test_openai_agents_clean_through_proxy(proxied):
    p = proxied()
    _agents_run(p.proxy.base_url())
    p.proxy.stop()
    creates = sum(r["usage"].get("creates", 0) for r in p.observer.records())
    assert creates >= 2                       # the tool call and the turn that used its output
    assert p.findings() == set() and p.log == []


@pytest.mark.parametrize("defect", ["sequence-gaps", "deltas-dont-add-up", "created-not-first"])
def test_openai_agents_through_proxy_reports_the_defects_clause(proxied, defect):
    p = proxied(defects=(defect,))
    try:
        _agents_run(p.proxy.base_url())
    except Exception:  # noqa: BLE001 - the agent may give up on a broken stream; the proxy still judged it
        pass
    p.proxy.stop()
    assert DEFECTS[defect].clause in p.findings()


# --- transport promises against a scripted upstream -------------------------------------------

class EchoUpstream:
    """An upstream that records the handshake, echoes every message, and on "bye" closes with
    code 4001; it picks subprotocol "resp.v2" when offered."""

    def __init__(self) -> None:
        self.requests: list = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handler(ws) -> None:
            async for msg in ws:
                if msg == "bye":
                    await ws.close(4001, "scripted close")
                    return
                await ws.send(msg)

        def select(conn, offered):
            return "resp.v2" if "resp.v2" in offered else None

        def process_request(conn, request):
            self.requests.append(request)

        async def main() -> None:
            self.server = await serve(handler, "127.0.0.1", 0, select_subprotocol=select,
                                      process_request=process_request)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            try:
                await self.server.serve_forever()
            except asyncio.CancelledError:
                pass
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        assert ready.wait(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/responses?api-version=1"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(5)


@pytest.fixture
def echo():
    e = EchoUpstream()
    yield e
    e.stop()


def test_frames_close_code_subprotocol_compression_and_headers_pass_unchanged(proxied, echo, tmp_path):
    p = proxied(upstream=echo.url)
    text = '{"type":"response.create","model":"m","input":"é ☃ \\u0000"}'
    binary = bytes(range(256))
    with connect(p.proxy.url + "?trace=1", additional_headers={"Authorization": f"Bearer {KEY}", "X-Custom": "v"},
                 subprotocols=["resp.v2", "other"], open_timeout=5, proxy=None) as ws:
        assert ws.subprotocol == "resp.v2"
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        ws.send(text)
        assert ws.recv(timeout=5) == text
        ws.send(binary)
        assert ws.recv(timeout=5) == binary
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.protocol.close_rcvd.code == 4001 and ws.protocol.close_rcvd.reason == "scripted close"
    req = echo.requests[0]
    assert req.headers["Authorization"] == f"Bearer {KEY}" and req.headers["X-Custom"] == "v"
    assert req.path == "/v1/responses?api-version=1&trace=1"
    assert "permessage-deflate" in req.headers["Sec-WebSocket-Extensions"]
    assert req.headers.get_all("Sec-WebSocket-Protocol") == ["resp.v2, other"]
    p.proxy.stop()
    p.observer.write(tmp_path, "20260101-000000-abcdef")
    everything = "\n".join(p.log) + "".join(f.read_text(encoding="utf-8") for f in tmp_path.rglob("*") if f.is_file())
    assert KEY not in everything
    assert p.observer.watches[0].frames == {"from_client": 3, "from_upstream": 2}


def test_fragments_and_pings_pass_through_and_are_observed(proxied, echo):
    """The relay passes bytes on (issue 19 item 6): a fragmented message reaches the upstream
    whole, a ping is answered by the upstream, and the observer read the message joined."""
    p = proxied(upstream=echo.url)
    with connect(p.proxy.url, open_timeout=5, proxy=None, compression=None) as ws:
        ws.send(iter(['{"type":"frag', 'mented"}']))
        assert ws.recv(timeout=5) == '{"type":"fragmented"}'
        assert ws.ping(b"are you there").wait(5)
    deadline = time.monotonic() + 5
    while not p.observer.watches[0].closed and time.monotonic() < deadline:
        time.sleep(0.02)
    w = p.observer.watches[0]
    assert w.frames == {"from_client": 1, "from_upstream": 1}
    assert any("client closed: code 1000" in n for n in w.notes)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (cryptography)."""
    import datetime
    import ipaddress
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_wss_upstream_is_reached_over_tls(proxied, tmp_path):
    """The proxy listens in the clear and speaks TLS to a wss upstream, checking its certificate."""
    import ssl
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict = {}

    async def echo_once(ws) -> None:
        async for msg in ws:
            await ws.send(msg)

    async def main() -> None:
        state["server"] = await serve(echo_once, "127.0.0.1", 0, ssl=server_tls)
        state["port"] = state["server"].sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        ready.set()
        await state["stop"].wait()
        state["server"].close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        p = proxied(upstream=f"wss://127.0.0.1:{state['port']}/v1/responses")
        p.proxy.relay._tls = ssl.create_default_context(cafile=str(cert))   # trust the test's own CA
        with connect(p.proxy.url, open_timeout=5, proxy=None) as ws:
            ws.send('{"type":"response.create"}')
            assert ws.recv(timeout=5) == '{"type":"response.create"}'
        p.proxy.relay._tls = None             # the system CAs do not know this certificate: a 502
        with pytest.raises(InvalidStatus) as exc:
            connect(p.proxy.url, open_timeout=5, proxy=None)
        assert exc.value.response.status_code == 502
        assert any("SSLCertVerificationError" in line for line in p.log)
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(5)


def test_client_close_code_reaches_the_upstream(proxied, echo):
    p = proxied(upstream=echo.url)
    with connect(p.proxy.url, open_timeout=5, proxy=None) as ws:
        ws.send("ping-text")
        assert ws.recv(timeout=5) == "ping-text"
        ws.close(4002, "client says bye")
    deadline = time.monotonic() + 5
    while not p.observer.watches[0].closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "client closed: code 4002 reason 'client says bye'" in p.observer.watches[0].notes


# --- bad input: reported, never a crash --------------------------------------------------------

def test_refused_handshake_is_forwarded_and_reported(proxied, tmp_path):
    p = proxied()
    with pytest.raises(InvalidStatus) as exc:
        connect(p.proxy.url, additional_headers={"Authorization": "Bearer sk-wrong-key-000000000000"},
                open_timeout=5, proxy=None)
    assert exc.value.response.status_code == 401
    assert b"invalid_api_key" in exc.value.response.body or exc.value.response.body
    # the proxy goes on serving
    client = openai.OpenAI(api_key=KEY, base_url=p.proxy.base_url(), max_retries=0, timeout=10)
    with client.responses.connect() as conn:
        conn.response.create(model=MODEL, store=False, input="still there?")
        assert _until_done(conn)[-1].type == "response.completed"
    p.proxy.stop()
    assert p.observer.refused == 1 and any("HTTP 401" in line for line in p.log)
    assert p.observer.nothing_relayed() is None       # one connection was relayed
    assert not any("sk-wrong-key" in line for line in p.log)
    cert = json.loads(Path(p.observer.write(tmp_path, "20260101-000000-abcdef")["certificate"]).read_text())
    _validate(cert)
    assert [c["verdict"] for c in cert["cases"]] == ["SKIPPED", "PASS"]


def test_plain_http_requests_are_relayed_with_their_path_and_not_observed(proxied):
    """The HTTP API beside the socket (GET /v1/responses/{id}) reaches the upstream as sent."""
    import urllib.error
    import urllib.request
    p = proxied()
    request = urllib.request.Request(p.proxy.base_url() + "/responses/resp_nowhere",
                                     headers={"Authorization": f"Bearer {KEY}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(request, timeout=5)
    assert exc.value.code == 404 and "error" in json.loads(exc.value.read())
    p.proxy.stop()
    assert p.observer.records() == [] and p.log == []


def test_unreachable_upstream_answers_502_and_is_reported(proxied, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                         # nothing listens there now
    p = proxied(upstream=f"ws://127.0.0.1:{port}/v1/responses")
    for _ in range(2):
        with pytest.raises(InvalidStatus) as exc:
            connect(p.proxy.url, open_timeout=5, proxy=None)
        assert exc.value.response.status_code == 502
    p.proxy.stop()
    assert p.observer.unreachable == 2
    assert p.observer.nothing_relayed() == ("2 client handshake(s), none relayed: "
                                            "the upstream was unreachable for 2 handshake(s)")
    cert = json.loads(Path(p.observer.write(tmp_path, "20260101-000000-abcdef")["certificate"]).read_text())
    _validate(cert)
    # nothing was relayed, so nothing was observed: the one-line NOT-USABLE verdict, not ERROR
    assert cert["overall"] == "NOT-USABLE" and "upstream unreachable" in cert["cases"][0]["messages"][0]


def test_a_request_that_is_not_http_gets_400_and_the_proxy_serves_on(proxied):
    import socket
    p = proxied()
    with socket.create_connection(("127.0.0.1", p.proxy.port), timeout=5) as raw:
        raw.sendall(b"hello there\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"request line" in answer
    with connect(p.proxy.url, additional_headers={"Authorization": f"Bearer {KEY}"}, open_timeout=5, proxy=None) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, "input": "hi"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
    p.proxy.stop()
    assert p.observer.problems == [] and len(p.observer.watches) == 1


def test_an_upstream_that_does_not_speak_http_gets_the_client_a_502(proxied):
    import socket
    junk = socket.socket()
    junk.bind(("127.0.0.1", 0))
    junk.listen()

    def answer() -> None:
        conn, _ = junk.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            time.sleep(0.5)

    threading.Thread(target=answer, daemon=True).start()
    p = proxied(upstream=f"ws://127.0.0.1:{junk.getsockname()[1]}/v1/responses")
    try:
        with pytest.raises(InvalidStatus) as exc:
            connect(p.proxy.url, open_timeout=5, proxy=None)
        assert exc.value.response.status_code == 502
    finally:
        junk.close()
    p.proxy.stop()
    assert p.observer.unreachable == 1 and "status line" in p.observer.problems[0]["messages"][0]


def test_client_vanishing_mid_response_is_not_the_upstreams_fault(proxied):
    p = proxied(ttft_ms=300)
    ws = connect(p.proxy.url, additional_headers={"Authorization": f"Bearer {KEY}"}, open_timeout=5, proxy=None)
    ws.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, "input": "hi"}))
    ws.recv(timeout=5)
    ws.socket.close()                                 # no close frame
    deadline = time.monotonic() + 5
    while not (p.observer.watches and p.observer.watches[0].closed) and time.monotonic() < deadline:
        time.sleep(0.02)
    w = p.observer.watches[0]
    assert w.closed and any("client disconnected without a close frame" in n for n in w.notes)
    assert p.findings() == set()
    # and the proxy still serves
    with connect(p.proxy.url, additional_headers={"Authorization": f"Bearer {KEY}"}, open_timeout=5, proxy=None) as ws2:
        ws2.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, "input": "hi"}))
        assert json.loads(ws2.recv(timeout=5))["type"] == "response.created"


def test_transcript_is_capped_per_connection(proxied, tmp_path):
    p = proxied(defects=("sequence-gaps",), transcript_cap=5)
    sdk_traffic(p.proxy.base_url())
    p.proxy.stop()
    w = p.observer.watches[0]
    assert sum(w.frames.values()) > 50 and len(w.transcript) == 5
    p.observer.write(tmp_path, "20260101-000000-abcdef")
    lines = next(tmp_path.glob("transcripts/*.txt")).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 5


# --- the command line ---------------------------------------------------------------------------

def _closed_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                         # nothing listens there now
    return port


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "conformance", "proxy", "--listen", "127.0.0.1:0", *args],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_cli_writes_the_report_on_sigterm(tmp_path):
    """Also: an http(s) API base as --target (the socket URL derived like the suite's --target),
    and the profile from --target-config."""
    srv = ServerThread(api_keys=(KEY,)).start()
    config = tmp_path / "my profile" / "acme.toml"
    config.parent.mkdir()
    config.write_text('name = "acme-gw"\nextends = "openai"\n', encoding="utf-8")
    proc = _cli("--target", srv.server.base_url, "--target-config", str(config), "--report-dir", str(tmp_path / "rep"))
    try:
        line = proc.stderr.readline()
        assert "listening on ws://127.0.0.1:" in line, line
        url = line.split("listening on ")[1].split(" ")[0]
        with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}, open_timeout=5, proxy=None) as ws:
            ws.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, "input": "hi"}))
            while json.loads(ws.recv(timeout=5))["type"] != "response.completed":
                pass
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop()
    assert proc.returncode == 0, rest
    cert = json.loads((tmp_path / "rep" / "certificate.json").read_text(encoding="utf-8"))
    _validate(cert)
    assert cert["mode"] == "observed" and cert["observed"]["connections"] == 1
    assert cert["observed"]["upstream"] == srv.ws_url and cert["profile"] == "acme-gw"
    assert (tmp_path / "rep" / "index.html").is_file() and "observed-traffic report" in rest
    assert KEY not in rest and "warning" not in rest and "nothing observed" not in rest


def _rest(proc: subprocess.Popen) -> str:
    """stderr after the lines read so far: communicate() would skip what readline() buffered."""
    proc.wait(timeout=20)            # the proxy writes a few lines only: the pipe never fills
    return proc.stderr.read()


def test_cli_with_nothing_reaching_the_upstream_warns_at_start_and_exits_6(tmp_path):
    """Issue 15 item 10: the upstream is down (a closed port): one warning line at start, the
    proxy serves on (502 to a client), and it exits 6, not 0: nothing was observed."""
    proc = _cli("--upstream", f"ws://127.0.0.1:{_closed_port()}/v1/responses", "--duration", "1.5",
                "--report-dir", str(tmp_path / "rep"))
    try:
        line = proc.stderr.readline()
        url = line.split("listening on ")[1].split(" ")[0]
        with pytest.raises(InvalidStatus) as exc:
            connect(url, open_timeout=5, proxy=None)
        assert exc.value.response.status_code == 502
        rest = _rest(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 6, rest
    warnings = [ln for ln in rest.splitlines() if "warning: upstream down?" in ln]
    assert len(warnings) == 1 and "ConnectionRefusedError" in warnings[0]
    assert "nothing observed: no connection reached the upstream" in rest
    assert "the upstream was unreachable for 1 handshake(s)" in rest and "Traceback" not in rest
    cert = json.loads((tmp_path / "rep" / "certificate.json").read_text())
    # nothing watched: the certificate and badge say so instead of an empty PASS
    assert cert["overall"] == "NOT-USABLE" and cert["observed"]["relayed"] == 0
    assert not cert["certification"]["certified"] and "nothing observed" in " ".join(cert["certification"]["reasons"])
    assert "observed · nothing" in (tmp_path / "rep" / "badge.svg").read_text()


def test_cli_exits_6_when_every_handshake_was_refused(tmp_path):
    srv = ServerThread(api_keys=(KEY,)).start()
    proc = _cli("--upstream", srv.ws_url, "--report-dir", str(tmp_path / "rep"))
    try:
        url = proc.stderr.readline().split("listening on ")[1].split(" ")[0]
        with pytest.raises(InvalidStatus) as exc:
            connect(url, additional_headers={"Authorization": "Bearer sk-wrong-key-000000000000"},
                    open_timeout=5, proxy=None)
        assert exc.value.response.status_code == 401
        proc.send_signal(signal.SIGTERM)
        rest = _rest(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop()
    assert proc.returncode == 6, rest
    assert "none relayed: the upstream refused 1 handshake(s)" in rest and "warning" not in rest
    assert "sk-wrong-key" not in rest


@pytest.mark.parametrize("args, message", [
    (["--upstream", "ftp://x/v1"], "expected a ws:// or wss:// endpoint URL"),
    (["--target", "wss://x:port/v1/responses"], "is not a number from 1 to 65535"),
    (["--upstream", "ws://127.0.0.1:1/v1", "--target-config", "no/such/acme.toml"], "no/such/acme.toml"),
    (["--upstream", "ws://127.0.0.1:1/v1", "--listen", "nonsense"], "HOST:PORT"),
    (["--upstream", "ws://127.0.0.1:1/v1", "--profile", "no-such-profile"], "no-such-profile"),
])
def test_cli_bad_options_get_a_clear_message(args, message):
    r = subprocess.run([sys.executable, "-m", "conformance", "proxy", *args], capture_output=True, text=True,
                       timeout=30, cwd=ROOT)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_observer_checks_the_schemas_its_profile_claims():
    registry = V.ClauseRegistry.load(V.default_clauses_path())
    for name, variant in (("open-responses", "P-open"), ("openai", None)):
        obs = Observer(registry=registry, upstream="ws://127.0.0.1:9/v1/responses", listen="127.0.0.1:0",
                       profile=load_profile(name))
        assert getattr(obs.schemas, "variant", None) == variant, name
