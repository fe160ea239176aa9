"""Shared pieces: generated manifests, raw nats-py creates, bytecode, timing, tables (floors: floor.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats

from reconciler.devserver import LocalServer

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
FLOOR_SCRIPT = Path(__file__).resolve().parent / "floor.py"  # the CLI floors, as a process of their own


@contextlib.contextmanager
def bench_server() -> Iterator[LocalServer]:
    """A server whose JetStream store is in memory (tmpfs) where there is one: file storage all the
    same, but the shared disk of these machines, the noisiest thing on them, is left out of every
    figure, ours and the floor's alike."""
    shm = Path("/dev/shm")
    store = Path(tempfile.mkdtemp(prefix="nats-reconcile-bench-", dir=shm)) if shm.is_dir() else None
    try:
        with LocalServer(store_dir=str(store) if store else None) as server:
            yield server
    finally:
        if store:
            shutil.rmtree(store, ignore_errors=True)


def compile_bytecode() -> None:
    """pip compiles an installed package's bytecode; an editable checkout (with PYTHONDONTWRITEBYTECODE
    set, as on these machines) has none and would compile every module on every start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True, timeout=120)


def write_manifests(directory: Path, streams: int, kv_every: int = 10) -> Path:
    """`streams` streams, each with a durable consumer, plus a KV bucket for every `kv_every` streams."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(streams):
        docs.append(
            f'kind: Stream\nname: S{i:05}\nspec:\n  subjects: ["s{i:05}.>"]\n  max_age: 1d\n'
            f"  max_bytes: 1MiB\n"
        )
        docs.append(
            f"kind: Consumer\nstream: S{i:05}\nname: worker\nspec:\n  ack_policy: explicit\n"
            f"  ack_wait: 30s\n  max_deliver: 5\n"
        )
    for i in range(max(1, streams // kv_every)):
        docs.append(f"kind: KeyValue\nname: kv{i:05}\nspec: {{history: 5, ttl: 1h}}\n")
    (directory / "bench.yaml").write_text("---\n".join(docs))
    return directory


def median(values: list[float]) -> float:
    return statistics.median(values)


async def interleaved(
    repeats: int, floor: Callable[[], Awaitable[object]], ours: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """The fastest of `repeats` runs of each, taken in turns, so that a noisy spell hits both alike."""
    floors, ourses = [], []
    for _ in range(repeats):
        for work, times in ((floor, floors), (ours, ourses)):
            started = time.perf_counter()
            await work()
            times.append(time.perf_counter() - started)
    return min(floors), min(ourses)


async def raw_create(
    url: str, streams: list[dict], consumers: list[tuple[str, dict]], concurrency: int
) -> None:
    """The floor of an apply from empty: pipelined STREAM.CREATE then CONSUMER.CREATE, bounded."""
    nc = await nats.connect(url)
    gate = asyncio.Semaphore(concurrency)
    try:

        async def send(subject: str, body: dict) -> None:
            async with gate:
                msg = await nc.request(subject, json.dumps(body).encode(), timeout=10)
                answer = json.loads(msg.data)
                if "error" in answer:
                    raise RuntimeError(f"{subject}: {answer['error']}")

        await asyncio.gather(*(send(f"$JS.API.STREAM.CREATE.{s['name']}", s) for s in streams))
        await asyncio.gather(
            *(
                send(
                    f"$JS.API.CONSUMER.CREATE.{stream}.{c['durable_name']}",
                    {"stream_name": stream, "config": c, "action": "create"},
                )
                for stream, c in consumers
            )
        )
    finally:
        await nc.close()


def table(headers: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)) + " |" for row in rows
    ]
    return "\n".join([line, rule, *body])
