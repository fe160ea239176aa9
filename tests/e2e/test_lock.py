"""The apply lock against a real nats-server: every assertion reads the KV key back from the server."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.connection import Connection, ConnectOptions, connect
from reconciler.errors import ApiError, LockError
from reconciler.lock import DEFAULT_BUCKET, ApplyLock, break_lock, ensure_bucket, read_lock
from reconciler.versions import parse_version

pytestmark = [pytest.mark.e2e, pytest.mark.compat]

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = f"$KV.{DEFAULT_BUCKET}.apply.default"
# None: detect per-message TTL from $JS.API.INFO (2.11+); False: force the 2.10 bucket max_age mode.
MODES = [pytest.param(None, id="per-key-ttl"), pytest.param(False, id="bucket-ttl")]


@pytest.fixture(autouse=True)
def _per_key_ttl_needs_2_11(request, nats_server):
    """Per-message TTL arrived in 2.11; on 2.10 the detected mode is the bucket mode, tested on its own."""
    callspec = getattr(request.node, "callspec", None)
    detects_mode = callspec is not None and callspec.params.get("per_key_ttl", False) is None
    needs_it = detects_mode or request.node.get_closest_marker("per_key_ttl") is not None
    if needs_it and parse_version(nats_server.version) < (2, 11, 0):
        pytest.skip(f"per-message TTL needs nats-server 2.11; this is {nats_server.version}")


async def last_message(conn: Connection, bucket: str = DEFAULT_BUCKET, subject: str = SUBJECT) -> dict | None:
    """The last stored message on the lock key, straight from STREAM.MSG.GET; None if there is none."""
    try:
        msg = (await conn.request(f"STREAM.MSG.GET.KV_{bucket}", {"last_by_subj": subject}))["message"]
    except ApiError as exc:
        if exc.err_code == 10037:  # no message found
            return None
        raise
    raw = base64.b64decode(msg.get("hdrs", "")).decode()
    headers = dict(line.split(": ", 1) for line in raw.split("\r\n")[1:] if line)
    data = base64.b64decode(msg.get("data", ""))
    return {"seq": msg["seq"], "headers": headers, "data": json.loads(data) if data else None}


def assert_no_live_value(message: dict | None) -> None:
    assert message is None or message["headers"].get("KV-Operation") == "PURGE", message


@pytest.mark.parametrize("per_key_ttl", MODES)
async def test_acquire_and_release_on_server(conn, per_key_ttl):
    async with ApplyLock(conn, ttl=5, info={"manifest": "sha256:abc"}, per_key_ttl=per_key_ttl) as lock:
        stored = await last_message(conn)
        assert stored is not None and stored["seq"] == lock.revision
        holder = stored["data"]
        assert holder == lock.holder
        assert holder["host"] == socket.gethostname() and holder["pid"] == os.getpid()
        assert holder["info"] == {"manifest": "sha256:abc"} and holder["ttl"] == 5
        assert len(holder["id"]) == 32 and holder["started"].endswith("Z")
        assert (await read_lock(conn))["holder"]["id"] == holder["id"]

        config = (await conn.request(f"STREAM.INFO.KV_{DEFAULT_BUCKET}"))["config"]
        assert config["max_msgs_per_subject"] == 1 and config["discard"] == "new"
        assert config["deny_delete"] and config["allow_rollup_hdrs"] and config["allow_direct"]
        if per_key_ttl is None:  # the 2.15 fixture server has per-message TTL
            assert stored["headers"]["Nats-TTL"] == "5s"
            assert config["allow_msg_ttl"] and config["subject_delete_marker_ttl"] >= 1_000_000_000
            assert config["max_age"] == 0
        else:
            assert "Nats-TTL" not in stored["headers"]
            assert not config.get("allow_msg_ttl")
            assert config["max_age"] == config["duplicate_window"] == 5_000_000_000

    released = await last_message(conn)
    assert released["headers"]["KV-Operation"] == "PURGE" and released["headers"]["Nats-Rollup"] == "sub"
    assert released["seq"] == lock.revision + 1
    assert released["data"]["id"] == holder["id"]  # the marker names who released, for the next holder
    assert await read_lock(conn) is None
    state = (await conn.request(f"STREAM.INFO.KV_{DEFAULT_BUCKET}"))["state"]
    assert state["messages"] <= 1
    # Free again at once, without waiting.
    async with ApplyLock(conn, ttl=5, timeout=1, per_key_ttl=per_key_ttl) as again:
        assert again.waited < 0.5
    assert_no_live_value(await last_message(conn))


@pytest.mark.parametrize("per_key_ttl", MODES)
async def test_racing_acquisitions_take_turns(nats_server, conn, per_key_ttl):
    conns = [await connect(ConnectOptions(servers=[nats_server.url])) for _ in range(10)]
    spans: list[tuple[float, float]] = []

    async def worker(c: Connection) -> None:
        async with ApplyLock(c, ttl=5, timeout=30, per_key_ttl=per_key_ttl) as lock:
            entered = time.monotonic()
            # The server agrees that we, and nobody else, hold it.
            assert (await read_lock(c))["holder"]["id"] == lock.holder["id"]
            await asyncio.sleep(0.05)
            await lock.check()
            spans.append((entered, time.monotonic()))

    try:
        await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), timeout=40)
    finally:
        for c in conns:
            await c.close()
    assert len(spans) == 10
    spans.sort()
    for (_, previous_exit), (next_enter, _) in itertools.pairwise(spans):
        assert next_enter >= previous_exit, spans
    assert_no_live_value(await last_message(conn))


@pytest.mark.parametrize("per_key_ttl", MODES)
async def test_renewal_keeps_the_lock_past_its_ttl(nats_server, conn, per_key_ttl):
    other = await connect(ConnectOptions(servers=[nats_server.url]))
    try:
        async with ApplyLock(conn, ttl=2, per_key_ttl=per_key_ttl) as first:
            first_revision = first.revision
            await asyncio.sleep(4)  # twice the TTL
            with pytest.raises(LockError) as caught:
                async with ApplyLock(other, ttl=2, timeout=1, per_key_ttl=per_key_ttl):
                    pytest.fail("the second contender must not get the lock")
            message = str(caught.value)
            assert f"held by {socket.gethostname()} pid {os.getpid()}" in message
            assert f"(id {first.holder['id']})" in message
            assert re.search(r"\) for [45]s", message), message  # how long it has been held

            stored = await last_message(conn)
            assert stored["data"]["id"] == first.holder["id"]
            assert stored["seq"] == first.revision >= first_revision + 3  # renewed every ttl/3
            if per_key_ttl is None:
                assert stored["headers"]["Nats-TTL"] == "2s"  # each renewal carries the TTL again
            await first.check(verify=True)
            assert first.held_for >= 5
    finally:
        await other.close()
    assert_no_live_value(await last_message(conn))


CHILD = """
import asyncio, sys
from reconciler.connection import ConnectOptions, connect
from reconciler.lock import ApplyLock

