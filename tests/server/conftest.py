"""Fixtures for the reference server's self-tests."""

from __future__ import annotations

import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from conformance.server import ServerConfig, ServerThread  # noqa: E402
from srv_helpers import KEY_A, KEY_B  # noqa: E402


@pytest.fixture(scope="session")
def server():
    """A clean server (profile openai) with test controls on and two keys."""
    with ServerThread(ServerConfig(api_keys=(KEY_A, KEY_B), test_controls=True)) as srv:
        yield srv


@pytest.fixture(scope="session")
def open_server():
    """A server that accepts any non-empty key (the default)."""
    with ServerThread(ServerConfig(test_controls=True)) as srv:
        yield srv


@pytest.fixture
def make_server():
    """Start extra servers with their own config; all are stopped after the test."""
    started: list[ServerThread] = []

    def _make(**kw) -> ServerThread:
        kw.setdefault("api_keys", (KEY_A, KEY_B))
        kw.setdefault("test_controls", True)
        srv = ServerThread(ServerConfig(**kw)).start()
        started.append(srv)
        return srv

    yield _make
    for srv in started:
        with contextlib.suppress(Exception):
            srv.stop()
