"""Execute a Plan: every request apply sends to change the server is in this module.

Changes run in waves (deletes that free subjects, streams by dependency level, buckets, consumers,
other deletes); the changes of one wave are independent and go out concurrently, bounded. The first
failure stops the run: changes in flight finish, nothing new starts, and the error says what was and
was not done. Running again converges, because planning re-reads the live state.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .canonical import canonical_consumer, canonical_stream
from .connection import Connection
from .errors import ApiError, ApplyError, ReconcileError
from .plan import Action, Plan, ResourceChange, field_diffs

CONCURRENCY = 16
NOT_FOUND = (10059, 10014)  # stream not found, consumer not found

Guard = Callable[[], Awaitable[None]]
Progress = Callable[[str], "Awaitable[None] | None"]  # may be async: apply awaits what it returns


@dataclass
class StepResult:
    change: ResourceChange
    seconds: float
    drift: list[str] = field(default_factory=list)  # fields the server did not take as asked

    @property
    def description(self) -> str:
        verb = (
            "adopted"
            if self.change.action is Action.NOOP
            else {
                Action.CREATE: "created",
                Action.UPDATE: "updated",
                Action.REPLACE: "replaced",
                Action.DELETE: "deleted",
            }[self.change.action]
        )
        return f"{verb} {self.change.address}"


def refuse_replaces(plan: Plan) -> None:
    replaces = [c for c in plan.changes if c.action is Action.REPLACE]
    if replaces:
        lines = "\n".join(f"  {c.address}: {c.reason}" for c in replaces)
        raise ReconcileError(
            f"the plan replaces {len(replaces)} resource(s), which deletes their data:\n{lines}\n"
            "Nothing was changed. Run apply with --allow-replace to do it."
        )


def _waves(plan: Plan) -> list[list[ResourceChange]]:
    """Group the ordered plan into waves whose members do not depend on each other.

    Deletes go one at a time, in the plan's order. Streams and buckets share a wave unless one sources
    or mirrors a stream of the same wave; consumers start a wave after every stream.
    """
    waves: list[list[ResourceChange]] = []
    wave_of: dict[str, int] = {}  # stream name -> the wave that creates or changes it
    group = None
    for change in plan.pending:
        if change.action is Action.DELETE:
            waves.append([change])
            group = None
            continue
        after = change.after or {}
        deps = [s.get("name") for s in after.get("sources") or []] + [(after.get("mirror") or {}).get("name")]
        kind = "consumer" if change.address.kind == "consumer" else "stream"
        if kind != group or any(wave_of.get(d) == len(waves) - 1 for d in deps if d):
            waves.append([])
            group = kind
        waves[-1].append(change)
        if change.address.is_stream:
            wave_of[change.address.stream_name] = len(waves) - 1
    return waves


async def execute(
    conn: Connection,
    plan: Plan,
    *,
    guard: Guard | None = None,
    fence: Guard | None = None,
    progress: Progress | None = None,
) -> list[StepResult]:
    """Send the plan's changes.

    `guard` runs before each change (cheap: the lock's own view of its lease); `fence` runs before each
    wave (it reads the lock key, so a lock broken or taken over stops us before the next wave).
    """
    done: list[StepResult] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    failure: list[tuple[ResourceChange, Exception]] = []

    async def run(change: ResourceChange) -> None:
        async with gate:
            if failure:
                return
            started = time.monotonic()
            try:
                if guard is not None:
                    await guard()
                drift = await _send(conn, plan, change)
            except ReconcileError as exc:
                failure.append((change, exc))
                return
            step = StepResult(change, time.monotonic() - started, drift)
            done.append(step)
            if progress is not None:
                pending = progress(f"{step.description} ({step.seconds * 1000:.0f}ms)")
                if inspect.isawaitable(pending):
                    await pending

    for wave in _waves(plan):
        if fence is not None:
            try:
                await fence()
            except ReconcileError as exc:
                failure.append((wave[0], exc))
        if not failure:
            await asyncio.gather(*(run(c) for c in wave))
        if failure:
            change, exc = failure[0]
            finished = {id(s.change) for s in done}
            not_done = [f"{c.action.value} {c.address}" for c in plan.pending if id(c) not in finished]
            # Name the manifest too: the server's refusal (pedantic 10157, say) is about what it declares.
            where = f"{change.resource.where('name')}: " if change.resource is not None else ""
            raise ApplyError(
                f"{where}{change.action.value} {change.address} failed: {exc}",
                [s.description for s in done],
                not_done,
                exc,
            )
    return done


async def _send(conn: Connection, plan: Plan, change: ResourceChange) -> list[str]:
    a = change.address
    pedantic = {"pedantic": True} if plan.server.pedantic else {}
    if change.action in (Action.DELETE, Action.REPLACE):
        api = f"STREAM.DELETE.{a.stream_name}" if a.is_stream else f"CONSUMER.DELETE.{a.stream}.{a.name}"
        try:
            await conn.request(api)
        except ApiError as exc:
            if exc.err_code not in NOT_FOUND:  # already gone (e.g. with its stream) is what we want
                raise
        if change.action is Action.DELETE:
            return []
    body = change.body or {}
    if a.is_stream:
        verb = "UPDATE" if change.action is Action.UPDATE or (change.action is Action.NOOP) else "CREATE"
        answer = await conn.request(f"STREAM.{verb}.{a.stream_name}", {**body, **pedantic})
        stored = canonical_stream(answer.get("config") or {}, plan.server)
    else:
        action = "update" if change.action in (Action.UPDATE, Action.NOOP) else "create"
        api = f"CONSUMER.CREATE.{a.stream}.{a.name}"
        if change.legacy_durable:
            api = f"CONSUMER.DURABLE.CREATE.{a.stream}.{a.name}"
            body = {k: v for k, v in body.items() if k != "name"}
        request = {"stream_name": a.stream, "config": body, "action": action, **pedantic}
        answer = await conn.request(api, request)
        stored = canonical_consumer(answer.get("config") or {}, None)
    return _drift(change, stored, body, plan)


def _drift(change: ResourceChange, stored: dict, body: dict, plan: Plan) -> list[str]:
    """Fields the server stored differently from what we sent (2.10 adjusts instead of refusing)."""
    wanted = (
        canonical_stream(body, plan.server) if change.address.is_stream else canonical_consumer(body, None)
    )
    return [f"{d.path}: asked {d.after!r}, server has {d.before!r}" for d in field_diffs(stored, wanted, {})]
