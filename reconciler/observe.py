"""Read the live JetStream state as raw wire JSON: account info, streams, consumers (paged LIST calls)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from .canonical import canonical_consumer, canonical_stream
from .connection import Connection
from .errors import ApiError, ConnectError, ReconcileError, TimeoutError_
from .gcpause import paused_gc
from .versions import Server

CONCURRENCY = 32  # requests in flight at once; bounded so a large account does not flood the server


@dataclass
class LiveState:
    server: Server
    streams: dict[str, dict] = field(default_factory=dict)  # name -> stream configuration
    consumers: dict[str, dict[str, dict]] = field(default_factory=dict)  # stream -> name -> consumer config
    account: dict = field(default_factory=dict)
    # Canonical forms (canonical.py), made once each, on first use (by the plan and the checks against
    # the server). Only the streams and consumers a plan looks at are ever made. Read-only.
    _streams: dict[str, dict] = field(default_factory=dict, repr=False, compare=False)
    _consumers: dict[tuple[str, str], dict] = field(default_factory=dict, repr=False, compare=False)

    def canonical_stream(self, name: str | None) -> dict | None:
        if name not in self.streams:
            return None
        found = self._streams.get(name)
        if found is None:
            found = self._streams[name] = canonical_stream(self.streams[name], self.server)
        return found

    def canonical_consumer(self, stream: str, name: str) -> dict | None:
        raw = self.consumers.get(stream, {}).get(name)
        if raw is None:
            return None
        found = self._consumers.get((stream, name))
        if found is None:
            found = canonical_consumer(raw, self.canonical_stream(stream) or {})
            self._consumers[(stream, name)] = found
        return found


async def _paged(conn: Connection, api: str, key: str) -> tuple[list[dict], list[str]]:
    """Every item of a paged LIST call, and the names the server listed as `missing`: on a cluster,
    those whose leader did not answer in time. They exist; they must never be taken for absent.

    The first page says how many there are and how many a page holds; the other pages are then asked
    for at once rather than one after another. Whatever changed meanwhile is picked up one page at a
    time, as before."""
    items: list[dict] = []
    missing: list[str] = []

    def take(page: dict) -> bool:
        batch, gone = page.get(key) or [], page.get("missing") or []
        items.extend(batch)
        missing.extend(gone)
        return bool(batch or gone)

    first = await conn.request(api, {"offset": 0})
    if not take(first):
        return items, missing
    size, total = len(items) + len(missing), int(first.get("total", 0))
    offsets = range(size, total, size)
    for page in await asyncio.gather(*(conn.request(api, {"offset": o}) for o in offsets)):
        take(page)
    while len(items) + len(missing) < total:  # the list grew while it was read
        page = await conn.request(api, {"offset": len(items) + len(missing)})
        total = int(page.get("total", 0))
        if not take(page):
            break
    return items, missing


async def _info(conn: Connection, api: str, what: str) -> dict:
    """INFO of something a LIST call could not describe, retried while a leader is elected."""
    delay = 0.5
    for attempt in range(4):
        try:
            return (await conn.request(api, retries=0))["config"]
        except (ApiError, TimeoutError_, ConnectError) as exc:
            if isinstance(exc, ApiError) and exc.err_code in (10059, 10014):
                raise  # deleted in the meantime: the caller treats it as absent
            if attempt == 3:
                raise ReconcileError(
                    f"{what} exists but did not answer ({exc}); a node or its leader may be down. "
                    "Nothing was changed; run again when the cluster has recovered."
                ) from exc
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def observe(
    conn: Connection, consumers_of: Iterable[str] | None = None, *, early: Iterable[str] = ()
) -> LiveState:
    """Live state. Consumers are listed for the streams in `consumers_of` (all when None) that exist
    and have any. Those in `early` (the streams the manifests declare consumers of) are listed at once,
    while the streams are; the others once the stream listing says they have consumers."""
    with paused_gc():  # the state is many decoded JSON objects, kept, and no cycles
        return await _observe(conn, consumers_of, early)


async def _observe(conn: Connection, consumers_of: Iterable[str] | None, early: Iterable[str]) -> LiveState:
    wanted = None if consumers_of is None else set(consumers_of)
    at_once = {s for s in early if wanted is None or s in wanted}
    gate = asyncio.Semaphore(CONCURRENCY)
    consumers: dict[str, dict[str, dict]] = {}

    async def list_consumers(stream: str) -> None:
        async with gate:
            try:
                found, gone = await _paged(conn, f"CONSUMER.LIST.{stream}", "consumers")
            except ApiError as exc:
                if exc.err_code == 10059:  # no such stream (any more)
                    return
                raise
        listed = {c["name"]: c.get("config") or {} for c in found if c.get("name")}
        for name in gone:
            with contextlib.suppress(ApiError):
                listed[name] = await _info(
                    conn, f"CONSUMER.INFO.{stream}.{name}", f"consumer {stream}/{name}"
                )
        consumers[stream] = listed

    # A stream in `early` that does not exist answers 10059 and is left out.
    first = [asyncio.ensure_future(list_consumers(s)) for s in sorted(at_once)]
    listing = asyncio.ensure_future(_paged(conn, "STREAM.LIST", "streams"))
    try:
        account = await conn.request("INFO")  # the first error said is INFO's, as without the overlap
        listed, missing = await listing
        clustered = bool(conn.nc._server_info.get("cluster"))
        state = LiveState(Server.from_info(conn.server_version, account, clustered), account=account)
        counts: dict[str, int | None] = {}  # consumers per stream, as listed; None: not said
        for info in listed:
            config = info.get("config") or {}
            if config.get("name"):
                state.streams[config["name"]] = config
                counts[config["name"]] = (info.get("state") or {}).get("consumer_count")

        async def stream_info(name: str) -> None:
            async with gate:
                with contextlib.suppress(ApiError):  # deleted since it was listed
                    state.streams[name] = await _info(conn, f"STREAM.INFO.{name}", f"stream {name}")

        await asyncio.gather(*(stream_info(n) for n in missing if wanted is None or n in wanted))
        later = []
        for s in sorted(state.streams):
            if (wanted is None or s in wanted) and s not in at_once:
                if counts.get(s) == 0:
                    consumers[s] = {}  # the listing says it has none: nothing to ask
                else:
                    later.append(list_consumers(s))
        await asyncio.gather(*first, *later)
    finally:  # on an error, nothing is left running behind the caller's back, nor an error unheard
        for task in [listing, *first]:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved, or asyncio would log it (with a traceback) at exit
    # Only the consumers of streams the listing saw: one created in between is not there yet.
    state.consumers = {s: consumers[s] for s in sorted(state.streams) if s in consumers}
    return state
