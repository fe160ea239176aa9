"""N worker processes run `nats-reconcile apply manifests/` at the same moment, as a pre-start hook,
with nothing to do and with a pending change; reported against one single run in the same invocation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .common import FLOOR_SCRIPT, bench_server, compile_bytecode, table

ROOT = Path(__file__).resolve().parent.parent


def _together(commands: list[list[str]], env: dict[str, str]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    outputs = []
    for p in processes:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a starter failed ({p.returncode}): {out}{err}")
        outputs.append(out)
    return time.perf_counter() - started, outputs


def run(count: int) -> str:
    manifests = str(ROOT / "manifests")
    apply = [sys.executable, "-m", "reconciler", "apply", manifests]
    compile_bytecode()
    rows = []
    for label, pending in (("nothing to do", False), ("pending change", True)):
        singles, groups, floors = [], [], []
        for _ in range(2):
            with bench_server() as server:
                env = {**os.environ, "NATS_URL": server.url, "NO_COLOR": "1"}
                if not pending:
                    _together([apply], env)
                single, _ = _together([apply], env)  # one run alone (a no-op here, in both cases)
                floor, _ = _together([[sys.executable, str(FLOOR_SCRIPT), server.url]] * count, env)
            with bench_server() as server:
                env = {**os.environ, "NATS_URL": server.url, "NO_COLOR": "1"}
                if not pending:
                    _together([apply], env)
                if pending:
                    single_pending, _ = _together([apply], env)  # a single run that applies
                    single = single_pending
            with bench_server() as server:
                env = {**os.environ, "NATS_URL": server.url, "NO_COLOR": "1"}
                if not pending:
                    _together([apply], env)
                wall, outputs = _together([apply] * count, env)
                applied = sum("Applied:" in out for out in outputs)
                assert applied == (1 if pending else 0), outputs
            singles.append(single)
            groups.append(wall)
            floors.append(floor)
        single, wall, floor = min(singles), min(groups), min(floors)
        rows.append(
            [
                label,
                count,
                f"{wall:.2f} s",
                f"{single * 1000:.0f} ms",
                f"{wall / single:.1f}x",
                f"{floor:.2f} s",
                f"{wall / floor:.2f}x",
            ]
        )
    headers = [
        "case",
        "starters",
        f"{count} at once",
        "one alone",
        "ratio to one",
        f"{count} bare nats-py processes",
        "ratio to bare",
    ]
    return table(headers, rows)
