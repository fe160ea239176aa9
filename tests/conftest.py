"""Fixtures that start real nats-server processes on loopback; each is stopped by its pid afterwards."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from reconciler.connection import Connection, ConnectOptions, connect
from reconciler.devserver import LocalServer, ServerBinaryMissing, find_binary

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"


def server_binary() -> str:
    """The binary under test: NATS_SERVER_VERSION picks one from the version cache (tests/versions.py)."""
    version = os.environ.get("NATS_SERVER_VERSION")
    if version:
        from tests.versions import binary_for

        return str(binary_for(version))
    try:
        return find_binary()
    except ServerBinaryMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def server_bin() -> str:
    return server_binary()


@pytest.fixture
def server_factory(server_bin: str) -> Iterator[Callable[..., LocalServer]]:
    """Start servers with extra config; all of them are stopped at the end of the test."""
    started: list[LocalServer] = []

    def start(**kwargs: object) -> LocalServer:
        server = LocalServer(server_bin, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.cleanup()


@pytest.fixture
def nats_server(server_factory: Callable[..., LocalServer]) -> LocalServer:
    """A fresh standalone JetStream server for one test."""
    return server_factory()


@pytest.fixture
async def conn(nats_server: LocalServer) -> AsyncIterator[Connection]:
    connection = await connect(ConnectOptions(servers=[nats_server.url]))
    yield connection
    await connection.close()