async def main():
    conn = await connect(ConnectOptions(servers=[sys.argv[1]]))
    lock = ApplyLock(conn, ttl=2, per_key_ttl=None if sys.argv[2] == "auto" else False)
    await lock.acquire()
    first = lock.revision
    await asyncio.sleep(1.5)  # renew a few times (every ttl/3) before the crash
    print("HELD", lock.holder["id"], first, lock.revision, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.parametrize("per_key_ttl", MODES)
async def test_a_crashed_holders_lock_expires(nats_server, conn, per_key_ttl):
    mode = "auto" if per_key_ttl is None else "bucket"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, nats_server.url, mode], stdout=subprocess.PIPE, cwd=ROOT, env=env
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=15)
        assert line.startswith(b"HELD"), line
        child_id, first_revision, revision = line.decode().split()[1:]
        assert int(revision) > int(first_revision)  # it renewed before it crashed
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        held = await read_lock(conn)
        assert held["holder"]["id"] == child_id and held["holder"]["pid"] == child.pid
        crashed_seq = held["revision"]

        started = time.monotonic()
        async with ApplyLock(conn, ttl=2, timeout=10, per_key_ttl=per_key_ttl) as lock:
            elapsed = time.monotonic() - started
            assert lock.waited > 0.3 and elapsed < 2 + 3
            stored = await last_message(conn)
            assert stored["data"]["id"] == lock.holder["id"]
            # Per-key TTL: the server wrote a MaxAge marker at crashed_seq + 1 and we wrote over it.
            # Bucket max_age: the value just vanished.
            assert lock.revision == crashed_seq + (2 if per_key_ttl is None else 1)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        child.stdout.close()
    assert_no_live_value(await last_message(conn))


