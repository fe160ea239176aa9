"""The one choke point for `$JS.API` requests (connection.py): its reply multiplexer, seen from the server.

Each case asks the server itself (its monitoring endpoint) what our connection is subscribed to.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import nats
import pytest

from reconciler.connection import ConnectOptions, connect
from reconciler.devserver import free_port
from reconciler.errors import TimeoutError_

pytestmark = pytest.mark.e2e


def our_subscriptions(monitor: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz?subs=1", timeout=5) as answer:
        connections = json.load(answer)["connections"]
    (ours,) = [c for c in connections if c.get("name") == "nats-reconcile"]
    return ours.get("subscriptions_list") or []


def test_concurrent_first_requests_share_one_reply_subscription(server_factory):
    monitor = free_port()
    server = server_factory(args=("-m", str(monitor)))

    async def run() -> list[dict]:
        conn = await connect(ConnectOptions(servers=[server.url]))
        try:
            # All sent at once on a fresh connection: one wildcard subscription serves them all.
            answers = await asyncio.gather(*(conn.request("INFO") for _ in range(64)))
            assert conn.requests == 64
            subscriptions = our_subscriptions(monitor)
            assert len(subscriptions) == 1 and subscriptions[0].endswith(".*"), subscriptions
            return answers
        finally:
            await conn.close()

    answers = asyncio.run(run())
    assert all("streams" in a for a in answers)


def test_a_timed_out_request_leaves_nothing_behind(server_factory):
    # A responder that answers only after the request has timed out: the late reply is dropped, and
    # the next request on the same connection gets its own answer.
    monitor = free_port()
    server = server_factory(args=("-m", str(monitor)), jetstream=False)

    async def run() -> None:
        responder = await nats.connect(server.url)
        try:

            async def late(msg) -> None:
                if msg.subject.endswith("SLOW"):
                    await asyncio.sleep(0.6)
                await msg.respond(json.dumps({"subject": msg.subject}).encode())

            await responder.subscribe("$JS.API.>", cb=late)
            await responder.flush()
            conn = await connect(ConnectOptions(servers=[server.url], timeout=0.3))
            try:
                with pytest.raises(TimeoutError_):
                    await conn.request("SLOW", retries=0)
                await asyncio.sleep(0.5)  # the late reply arrives meanwhile
                assert await conn.request("FAST") == {"subject": "$JS.API.FAST"}
                assert conn._replies == {}
                assert len(our_subscriptions(monitor)) == 1
            finally:
                await conn.close()
        finally:
            await responder.close()

    asyncio.run(run())
