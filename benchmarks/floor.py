"""The bare nats-py floors the benchmarks measure against. Also a script, run as its own process for
the CLI floors, importing nothing but nats-py and the standard library:

    python benchmarks/floor.py URL          start-up, import nats, connect, one request
    python benchmarks/floor.py URL reads    ... then the reads of a no-op plan (raw_observe)

`server_reads` is not a floor of any client: it is how long the server itself takes to answer those
reads, all written at once on a plain socket with no client library, to show what is the server's
share of a figure and what is the client's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from urllib.parse import urlsplit

import nats

CONCURRENCY = 32  # the same bound the reconciler uses for observing


async def raw_observe(url: str) -> int:
    """The floor of a no-op plan: INFO, paged STREAM.LIST, CONSUMER.LIST per stream, with plain nats-py."""
    nc = await nats.connect(url)
    try:

        async def req(subject: str, body: dict | None = None) -> dict:
            msg = await nc.request(
                subject, json.dumps(body).encode() if body is not None else b"", timeout=10
            )
            return json.loads(msg.data)

        await req("$JS.API.INFO")
        names: list[str] = []
        while True:
            page = await req("$JS.API.STREAM.LIST", {"offset": len(names)})
            names += [s["config"]["name"] for s in page.get("streams") or []]
            if not page.get("streams") or len(names) >= page["total"]:
                break
        gate = asyncio.Semaphore(CONCURRENCY)

        async def consumers(name: str) -> None:
            async with gate:
                await req(f"$JS.API.CONSUMER.LIST.{name}", {"offset": 0})

        await asyncio.gather(*(consumers(n) for n in names))
        return len(names)
    finally:
        await nc.close()


def server_reads(url: str) -> float:
    """Seconds from the first request to the last reply for INFO, the STREAM.LIST pages and one
    CONSUMER.LIST per stream, pipelined on a bare socket (the page replies are decoded, the rest only
    counted). Loopback, no auth: for the benchmark's own server only."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        frames = _Frames(sock)
        frames.expect(b"INFO")
        sock.sendall(b'CONNECT {"verbose":false,"headers":true,"protocol":1}\r\nSUB _R.* 1\r\nPING\r\n')
        frames.expect(b"PONG")
        started = time.perf_counter()
        sock.sendall(_pub("$JS.API.INFO", b""))
        frames.reply()
        names: list[str] = []
        while True:
            sock.sendall(_pub("$JS.API.STREAM.LIST", json.dumps({"offset": len(names)}).encode()))
            page = json.loads(frames.reply())
            names += [s["config"]["name"] for s in page.get("streams") or []]
            if not page.get("streams") or len(names) >= page["total"]:
                break
        sock.sendall(b"".join(_pub(f"$JS.API.CONSUMER.LIST.{n}", b'{"offset":0}') for n in names))
        for _ in names:
            frames.reply()
        return time.perf_counter() - started


def _pub(subject: str, body: bytes) -> bytes:
    return b"PUB %s _R.1 %d\r\n%s\r\n" % (subject.encode(), len(body), body)


class _Frames:
    """Just enough of the NATS protocol to read replies: MSG and HMSG frames, PING answered."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.file = sock.makefile("rb")

    def expect(self, op: bytes) -> None:
        while not (line := self.file.readline()).startswith(op):
            if not line or line.startswith(b"-ERR"):
                raise RuntimeError(f"server said {line!r}")

    def reply(self) -> bytes:
        while True:
            line = self.file.readline()
            if line.startswith((b"MSG", b"HMSG")):
                fields = line.split()
                size = int(fields[-1])
                data = self.file.read(size + 2)[:size]
                return data[int(fields[-2]) :] if line.startswith(b"HMSG") else data
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif not line or line.startswith(b"-ERR"):
                raise RuntimeError(f"server said {line!r}")


async def one_request(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.request("$JS.API.INFO", b"", timeout=5)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(raw_observe(sys.argv[1]) if sys.argv[2:3] == ["reads"] else one_request(sys.argv[1]))