async def test_a_broken_lock_is_lost_and_not_released_over_the_new_holder(nats_server, conn):
    other = await connect(ConnectOptions(servers=[nats_server.url]))
    try:
        holder = ApplyLock(conn, ttl=5)
        async with holder:
            removed = await break_lock(other)
            assert removed["holder"]["id"] == holder.holder["id"]
            assert (await last_message(conn))["headers"]["KV-Operation"] == "PURGE"
            newcomer = ApplyLock(other, ttl=5, timeout=2)
            await newcomer.acquire()
            await holder.renew()
            with pytest.raises(LockError, match="lost the apply lock"):
                await holder.check()
            assert holder.lost
        # The old holder's exit did not purge the newcomer's value.
        stored = await last_message(conn)
        assert stored["data"]["id"] == newcomer.holder["id"] and stored["seq"] == newcomer.revision
        await newcomer.release()
        assert_no_live_value(await last_message(conn))
    finally:
        await other.close()


async def test_check_with_verify_sees_a_break_before_the_next_renewal(nats_server, conn):
    async with ApplyLock(conn, ttl=30) as lock:
        await lock.check(verify=True)
        assert (await break_lock(conn))["holder"]["id"] == lock.holder["id"]
        with pytest.raises(LockError, match="released, broken or expired"):
            await lock.check(verify=True)
    assert await break_lock(conn) is None  # nothing left to break


@pytest.mark.per_key_ttl
async def test_a_lost_ack_on_acquire_is_recognised_as_ours(conn):
    lock = ApplyLock(conn, ttl=5, timeout=1)
    await ensure_bucket(conn, DEFAULT_BUCKET, per_key_ttl=True, ttl=5)
    # Our create landed but its ack never came back: the stored value carries our id.
    ack = await conn.nc.request(
        SUBJECT,
        json.dumps(lock.holder).encode(),
        headers={"Nats-Expected-Last-Subject-Sequence": "0", "Nats-TTL": "5s"},
        timeout=2,
    )
    landed = json.loads(ack.data)["seq"]
    async with lock:
        assert lock.waited < 0.5 and lock.revision > landed
        assert (await last_message(conn))["data"]["id"] == lock.holder["id"]
    assert_no_live_value(await last_message(conn))


@pytest.mark.per_key_ttl
async def test_ensure_bucket_races_and_existing_buckets(nats_server, conn):
    conns = [await connect(ConnectOptions(servers=[nats_server.url])) for _ in range(5)]
    try:
        found = await asyncio.gather(*(ensure_bucket(c, "race", per_key_ttl=True, ttl=5) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert all(f.per_key_ttl and f.max_age == 0 for f in found)
    assert (await conn.request("STREAM.INFO.KV_race"))["config"]["allow_msg_ttl"]

    # Exists with another config, but usable: history 5 and a max_age; per-key TTL is off, so max_age rules.
    await conn.request(
        "STREAM.CREATE.KV_other",
        {"name": "KV_other", "subjects": ["$KV.other.>"], "max_msgs_per_subject": 5, "max_age": 3_000_000_000,
         "duplicate_window": 3_000_000_000, "deny_delete": True, "allow_rollup_hdrs": True},
    )  # fmt: skip
    other = await ensure_bucket(conn, "other", per_key_ttl=True, ttl=10)
    assert not other.per_key_ttl and other.max_age == 3
    async with ApplyLock(conn, bucket="other", scope="team-a", ttl=10) as lock:
        stored = await last_message(conn, "other", "$KV.other.apply.team-a")
        assert stored["data"]["id"] == lock.holder["id"] and "Nats-TTL" not in stored["headers"]
    assert_no_live_value(await last_message(conn, "other", "$KV.other.apply.team-a"))

    # Exists, but a lock in it could never expire: refused with a clear message.
    await conn.request(
        "STREAM.CREATE.KV_bad",
        {"name": "KV_bad", "subjects": ["$KV.bad.>"], "max_msgs_per_subject": 1, "allow_rollup_hdrs": True},
    )
    with pytest.raises(LockError, match="never expire"):
        await ensure_bucket(conn, "bad", per_key_ttl=True, ttl=5)
    with pytest.raises(LockError, match="cannot hold the apply lock"):
        await ApplyLock(conn, bucket="bad", timeout=1).acquire()
    assert await last_message(conn, "bad", "$KV.bad.apply.default") is None
