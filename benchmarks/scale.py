"""Plan, apply and the pre-start CLI at 10, 100 and 1,000 streams (each with a consumer, plus KV buckets),
each against the bare `$JS.API` requests the same work needs, sent with plain nats-py in the same run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler import api
from reconciler.apply import execute
from reconciler.connection import ConnectOptions, connect
from reconciler.observe import observe
from reconciler.plan import make_plan

from .common import (
    FLOOR_SCRIPT,
    bench_server,
    compile_bytecode,
    interleaved,
    median,
    raw_create,
    table,
    write_manifests,
)
from .floor import raw_observe, server_reads

CLI_RUNS = 9
PLAN_RUNS = 15  # (a) is short: many turns, so that the fastest of each is an undisturbed one


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {result.stdout}{result.stderr}")
    return elapsed


def _cli_times(url: str, manifests: Path, cache: Path) -> dict[str, float]:
    """(c): medians of CLI_RUNS runs of each, taken in turns. The load cache is warm (one run first),
    as it is for every start of a worker after the first; `cold` runs with the cache off."""
    env = {**os.environ, "NATS_URL": url, "NO_COLOR": "1", "NATS_RECONCILE_CACHE_DIR": str(cache)}
    cold_env = {**env, "NATS_RECONCILE_CACHE": "off"}
    cli = [sys.executable, "-m", "reconciler", "apply", str(manifests)]
    commands = {
        "cli": (cli, env),
        "cli_cold": (cli, cold_env),
        "cli_floor": ([sys.executable, str(FLOOR_SCRIPT), url], env),
        "cli_floor_reads": ([sys.executable, str(FLOOR_SCRIPT), url, "reads"], env),
    }
    _run(cli, env)  # fills the load cache
    times: dict[str, list[float]] = {key: [] for key in [*commands, "server_reads"]}
    for _ in range(CLI_RUNS):
        for key, (command, command_env) in commands.items():
            times[key].append(_run(command, command_env))
        times["server_reads"].append(server_reads(url))
    return {key: median(values) for key, values in times.items()}


async def measure(size: int, repeats: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="nats-reconcile-bench-"))
    paths = [write_manifests(work / "manifests", size)]
    os.environ["NATS_RECONCILE_CACHE_DIR"] = str(work / "cache")  # not the user's; empty, so cold
    with bench_server() as server:
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
                # Each on a server of its own, as deletes before creates would leave the disk busy.
                with bench_server() as empty:
                    started = time.perf_counter()
                    await raw_create(empty.url, streams, consumers, concurrency=16)
                    floor_apply.append(time.perf_counter() - started)
                with bench_server() as empty:
                    fresh = await connect(ConnectOptions(servers=[empty.url], timeout=30))
                    try:
                        plan = make_plan(resources, await observe(fresh))
                        started = time.perf_counter()
                        await execute(fresh, plan)
                        ours_apply.append(time.perf_counter() - started)
                    finally:
                        await fresh.close()
            full_apply_s = time.perf_counter()  # on the first server, still empty
            await api.apply(paths, conn)
            full_apply_s = time.perf_counter() - full_apply_s

            # (a) a no-op plan: observe + diff, against the bare LIST requests (which connect, too).
            async def our_plan() -> None:  # what api.plan does once the manifests are loaded
                _, plan = await api._observe_and_plan(conn, resources, "default", prune=False)
                assert not plan.has_changes

            floor_plan, ours_plan = await interleaved(PLAN_RUNS, lambda: raw_observe(server.url), our_plan)
        finally:
            await conn.close()

        # (c) the pre-start hook: the CLI's no-op apply, against bare processes.
        compile_bytecode()
        cli = _cli_times(server.url, paths[0], work / "cache")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "size": size,
        "load": load_s,
        "plan": ours_plan,
        "plan_floor": floor_plan,
        "apply": min(ours_apply),
        "apply_floor": min(floor_apply),
        "apply_full": full_apply_s,
        **cli,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def run(sizes: list[int]) -> str:
    results = [asyncio.run(measure(size, 5 if size < 1000 else 3)) for size in sizes]
    plan_rows, cli_rows = [], []
    for r in results:
        resources = r["size"] * 2 + max(1, r["size"] // 10)
        plan_rows.append(
            [
                r["size"],
                resources,
                f"{_ms(r['plan'])} / {_ms(r['plan_floor'])} ms",
                f"{r['plan'] / r['plan_floor']:.2f}x",
                f"{_ms(r['apply'])} / {_ms(r['apply_floor'])} ms",
                f"{r['apply'] / r['apply_floor']:.2f}x",
                f"{_ms(r['load'])} ms",
                f"{_ms(r['apply_full'])} ms",
                f"{r['plan'] / resources * 1e6:.0f} µs",
            ]
        )
        cli_rows.append(
            [
                r["size"],
                f"{_ms(r['cli'])} ms",
                f"{_ms(r['cli_floor'])} ms",
                f"{r['cli'] / r['cli_floor']:.2f}x",
                f"{_ms(r['cli_floor_reads'])} ms",
                f"{r['cli'] / r['cli_floor_reads']:.2f}x",
                f"{r['cli_floor_reads'] / r['cli_floor']:.2f}x",
                f"{_ms(r['server_reads'])} ms",
                f"{_ms(r['cli_cold'])} ms",
                f"{r['cli_cold'] / r['cli_floor_reads']:.2f}x",
            ]
        )
    plan_headers = [
        "streams",
        "resources",
        "(a) no-op plan / floor",
        "ratio",
        "(b) apply from empty / floor",
        "ratio",
        "load+validate (cold)",
        "whole apply()",
        "(a) per resource",
    ]
    cli_headers = [
        "streams",
        "(c) CLI no-op apply",
        "floor: 1 request",
        "ratio",
        "floor: the plan's reads",
        "ratio",
        "reads floor / 1-request floor",
        "server's time for the reads",
        "CLI, load cache off",
        "ratio to reads",
    ]
    return table(plan_headers, plan_rows) + "\n\n" + table(cli_headers, cli_rows)
