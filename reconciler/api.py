"""The Python API: the same operations as the CLI, for workers that reconcile before they consume.

result = await reconciler.apply(["manifests/"], connection=ConnectOptions(servers=[url]))
result = reconciler.apply_sync(["manifests/"], connection=...)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .apply import Progress, StepResult, execute, refuse_replaces
from .cache import LoadCache, RecordingEnv
from .connection import Connection, ConnectOptions, connect
from .errors import ManifestError
from .load import parse_sources, read_sources
from .lock import DEFAULT_BUCKET, ApplyLock
from .model import Resource
from .observe import LiveState, observe
from .plan import Plan, make_plan
from .validate import check_against_server, validate

Paths = Sequence[str | os.PathLike[str]]


@dataclass
class ApplyResult:
    plan: Plan  # the plan that was carried out (made under the lock), or the first one if nothing was to do
    steps: list[StepResult] = field(default_factory=list)
    lock_holder: dict[str, Any] | None = None  # our holder record, when we took the lock
    applied_by: dict[str, Any] | None = None  # who had just applied, when we found nothing left to do
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def drift(self) -> list[str]:
        return [f"{s.change.address}: {d}" for s in self.steps for d in s.drift]


def load(paths: Paths, env: dict[str, str] | None = None) -> list[Resource]:
    """Load and validate manifests (offline). Every problem of every file is reported at once.

    `env` is what `${VAR}` reads (default: os.environ). Files that loaded before, with the same
    variables, are served from the load cache (cache.py)."""
    env = os.environ if env is None else env
    sources = read_sources(paths)
    cache = LoadCache.from_environment()
    cached = cache.get(sources, env)
    if cached is not None:
        return cached
    recording = RecordingEnv(env)
    documents, problems = parse_sources(sources, recording)
    try:
        resources = validate(documents)
    except ManifestError as exc:
        problems = [*problems, *exc.problems]
    if problems:
        raise ManifestError(problems)
    cache.put(sources, recording.used(), resources)
    return resources


def manifest_hash(resources: list[Resource]) -> str:
    text = repr(sorted((str(r.address), repr(r.config)) for r in resources))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@asynccontextmanager
async def _connected(connection: ConnectOptions | Connection):
    if isinstance(connection, Connection):
        yield connection
        return
    conn = await connect(connection)
    try:
        yield conn
    finally:
        await conn.close()


async def _observe_and_plan(
    conn: Connection, resources: list[Resource], set_name: str, prune: bool
) -> tuple[LiveState, Plan]:
    with_consumers = {r.address.stream for r in resources if r.address.kind == "consumer"}
    streams = with_consumers | {r.address.stream_name for r in resources if r.address.is_stream}
    live = await observe(conn, None if prune else streams, early=with_consumers)
    check_against_server(resources, live.streams, live.server, live.consumers)
    return live, make_plan(resources, live, set_name=set_name, prune=prune)


async def plan(
    paths: Paths,
    connection: ConnectOptions | Connection,
    *,
    set_name: str = "default",
    prune: bool = False,
    env: dict[str, str] | None = None,
) -> Plan:
    resources = load(paths, env)
    async with _connected(connection) as conn:
        return (await _observe_and_plan(conn, resources, set_name, prune))[1]


async def apply(
    paths: Paths,
    connection: ConnectOptions | Connection,
    *,
    set_name: str = "default",
    prune: bool = False,
    allow_replace: bool = False,
    lock_timeout: float = 60.0,
    lock_ttl: float = 30.0,
    lock_bucket: str = DEFAULT_BUCKET,
    env: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> ApplyResult:
    """Converge the server to the manifests, holding the KV lock while changing anything."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    resources = load(paths, env)
    async with _connected(connection) as conn:
        _, first = await _observe_and_plan(conn, resources, set_name, prune)
        timings["plan"] = time.monotonic() - started
        if not first.pending:  # the pre-start fast path: no lock, no KV request at all
            return ApplyResult(first, timings=timings)
        if not allow_replace:
            refuse_replaces(first)
        lock = ApplyLock(
            conn,
            bucket=lock_bucket,
            scope=set_name,
            ttl=lock_ttl,
            timeout=lock_timeout,
            info={"manifests": manifest_hash(resources)},
        )
        async with lock:
            timings["lock_wait"] = lock.waited
            # Level-based: whatever happened while we waited, plan again from what is there now.
            _, current = await _observe_and_plan(conn, resources, set_name, prune)
            if not current.pending:
                return ApplyResult(
                    current, lock_holder=lock.holder, applied_by=lock.previous_holder, timings=timings
                )
            if not allow_replace:
                refuse_replaces(current)
            applying = time.monotonic()
            steps = await execute(
                conn, current, guard=lock.check, fence=lambda: lock.check(verify=True), progress=progress
            )
            timings["apply"] = time.monotonic() - applying
        timings["total"] = time.monotonic() - started
        return ApplyResult(current, steps, lock.holder, timings=timings)


def plan_sync(paths: Paths, connection: ConnectOptions | Connection, **kwargs: Any) -> Plan:
    return asyncio.run(plan(paths, connection, **kwargs))


def apply_sync(paths: Paths, connection: ConnectOptions | Connection, **kwargs: Any) -> ApplyResult:
    return asyncio.run(apply(paths, connection, **kwargs))
