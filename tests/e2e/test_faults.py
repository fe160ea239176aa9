"""Faults on a single server: a crash and restart mid-apply, a connection that drops, an API that is not there
or never answers. Every run is bounded: each subprocess has a timeout and wall times are measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.connection import ConnectOptions, connect
from reconciler.devserver import free_port
from reconciler.errors import ConnectError, TimeoutError_
from tests.cluster import start_slow_apply
from tests.helpers import (
    CLI,
    consumer_config,
    lock_is_held,
    lock_message,
    run_cli,
    stream_names,
    write,
)

pytestmark = pytest.mark.e2e


def many_streams(directory: Path, count: int) -> Path:
    """`count` streams, then a consumer on each: an apply in two waves."""
    docs = [f'kind: Stream\nname: S{i:03}\nspec: {{subjects: ["s{i:03}.>"]}}\n' for i in range(count)]
    docs += [
        f"kind: Consumer\nstream: S{i:03}\nname: c\nspec: {{ack_policy: explicit}}\n" for i in range(count)
    ]
    write(directory, "streams.yaml", "---\n".join(docs))
    return directory


def assert_clear_failure(result: subprocess.CompletedProcess[str] | tuple[int, str, str]) -> str:
    code, out, err = (
        (result.returncode, result.stdout, result.stderr)
        if isinstance(result, subprocess.CompletedProcess)
        else result
    )
    assert code == 1, f"exit {code}\n{out}{err}"
    assert "Traceback" not in err and "unexpected error" not in err, err
    # One error line (library warnings, e.g. about the lock's release, may come before it).
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return err[err.index("error: ") :]


def plan_clean(url: str, path: Path) -> None:
    result = run_cli("plan", str(path), "--detailed-exitcode", url=url, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_server_crash_and_restart_in_the_middle_of_an_apply(nats_server, tmp_path):
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 8)
    ttl = 3.0
    holder = start_slow_apply(url, directory, step=0.3, ttl=ttl)
    try:
        assert holder.stdout.readline().startswith("created stream/")
        nats_server.kill()  # SIGKILL: no clean shutdown, JetStream recovers from its store on restart
        time.sleep(0.5)
        nats_server.start()  # same port, same storage directory
        out, err = holder.communicate(timeout=90)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
    finished = time.monotonic()
    print(f"holder exit {holder.returncode}: {out.strip()} {err.strip()}")
    assert "Traceback" not in err, err
    if holder.returncode == 0:  # the transient errors were retried
        assert "DONE 16" in out, out + err
    else:  # or a clear failure that says how far it got
        assert_clear_failure((holder.returncode, out, err))
        assert "Not done:" in err or "lock" in err, err
    # Whatever happened, the lock does not outlive its lease.
    time.sleep(max(0.0, finished + ttl + 1.5 - time.monotonic()))
    assert not lock_is_held(url), lock_message(url)
    second = run_cli("apply", str(directory), "--lock-timeout", "10s", url=url, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    plan_clean(url, directory)
    assert len(stream_names(url)) == 9
    assert all(consumer_config(url, f"S{i:03}", "c") is not None for i in range(8))
    assert not lock_is_held(url)


def connections(monitor_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz", timeout=2) as answer:
        return int(json.load(answer)["num_connections"])


def test_connection_drops_while_the_cli_waits(server_factory, tmp_path):
    monitor = free_port()
    nats_server = server_factory(args=("-m", str(monitor)))
    url = nats_server.url
    directory = many_streams(tmp_path / "m", 3)
    holder = start_slow_apply(url, directory, step=5, ttl=30)  # holds the lock for 10s
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update(NATS_URL=url, NO_COLOR="1")
    waiter = None
    try:
        assert holder.stdout.readline().startswith("created stream/")
        waiter = subprocess.Popen(
            [*CLI, "apply", str(directory), "--lock-timeout", "120s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 30
        while connections(monitor) < 2 and time.monotonic() < deadline:  # the holder and the waiter
            time.sleep(0.2)
        time.sleep(1.5)  # planned, found the lock held: it is in its wait loop now
        nats_server.kill()  # and stays down
        killed = time.monotonic()
        out, err = waiter.communicate(timeout=90)
        elapsed = time.monotonic() - killed
        holder_out, holder_err = holder.communicate(timeout=90)
    finally:
        for process in (holder, waiter):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    print(f"waiter exit {waiter.returncode} after {elapsed:.1f}s: {err.strip()}")
    print(f"holder exit {holder.returncode}: {holder_err.strip()}")
    message = assert_clear_failure((waiter.returncode, out, err))
    assert "connect" in message.lower() or "closed" in message.lower(), message
    assert elapsed < 30, f"the waiter took {elapsed:.1f}s to give up: {message}"
    assert_clear_failure((holder.returncode, holder_out, holder_err))


def test_server_without_jetstream_is_a_clear_error(server_factory, tmp_path):
    plain = server_factory(jetstream=False)
    directory = many_streams(tmp_path / "m", 1)
    for command in ("plan", "apply"):
        started = time.monotonic()
        result = run_cli(command, str(directory), "--timeout", "1s", url=plain.url, timeout=60)
        elapsed = time.monotonic() - started
        message = assert_clear_failure(result)
        assert "JetStream" in message and "enabled" in message, message
        assert elapsed < 15, f"{command} took {elapsed:.1f}s"


BLACK_HOLE = textwrap.dedent("""
    import asyncio, sys
    import nats

    async def main():
        nc = await nats.connect(sys.argv[1])
        await nc.subscribe("$JS.API.>")  # takes every API request and never answers
        await nc.flush()
        print("ready", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
""")


@contextlib.contextmanager
def black_hole(url: str) -> Iterator[None]:
    """A subscriber on `$JS.API.>` that never answers, for as long as the block runs."""
    hole = subprocess.Popen(
        [sys.executable, "-c", BLACK_HOLE, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert hole.stdout.readline().strip() == "ready", hole.stderr.read()
        yield
    finally:
        hole.kill()
        hole.wait(timeout=10)


def test_an_api_that_never_answers_honours_the_timeout(server_factory, tmp_path):
    plain = server_factory(jetstream=False)
    with black_hole(plain.url):
        directory = many_streams(tmp_path / "m", 1)
        started = time.monotonic()
        result = run_cli("plan", str(directory), "--timeout", "1s", url=plain.url, timeout=60)
        elapsed = time.monotonic() - started
    print(f"plan exit {result.returncode} after {elapsed:.1f}s: {result.stderr.strip()}")
    message = assert_clear_failure(result)
    assert "within 1s" in message and "$JS.API.INFO" in message, message
    # A few retries of 1s each, not the 5s default: generous, but far below 4 x 5s.
    assert 1.0 <= elapsed < 15, f"took {elapsed:.1f}s"


def test_a_timeout_says_jetstream_did_not_answer(server_factory):
    plain = server_factory(jetstream=False)
    with black_hole(plain.url):
        options = ConnectOptions(servers=[plain.url], timeout=0.5)

        async def ask() -> None:
            conn = await connect(options)
            try:
                await conn.request("INFO", retries=0)
            finally:
                await conn.close()

        with pytest.raises(TimeoutError_) as caught:
            asyncio.run(ask())
    assert "JetStream" in str(caught.value), str(caught.value)


def test_nothing_listening_fails_within_the_timeout(tmp_path):
    directory = many_streams(tmp_path / "m", 1)
    url = f"nats://127.0.0.1:{free_port()}"  # a free port: connection refused
    started = time.monotonic()
    result = run_cli("apply", str(directory), "--timeout", "1s", url=url, timeout=60)
    elapsed = time.monotonic() - started
    message = assert_clear_failure(result)
    assert "cannot connect" in message and url in message, message
    assert elapsed < 15, (
        f"took {elapsed:.1f}s"
    )  # the 1s bound itself: test_connecting_honours_a_short_timeout


def test_connecting_honours_a_short_timeout():
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectError):
        asyncio.run(connect(ConnectOptions(servers=[url], timeout=1.0)))
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"a 1s connect timeout took {elapsed:.1f}s"


def test_unknown_js_domain_is_a_clear_error(nats_server, tmp_path):
    directory = many_streams(tmp_path / "m", 1)
    started = time.monotonic()
    result = run_cli(
        "plan", str(directory), "--js-domain", "nosuch", "--timeout", "1s", url=nats_server.url, timeout=60
    )
    elapsed = time.monotonic() - started
    message = assert_clear_failure(result)
    assert "nosuch" in message and "JetStream" in message, message
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert stream_names(nats_server.url) == []  # nothing was created anywhere
