"""Plan, apply and the pre-start CLI at 10, 100 and 1,000 streams (each with a consumer, plus KV buckets),
each against the bare `$JS.API` requests the same work needs, sent with plain nats-py in the same run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler import api
from reconciler.apply import execute
from reconciler.connection import ConnectOptions, connect
from reconciler.devserver import LocalServer
from reconciler.observe import observe
from reconciler.plan import make_plan

from .common import best_of, median, raw_create, raw_observe, table, wipe, write_manifests

FLOOR_CLI = """
import asyncio, sys
import nats
async def main():
    nc = await nats.connect(sys.argv[1])
    await nc.request("$JS.API.INFO", b"", timeout=5)
    await nc.close()
asyncio.run(main())
"""


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {result.stdout}{result.stderr}")
    return elapsed


async def measure(size: int, repeats: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="nats-reconcile-bench-"))
    paths = [write_manifests(work / "manifests", size)]
    with LocalServer() as server:
        options = ConnectOptions(servers=[server.url], timeout=30)
        started = time.perf_counter()
        resources = api.load(paths)
        load_s = time.perf_counter() - started
        conn = await connect(options)
        try:
            # (b) apply from empty: the bodies apply would send, as bare pipelined creates, then apply itself.
            live = await observe(conn)
            plan = make_plan(resources, live)
            streams = [c.body for c in plan.changes if c.address.is_stream]
            consumers = [(c.address.stream, c.body) for c in plan.changes if not c.address.is_stream]
            floor_apply, ours_apply = [], []
            for _ in range(repeats):
                await wipe(server.url)
                started = time.perf_counter()
                await raw_create(server.url, streams, consumers, concurrency=16)
                floor_apply.append(time.perf_counter() - started)
                await wipe(server.url)
                live = await observe(conn)
                plan = make_plan(resources, live)
                started = time.perf_counter()
                await execute(conn, plan)
                ours_apply.append(time.perf_counter() - started)
            full_apply_s = time.perf_counter()
            await wipe(server.url)
            await api.apply(paths, conn)
            full_apply_s = time.perf_counter() - full_apply_s

            # (a) a no-op plan: observe + diff, against the bare LIST requests.
            floor_plan = await best_of(repeats, lambda: raw_observe(server.url))

            async def our_plan() -> None:
                live = await observe(conn, {r.address.stream_name for r in resources})
                assert not make_plan(resources, live).has_changes

            ours_plan = await best_of(repeats, our_plan)
        finally:
            await conn.close()

        # (c) the pre-start hook: the CLI's no-op apply, against python + import nats + connect + 1 request.
        env = {**os.environ, "NATS_URL": server.url, "NO_COLOR": "1"}
        cli = [sys.executable, "-m", "reconciler", "apply", str(paths[0])]
        floor_cli = median([_run([sys.executable, "-c", FLOOR_CLI, server.url], env) for _ in range(5)])
        ours_cli = median([_run(cli, env) for _ in range(5)])
    return {
        "size": size,
        "load": load_s,
        "plan": ours_plan,
        "plan_floor": floor_plan,
        "apply": min(ours_apply),
        "apply_floor": min(floor_apply),
        "apply_full": full_apply_s,
        "cli": ours_cli,
        "cli_floor": floor_cli,
    }


def run(sizes: list[int]) -> str:
    results = [asyncio.run(measure(size, 3 if size < 1000 else 2)) for size in sizes]
    rows = []
    for r in results:
        resources = r["size"] * 2 + max(1, r["size"] // 10)
        rows.append(
            [
                r["size"],
                resources,
                f"{r['plan'] * 1000:.0f} / {r['plan_floor'] * 1000:.0f} ms",
                f"{r['plan'] / r['plan_floor']:.2f}x",
                f"{r['apply'] * 1000:.0f} / {r['apply_floor'] * 1000:.0f} ms",
                f"{r['apply'] / r['apply_floor']:.2f}x",
                f"{r['cli'] * 1000:.0f} / {r['cli_floor'] * 1000:.0f} ms",
                f"{r['cli'] / r['cli_floor']:.2f}x",
                f"{r['load'] * 1000:.0f} ms",
                f"{r['apply_full'] * 1000:.0f} ms",
                f"{r['plan'] / resources * 1e6:.0f} µs",
            ]
        )
    headers = [
        "streams",
        "resources",
        "(a) no-op plan / floor",
        "ratio",
        "(b) apply from empty / floor",
        "ratio",
        "(c) CLI no-op apply / floor",
        "ratio",
        "load+validate",
        "whole apply()",
        "(a) per resource",
    ]
    return table(headers, rows)
