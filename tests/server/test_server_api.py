"""The Python API: ReferenceServer inside a running loop, ServerThread, URLs."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from srv_helpers import KEY_A, SCHEMAS, WS

from conformance.server import ReferenceServer, ServerConfig, ServerThread

pytestmark = pytest.mark.timeout(30)


def test_reference_server_in_a_running_loop():
    async def main():
        server = ReferenceServer(ServerConfig(api_keys=(KEY_A,)))
        await server.start()
        try:
            assert server.port and server.port > 0
            assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
            assert server.ws_url == f"ws://127.0.0.1:{server.port}/v1/responses"
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.ws_url, headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
                    await ws.send_str(json.dumps({"type": "response.create", "model": "m", "input": "hi"}))
                    types = []
                    while True:
                        msg = await ws.receive(timeout=5)
                        types.append(json.loads(msg.data)["type"])
                        if types[-1] == "response.completed":
                            break
            assert types[0] == "response.created"
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_server_thread_stop_closes_open_connections_and_restarts():
    srv = ServerThread(api_keys=(KEY_A,)).start()
    ws = WS(srv.ws_url)
    assert ws.turn(input="hi").status == "completed"
    srv.stop()
    t = ws.collect(timeout=5)
    assert t.closed
    ws.close()
    with ServerThread(ServerConfig(api_keys=(KEY_A,))) as again:
        with WS(again.ws_url) as ws2:
            assert ws2.turn(input="hi").status == "completed"


def test_response_objects_validate_against_the_schemas(server):
    with WS(server.ws_url) as ws:
        for fields in ({}, {"max_output_tokens": 16}, {"input": "[[fail]]"}, {"generate": False},
                       {"reasoning": {"summary": "detailed"}, "input": "[[multi]]"}):
            fields.setdefault("input", "hi")
            t = ws.turn(**fields)
            assert SCHEMAS.validate_def("response", t.response) == [], fields
