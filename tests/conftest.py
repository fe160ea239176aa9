"""Fixtures that start real nats-server processes on loopback; each is stopped by its pid afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from reconciler.connection import Connection, ConnectOptions, connect
from reconciler.devserver import LocalServer, ServerBinaryMissing, find_binary

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"

# The load cache (reconciler/cache.py) of every run the tests make, in process or as a CLI subprocess,
# goes to one throw-away directory instead of the user's ~/.cache. XDG_CACHE_HOME, not a NATS_
# variable, because the tests' subprocess environments drop every NATS_ variable.
CACHE_HOME = tempfile.mkdtemp(prefix="nats-reconcile-test-cache-")
os.environ["XDG_CACHE_HOME"] = CACHE_HOME
os.environ.pop("NATS_RECONCILE_CACHE_DIR", None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(CACHE_HOME, ignore_errors=True)


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
