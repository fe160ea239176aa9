"""observe.py against a real server: every page of a long listing, consumers listed where they exist,
and no CONSUMER.LIST where the stream listing already says there are none."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from reconciler.connection import ConnectOptions, connect
from reconciler.observe import observe

pytestmark = pytest.mark.e2e


async def populate(url: str, streams: int, consumers_of_first: int) -> None:
    """`streams` memory streams P0000..; the first gets `consumers_of_first` durable consumers."""
    nc = await nats.connect(url)
    try:

        async def ask(subject: str, body: dict) -> None:
            answer = json.loads((await nc.request(subject, json.dumps(body).encode(), timeout=10)).data)
            assert "error" not in answer, answer

        gate = asyncio.Semaphore(16)

        async def bounded(subject: str, body: dict) -> None:
            async with gate:
                await ask(subject, body)

        await asyncio.gather(
            *(
                bounded(
                    f"$JS.API.STREAM.CREATE.P{i:04}",
                    {"name": f"P{i:04}", "subjects": [f"p{i:04}.>"], "storage": "memory"},
                )
                for i in range(streams)
            )
        )
        await asyncio.gather(
            *(
                bounded(
                    f"$JS.API.CONSUMER.CREATE.P0000.c{j:03}",
                    {
                        "stream_name": "P0000",
                        "config": {"durable_name": f"c{j:03}", "ack_policy": "explicit"},
                    },
                )
                for j in range(consumers_of_first)
            )
        )
    finally:
        await nc.close()


def test_long_listings_are_read_whole(nats_server):
    # 600 streams: three STREAM.LIST pages (256 a page), the last two asked for at once; 300 consumers
    # on one stream: two CONSUMER.LIST pages.
    asyncio.run(populate(nats_server.url, 600, 300))

    async def run():
        conn = await connect(ConnectOptions(servers=[nats_server.url], timeout=10))
        try:
            return await observe(conn), conn.requests
        finally:
            await conn.close()

    state, requests = asyncio.run(run())
    assert sorted(state.streams) == [f"P{i:04}" for i in range(600)]
    assert sorted(state.consumers["P0000"]) == [f"c{j:03}" for j in range(300)]
    assert state.consumers["P0000"]["c123"]["ack_policy"] == "explicit"
    assert all(state.consumers[f"P{i:04}"] == {} for i in range(1, 600))
    # INFO, 3 pages of streams, 2 pages of P0000's consumers; none for the 599 streams without any.
    assert requests == 1 + 3 + 2


def test_declared_consumers_are_listed_early_and_absent_streams_left_out(nats_server):
    asyncio.run(populate(nats_server.url, 3, 2))

    async def run():
        conn = await connect(ConnectOptions(servers=[nats_server.url], timeout=10))
        try:
            # P0001 has no consumers but is asked for early (the manifests declare one for it); NEW
            # does not exist yet (10059); P0002 is wanted but has none, so it is not asked.
            state = await observe(conn, {"P0000", "P0001", "P0002", "NEW"}, early={"P0000", "P0001", "NEW"})
            return state, conn.requests
        finally:
            await conn.close()

    state, requests = asyncio.run(run())
    assert set(state.streams) == {"P0000", "P0001", "P0002"}
    assert set(state.consumers) == {"P0000", "P0001", "P0002"}
    assert state.consumers["P0001"] == {} == state.consumers["P0002"]
    assert sorted(state.consumers["P0000"]) == ["c000", "c001"]
    assert requests == 1 + 1 + 3  # INFO, one page of streams, CONSUMER.LIST for the three early ones
