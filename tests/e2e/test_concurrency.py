"""Many workers run `apply` as their pre-start hook at the same moment: one applies, the rest no-op."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import (
    CLI,
    LOCK_STREAM,
    consumer_config,
    lock_is_held,
    request,
    run_cli,
    stream_config,
    stream_names,
    write,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTERS = 24


def many_streams(directory: Path, count: int, consumers: bool = False) -> Path:
    docs = [f'kind: Stream\nname: S{i:03}\nspec: {{subjects: ["s{i:03}.>"]}}\n' for i in range(count)]
    if consumers:  # consumers go in a later wave than their streams: an apply with two steps
        docs += [
            f"kind: Consumer\nstream: S{i:03}\nname: c\nspec: {{ack_policy: explicit}}\n"
            for i in range(count)
        ]
    write(directory, "streams.yaml", "---\n".join(docs))
    return directory


def test_concurrent_starters_apply_once(nats_server, tmp_path):
    url = nats_server.url
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update(NATS_URL=url, NO_COLOR="1")
    processes = [
        subprocess.Popen(
            [*CLI, "apply", str(manifests)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(STARTERS)
    ]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in processes]
    for code, out, err in results:
        assert code == 0, out + err
        for bad in ("already in use", "already exists", "Traceback", "error"):
            assert bad not in (out + err).lower().replace("error_", ""), out + err
    applied = [out for _, out, _ in results if "Applied:" in out]
    assert len(applied) == 1, [out for _, out, _ in results]
    others = [out for _, out, _ in results if "Applied:" not in out]
    assert all("No changes" in out for out in others)
    assert {"JOBS", "JOB_EVENTS", "KV_job_state", "OBJ_job_artifacts"} <= set(stream_names(url))
    assert consumer_config(url, "JOBS", "workers")["max_deliver"] == 5
    assert not lock_is_held(url)
    plan = run_cli("plan", str(manifests), "--detailed-exitcode", url=url)
    assert plan.returncode == 0, plan.stdout


SLOW_APPLY = textwrap.dedent("""
    import asyncio, sys, time
    import reconciler
    from reconciler import ConnectOptions

    url, path, blocking = sys.argv[1], sys.argv[2], sys.argv[5]
    step, ttl = float(sys.argv[3]), float(sys.argv[4])

    def progress(line):
        print(line, flush=True)
        if blocking == "block":
            time.sleep(step)  # a stalled process: not even the lock's renewal task runs
            return None
        return asyncio.sleep(step)  # a slow apply that keeps its event loop running

    result = reconciler.apply_sync([path], ConnectOptions(servers=[url]), lock_ttl=ttl, progress=progress)
    print("DONE", len(result.steps), flush=True)
