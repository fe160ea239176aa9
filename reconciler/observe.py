"""Read the live JetStream state as raw wire JSON: account info, streams, consumers (paged LIST calls)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from .connection import Connection
from .errors import ApiError
from .versions import Server

CONCURRENCY = 32  # requests in flight at once; bounded so a large account does not flood the server


@dataclass
class LiveState:
    server: Server
    streams: dict[str, dict] = field(default_factory=dict)  # name -> stream configuration
    consumers: dict[str, dict[str, dict]] = field(default_factory=dict)  # stream -> name -> consumer config
    account: dict = field(default_factory=dict)


async def _paged(conn: Connection, api: str, key: str) -> list[dict]:
    items: list[dict] = []
    while True:
        page = await conn.request(api, {"offset": len(items)})
        batch = page.get(key) or []
        items += batch
        if not batch or len(items) >= int(page.get("total", 0)):
            return items


async def observe(conn: Connection, consumers_of: Iterable[str] | None = None) -> LiveState:
    """Live state. Consumers are listed for the streams in `consumers_of` that exist (all when None)."""
    account = await conn.request("INFO")
    clustered = bool(conn.nc._server_info.get("cluster"))
    state = LiveState(Server.from_info(conn.server_version, account, clustered), account=account)
    for info in await _paged(conn, "STREAM.LIST", "streams"):
        config = info.get("config") or {}
        if config.get("name"):
            state.streams[config["name"]] = config
    wanted = sorted(state.streams if consumers_of is None else set(consumers_of) & set(state.streams))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def list_consumers(stream: str) -> None:
        async with gate:
            try:
                found = await _paged(conn, f"CONSUMER.LIST.{stream}", "consumers")
            except ApiError as exc:
                if exc.err_code == 10059:  # deleted between the two calls
                    return
                raise
        state.consumers[stream] = {c["name"]: c.get("config") or {} for c in found if c.get("name")}

    await asyncio.gather(*(list_consumers(s) for s in wanted))
    return state
