"""The bare nats-py floors the benchmarks measure against. Also a script, run as its own process for
the CLI floors, importing nothing but nats-py and the standard library:

    python benchmarks/floor.py URL          start-up, import nats, connect, one request
    python benchmarks/floor.py URL reads    ... then the reads of a no-op plan (raw_observe)
"""

from __future__ import annotations

import asyncio
import json
import sys

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


async def one_request(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.request("$JS.API.INFO", b"", timeout=5)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(raw_observe(sys.argv[1]) if sys.argv[2:3] == ["reads"] else one_request(sys.argv[1]))