""")


def start_slow_apply(
    url: str, directory: Path, step_seconds: float, ttl: float, blocking: bool = False
) -> subprocess.Popen[str]:
    args = [url, str(directory), str(step_seconds), str(ttl), "block" if blocking else "async"]
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_APPLY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_killed_holder_lock_expires_and_a_later_run_converges(nats_server, tmp_path):
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 6, consumers=True)
    holder = start_slow_apply(url, directory, step_seconds=0.5, ttl=3)
    for _ in range(2):
        assert holder.stdout.readline().startswith("created stream/")
    # Its stream creates are in flight together; kill it once they are done, while it works through the
    # first wave's progress (0.5s a step) and before the consumers' wave.
    deadline = time.monotonic() + 10
    while set(stream_names(url)) - {LOCK_STREAM} != {f"S{i:03}" for i in range(6)}:
        assert time.monotonic() < deadline, stream_names(url)
        time.sleep(0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    # Killed in the middle: the streams are there, their consumers are not.
    assert set(stream_names(url)) - {LOCK_STREAM} == {f"S{i:03}" for i in range(6)}
    assert all(consumer_config(url, f"S{i:03}", "c") is None for i in range(6))
    assert lock_is_held(url)

    started = time.monotonic()
    result = run_cli("apply", str(directory), "--lock-timeout", "30s", url=url)
    waited = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applied:" in result.stdout
    assert waited > 1.0  # it had to wait for the dead holder's lease to run out
    assert all(consumer_config(url, f"S{i:03}", "c") is not None for i in range(6))
    assert not lock_is_held(url)  # and it left no lock behind


def test_a_long_apply_keeps_its_lock_and_a_waiter_times_out_naming_it(nats_server, tmp_path):
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 8, consumers=True)
    holder = start_slow_apply(url, directory, step_seconds=2.0, ttl=1.5)  # two 2s waves, a 2s lease
    assert holder.stdout.readline().startswith("created stream/")
    patient = subprocess.Popen(
        [*CLI, "apply", str(directory), "--lock-timeout", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NATS_URL": url},
    )
    waiter = run_cli("apply", str(directory), "--lock-timeout", "1.5s", url=url)
    assert waiter.returncode == 1
    assert "timed out" in waiter.stderr and f"pid {holder.pid}" in waiter.stderr
    assert "Traceback" not in waiter.stderr
    out, err = holder.communicate(timeout=60)
    # The patient one waited for the holder, re-planned under the lock, and found nothing left to do.
    patient_out, patient_err = patient.communicate(timeout=60)
    assert patient.returncode == 0, patient_out + patient_err
    assert "No changes (applied by" in patient_out and f"pid {holder.pid})" in patient_out
    assert holder.returncode == 0, out + err
    assert "DONE" in out and "lost" not in err.lower()
    assert len(stream_names(url)) == 9
    assert all(consumer_config(url, f"S{i:03}", "c") is not None for i in range(8))
    assert not lock_is_held(url)


def test_no_op_apply_never_touches_the_lock_bucket(nats_server, tmp_path):
    url = nats_server.url
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)
    assert run_cli("apply", str(manifests), url=url).returncode == 0
    state = request(url, f"$JS.API.STREAM.INFO.{LOCK_STREAM}")["state"]
    for _ in range(3):
        result = run_cli("apply", str(manifests), url=url)
        assert result.returncode == 0 and "No changes" in result.stdout
    assert request(url, f"$JS.API.STREAM.INFO.{LOCK_STREAM}")["state"]["last_seq"] == state["last_seq"]
    # Not even the bucket: with it gone, a no-op run does not create it again.
    request(url, f"$JS.API.STREAM.DELETE.{LOCK_STREAM}")
    assert run_cli("apply", str(manifests), url=url).returncode == 0
    assert LOCK_STREAM not in stream_names(url)


def test_lock_show_and_break(nats_server, tmp_path):
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 4, consumers=True)
    # The streams' wave lasts 3s; the lock is broken during it, so the consumers' wave must not start.
    holder = start_slow_apply(url, directory, step_seconds=3.0, ttl=30)
    assert holder.stdout.readline().startswith("created stream/")
    shown = run_cli("lock", "show", url=url)
    assert f"pid {holder.pid}" in shown.stdout
    refused = run_cli("lock", "break", url=url)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    broken = run_cli("lock", "break", "--yes", url=url)
    assert broken.returncode == 0 and f"pid {holder.pid}" in broken.stdout
    _, err = holder.communicate(timeout=60)
    assert holder.returncode != 0 and "lost the apply lock" in err  # it stopped before its next change
    assert stream_config(url, "S000") is not None
    assert all(consumer_config(url, f"S{i:03}", "c") is None for i in range(4))


def test_a_stalled_holder_loses_the_lock_and_stops_before_its_next_change(nats_server, tmp_path):
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 8, consumers=True)
    # 8 blocking 0.25s steps in a row: 2s without a renewal, past the 2s lease (1.5s, whole seconds).
    holder = start_slow_apply(url, directory, step_seconds=0.25, ttl=1.5, blocking=True)
    assert holder.stdout.readline().startswith("created stream/")
    other = run_cli("apply", str(directory), "--lock-timeout", "60s", url=url)
    _, err = holder.communicate(timeout=60)
    assert holder.returncode != 0 and "lost the apply lock" in err
    assert all(consumer_config(url, f"S{i:03}", "c") is not None for i in range(8))  # the other one did them
    assert other.returncode == 0 and "Applied: 8 to create" in other.stdout
    assert not lock_is_held(url)
