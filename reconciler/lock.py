"""The apply lock: one key in a JetStream KV bucket, taken with compare-and-set, renewed, released.

Acquire publishes with `Nats-Expected-Last-Subject-Sequence: 0` (a KV create), renew expects our last
revision, release purges expecting it too; see ../shared/reference/kv-lock.md. A crashed holder's lock
expires: per-message TTL (`Nats-TTL`, nats-server >= 2.11, API level >= 1) or the bucket's max_age (2.10).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from .connection import Connection
from .errors import ApiError, ConnectError, LockError, TimeoutError_

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "nats_reconcile"
DEFAULT_SCOPE = "default"

_NS = 1_000_000_000
_DUPLICATE_WINDOW = 120 * _NS  # the KV default (2m)
_MARKER_TTL = 60 * _NS  # how long an expiry marker stays; >= 1s or the server refuses it
_CAS_FAILED = frozenset({10071, 10164})  # wrong last sequence: R1 streams / replicated streams
_NO_MESSAGE = 10037
_STREAM_NOT_FOUND = 10059
_STREAM_EXISTS_DIFFERENT = 10058
_TOO_FEW_PEERS = (10005, 10023)  # insufficient resources / not enough peers for the replicas


@dataclass(frozen=True)
class LockBucket:
    """The bucket as found: which expiry mode it supports and its max_age in seconds (0 = none)."""

    name: str
    per_key_ttl: bool
    max_age: float


async def server_supports_msg_ttl(conn: Connection) -> bool:
    """Per-message TTL arrived with API level 1 (nats-server 2.11); 2.10 reports no level."""
    info = await conn.request("INFO")
    return int((info.get("api") or {}).get("level") or 0) >= 1


def bucket_config(bucket: str, *, per_key_ttl: bool, ttl: float, replicas: int = 1) -> dict[str, Any]:
    """The ADR-8 KV stream config. Deterministic: racing creators must send identical bytes."""
    config: dict[str, Any] = {
        "name": f"KV_{bucket}",
        "description": "nats-reconcile apply lock",
        "subjects": [f"$KV.{bucket}.>"],
        "retention": "limits",
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": 1,
        "max_msg_size": -1,
        "discard": "new",
        "storage": "file",
        "num_replicas": replicas,
        "duplicate_window": _DUPLICATE_WINDOW,
        "allow_direct": True,
        "deny_delete": True,
        "deny_purge": False,
        "allow_rollup_hdrs": True,
    }
    if per_key_ttl:
        # The marker makes an expiry visible to watchers (2.11+); without it the key just vanishes.
        config |= {"allow_msg_ttl": True, "subject_delete_marker_ttl": _MARKER_TTL}
    else:
        max_age = max(int(ttl * _NS), _NS // 10)  # the server's minimum max_age is 100ms
        # A duplicate window above max_age is adjusted silently, or refused in pedantic mode (10157).
        config |= {"max_age": max_age, "duplicate_window": min(_DUPLICATE_WINDOW, max_age)}
    return config


async def ensure_bucket(
    conn: Connection, bucket: str, *, per_key_ttl: bool, ttl: float, replicas: int | None = None
) -> LockBucket:
    """Create the lock bucket, or use the existing one if a lock can work in it. Never updates it.

    On a cluster the bucket is R3, so that the lock survives the loss of one node like the R3 streams
    it guards; a cluster too small for that (10005, 10023) gets R1.
    """
    stream = f"KV_{bucket}"
    if replicas is None:
        replicas = 3 if conn.nc._server_info.get("cluster") else 1
    try:
        try:
            body = bucket_config(bucket, per_key_ttl=per_key_ttl, ttl=ttl, replicas=replicas)
            config = (await conn.request(f"STREAM.CREATE.{stream}", body))["config"]
        except ApiError as exc:
            if replicas == 1 or exc.err_code not in _TOO_FEW_PEERS:
                raise
            body = bucket_config(bucket, per_key_ttl=per_key_ttl, ttl=ttl, replicas=1)
            config = (await conn.request(f"STREAM.CREATE.{stream}", body))["config"]
    except ApiError as exc:
        if exc.err_code != _STREAM_EXISTS_DIFFERENT:
            raise LockError(f"cannot create the lock bucket {bucket!r}: {exc}") from exc
        config = (await conn.request(f"STREAM.INFO.{stream}"))["config"]
    except (TimeoutError_, ConnectError) as exc:
        raise LockError(f"cannot create the lock bucket {bucket!r}: {exc}") from exc
    return _usable(bucket, config, per_key_ttl)


def _usable(bucket: str, config: dict[str, Any], want_per_key: bool) -> LockBucket:
    problems = []
    if f"$KV.{bucket}.>" not in (config.get("subjects") or []):
        problems.append(f"its subjects are not $KV.{bucket}.>")
    if config.get("mirror") or config.get("sealed"):
        problems.append("it is a mirror or sealed, so it cannot be written")
    if config.get("retention", "limits") != "limits":
        problems.append("its retention is not limits")
    if not config.get("allow_rollup_hdrs") or config.get("deny_purge"):
        problems.append("it does not allow roll-up purges (needed to release the lock)")
    max_age = int(config.get("max_age") or 0) / _NS
    per_key = bool(config.get("allow_msg_ttl")) and (want_per_key or not max_age)
    if not per_key and not max_age:
        problems.append(
            "it has neither per-message TTL nor a max_age, so a crashed holder's lock would never expire"
        )
    if problems:
        raise LockError(
            f"the lock bucket {bucket!r} exists but cannot hold the apply lock: "
            + "; ".join(problems)
            + f". Delete the stream KV_{bucket} or choose another bucket."
        )
    return LockBucket(bucket, per_key, max_age)


@dataclass
class _Entry:
    """The last message stored on the lock subject."""

    seq: int
    headers: dict[str, str]  # names lower-cased: clients differ in how they spell them
    data: bytes
    time: str

    @property
    def is_marker(self) -> bool:
        # KV delete/purge (any client) or a server marker for an expired message (2.11+).
        return self.headers.get("kv-operation") in ("DEL", "PURGE") or "nats-marker-reason" in self.headers

    @property
    def holder(self) -> dict[str, Any]:
        try:
            value = json.loads(self.data)
        except ValueError:
            value = None
        return value if isinstance(value, dict) else {"raw": self.data.decode(errors="replace")}


def _parse_headers(raw: bytes) -> dict[str, str]:
    lines = raw.decode(errors="replace").split("\r\n")[1:]  # the first line is "NATS/1.0"
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines) if k}


async def _last(conn: Connection, bucket: str, subject: str) -> _Entry | None:
    try:
        answer = await conn.request(f"STREAM.MSG.GET.KV_{bucket}", {"last_by_subj": subject})
    except ApiError as exc:
        if exc.err_code in (_NO_MESSAGE, _STREAM_NOT_FOUND):
            return None
        raise
    msg = answer["message"]
    headers = _parse_headers(base64.b64decode(msg["hdrs"])) if msg.get("hdrs") else {}
    data = base64.b64decode(msg["data"]) if msg.get("data") else b""
    return _Entry(int(msg["seq"]), headers, data, str(msg.get("time", "")))


class _CasFailed(Exception):
    pass


class _NoAck(Exception):
    """The publish may or may not have been stored."""


async def _publish(
    conn: Connection, subject: str, payload: bytes, headers: dict[str, str], timeout: float | None = None
) -> int:
    """Publish to the stream and return the stored sequence from the PubAck."""
    try:
        msg = await conn.nc.request(subject, payload, timeout=timeout or conn.timeout, headers=headers)
    except (NatsTimeout, NoRespondersError, ConnectionClosedError) as exc:
        raise _NoAck(str(exc) or type(exc).__name__) from exc
    ack = json.loads(msg.data) if msg.data else {}
    error = ack.get("error")
    if error:
        if int(error.get("err_code", 0)) in _CAS_FAILED:
            raise _CasFailed(error.get("description", ""))
        code, err_code = int(error.get("code", 0)), int(error.get("err_code", 0))
        raise ApiError(subject, code, err_code, str(error.get("description", "")))
    return int(ack["seq"])


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime | None:
    # The server sends nanoseconds; fromisoformat (3.10) takes at most microseconds and no "Z".
    match = re.fullmatch(r"(.+?T[\d:]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text or "")
    if not match:
        return None
    base, fraction, zone = match.groups()
    fraction = ((fraction or "") + "000000")[:6]
    return datetime.fromisoformat(f"{base}.{fraction}{'+00:00' if zone == 'Z' else zone}")


def _held_for(entry: _Entry) -> float:
    started = _parse_time(str(entry.holder.get("started", ""))) or _parse_time(entry.time)
    return max(0.0, (datetime.now(timezone.utc) - started).total_seconds()) if started else 0.0


def _describe(entry: _Entry) -> str:
    h = entry.holder
    return f"{h.get('host', '?')} pid {h.get('pid', '?')} (id {h.get('id', '?')}) for {_held_for(entry):.0f}s"


def _taken_from_us(entry: _Entry | None) -> str:
    if entry is None or entry.is_marker:
        return "the lock was released, broken or expired while we held it"
    return f"held by {_describe(entry)} now"


def _key(scope: str) -> str:
    return f"apply.{scope}"


async def read_lock(
    conn: Connection, bucket: str = DEFAULT_BUCKET, scope: str = DEFAULT_SCOPE
) -> dict | None:
    """The current holder, or None if the lock is free. For `lock show`."""
    entry = await _last(conn, bucket, f"$KV.{bucket}.{_key(scope)}")
    if entry is None or entry.is_marker:
        return None
    return {
        "holder": entry.holder,
        "revision": entry.seq,
        "held_for": _held_for(entry),
        "updated": entry.time,
    }


async def break_lock(
    conn: Connection, bucket: str = DEFAULT_BUCKET, scope: str = DEFAULT_SCOPE
) -> dict | None:
    """Purge the lock whatever its revision; return the holder removed. The holder's next renew fails."""
    current = await read_lock(conn, bucket, scope)
    if current is not None:
        try:
            await _publish(
                conn, f"$KV.{bucket}.{_key(scope)}", b"", {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
            )
        except _NoAck as exc:
            raise LockError(f"cannot break the lock in bucket {bucket!r}: {exc}") from exc
    return current


class ApplyLock:
    """`async with ApplyLock(conn) as lock:` ... `await lock.check()` before every change."""

    def __init__(
        self,
        conn: Connection,
        *,
        bucket: str = DEFAULT_BUCKET,
        scope: str = DEFAULT_SCOPE,
        ttl: float = 30.0,
        timeout: float = 60.0,
        info: dict | None = None,
        per_key_ttl: bool | None = None,  # None: per-key TTL when the server has it (2.11+)
    ):
        if ttl <= 0:
            raise ValueError("the lock ttl must be positive")
        self.conn = conn
        self.bucket = bucket
        self.scope = scope
        self.ttl = float(ttl)
        self.timeout = float(timeout)
        self.per_key_ttl = per_key_ttl
        self.subject = f"$KV.{bucket}.{_key(scope)}"
        self._holder: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now_rfc3339(),
            "ttl": self.ttl,
            "info": dict(info or {}),
        }
        self._revision: int | None = None
        self._lease = self.ttl  # how long the server keeps an unrenewed value
        self._nats_ttl: str | None = None
        self._renewed_at = 0.0  # monotonic time the last successful renewal was *sent*
        self._acquired_at: float | None = None
        self._released_at: float | None = None
        self._waited = 0.0
        self.previous_holder: dict[str, Any] | None = None
        self._lost: str | None = None
        self._problem = "the key kept changing under us"
        self._task: asyncio.Task[None] | None = None

    holder = property(
        lambda self: dict(self._holder), doc="The value we write: id, host, pid, started, ttl, info."
    )
    revision = property(
        lambda self: self._revision, doc="The stream sequence of our last write, None if not held."
    )
    waited = property(lambda self: self._waited, doc="Seconds spent waiting for the lock.")
    lost = property(lambda self: self._lost is not None)

    @property
    def held_for(self) -> float:
        if self._acquired_at is None:
            return 0.0
        return (self._released_at or time.monotonic()) - self._acquired_at

    async def __aenter__(self) -> ApplyLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def acquire(self) -> None:
        start = time.monotonic()
        deadline = start + self.timeout
        per_key = (
            self.per_key_ttl if self.per_key_ttl is not None else await server_supports_msg_ttl(self.conn)
        )
        found = await ensure_bucket(self.conn, self.bucket, per_key_ttl=per_key, ttl=self.ttl)
        if found.per_key_ttl:
            seconds = max(1, math.ceil(self.ttl))  # Nats-TTL must be >= 1s (10165 otherwise)
            self._nats_ttl = f"{seconds}s"
            self._lease = min(seconds, found.max_age) if found.max_age else seconds
        else:
            self._lease = found.max_age
        wake = asyncio.Event()

        async def on_message(msg: Any) -> None:
            # Only releases wake waiters: failed CAS publishes reach core subscribers too, and waking on
            # those would make every waiter's retry wake all the others. Expiry markers are stored by the
            # server but not published to core subscribers; polling finds them.
            if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
                wake.set()

        sub = None
        try:
            while True:
                wake.clear()
                self._holder["started"] = _now_rfc3339()
                entry = await self._try_acquire(start)
                if entry is None:
                    break
                if entry.seq:
                    self.previous_holder = entry.holder  # whoever we waited for, to name in reports
                if sub is None:  # subscribe only once we must wait, then look again at once
                    sub = await self.conn.nc.subscribe(self.subject, cb=on_message)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    where = f"the apply lock (bucket {self.bucket!r}, key {_key(self.scope)!r})"
                    if not entry.seq:
                        raise LockError(f"could not take {where} within {self.timeout:g}s: {self._problem}")
                    raise LockError(
                        f"timed out after {self.timeout:g}s waiting for {where}: held by {_describe(entry)}. "
                        f"If that process is gone the lock expires within {self._lease:g}s; "
                        "`nats-reconcile lock break` removes it now."
                    )
                poll = random.uniform(0.5, 1.5) * min(max(self._lease / 4, 0.25), 2.0)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=min(remaining, poll))
                if wake.is_set():
                    await asyncio.sleep(random.uniform(0, 0.05))  # spread the herd a little
        except BaseException:
            # Cancelled or failed after a write that may have landed: do not leave our value behind.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._abandon(), timeout=2)
            raise
        finally:
            self._waited = time.monotonic() - start
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._acquired_at = time.monotonic()
        self._task = asyncio.create_task(self._renew_loop(), name=f"renew lock {self.subject}")

    def _headers(self, expected: int) -> dict[str, str]:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expected)}
        if self._nats_ttl:
            headers["Nats-TTL"] = self._nats_ttl  # every write must carry it, or the value never expires
        return headers

    async def _try_acquire(self, start: float) -> _Entry | None:
        """One round of compare-and-set create; None when we hold the lock, else the holder's entry."""
        expected = 0
        entry: _Entry | None = None
        for _ in range(5):  # a marker can be replaced or expire between our read and our write
            sent = time.monotonic()
            try:
                self._revision = await _publish(
                    self.conn, self.subject, self._value(), self._headers(expected)
                )
                self._renewed_at = sent
                return None
            except _CasFailed:
                pass
            except _NoAck as exc:
                self._problem = f"no answer to the write: {exc}"  # it may have been stored: look
            entry = await _last(self.conn, self.bucket, self.subject)
            if entry is None:
                expected = 0
            elif entry.is_marker:
                expected = entry.seq
                if entry.data and "id" in entry.holder:
                    self.previous_holder = entry.holder  # who released it last (see release)
            elif entry.holder.get("id") == self._holder["id"]:
                # Our write landed but its ack was lost. It was sent after `start`; renew now so the
                # lease is timed from a known send.
                self._revision = entry.seq
                self._renewed_at = start
                await self.renew()
                if self._lost:
                    raise LockError(f"lost the apply lock while taking it: {self._lost}")
                return None
            else:
                return entry
        return entry or _Entry(0, {}, b"{}", "")  # seq 0: we never saw a holder; see _problem

    async def _abandon(self) -> None:
        entry = await _last(self.conn, self.bucket, self.subject)
        if entry is not None and not entry.is_marker and entry.holder.get("id") == self._holder["id"]:
            headers = {
                "KV-Operation": "PURGE",
                "Nats-Rollup": "sub",
                "Nats-Expected-Last-Subject-Sequence": str(entry.seq),
            }
            await _publish(self.conn, self.subject, b"", headers)
        self._revision = None

    def _value(self) -> bytes:
        return json.dumps(self._holder, separators=(",", ":")).encode()

    async def _renew_loop(self) -> None:
        every = min(self.ttl, self._lease) / 3
        while self._lost is None:
            await asyncio.sleep(max(0.05, self._renewed_at + every - time.monotonic()))
            before = self._renewed_at
            await self.renew()
            if self._renewed_at == before and self._lost is None:
                await asyncio.sleep(max(0.2, every / 3))  # unreachable: retry sooner

    async def renew(self) -> None:
        """Extend the lease with a compare-and-set on our revision. A failure marks the lock lost."""
        if self._lost is not None or self._revision is None:
            return
        for _ in range(2):
            sent = time.monotonic()
            try:
                # Wait no longer than a third of the lease for the ack, to leave time to retry.
                timeout = min(self.conn.timeout, max(0.5, self._lease / 3))
                self._revision = await _publish(
                    self.conn, self.subject, self._value(), self._headers(self._revision), timeout
                )
                self._renewed_at = sent
                return
            except _CasFailed:
                entry = await self._last_or_none()
                if entry is not None and not entry.is_marker and entry.holder.get("id") == self._holder["id"]:
                    self._revision = entry.seq  # an earlier renewal landed but its ack was lost
                    continue
                self._mark_lost(_taken_from_us(entry))
                return
            except (_NoAck, ConnectError, TimeoutError_) as exc:
                self._check_lease(f"could not renew it: {exc}")
                return
            except ApiError as exc:  # e.g. the bucket was replaced by one without per-message TTL (10166)
                self._mark_lost(f"renewing failed: {exc}")
                return

    async def _last_or_none(self) -> _Entry | None:
        try:
            return await _last(self.conn, self.bucket, self.subject)
        except (ConnectError, TimeoutError_, ApiError):
            return None

    def _check_lease(self, why: str) -> None:
        overdue = time.monotonic() - self._renewed_at
        if overdue >= self._lease:
            self._mark_lost(f"not renewed for {overdue:.1f}s, past its {self._lease:g}s lease ({why})")

    def _mark_lost(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            log.warning("lost the apply lock %s: %s", self.subject, why)

    async def check(self, *, verify: bool = False) -> None:
        """Raise LockError if the lock was lost. `verify` also reads the key from the server."""
        if self._revision is None or self._released_at is not None:
            raise LockError("the apply lock is not held")
        if self._lost is None:
            self._check_lease("the renewal task fell behind")
        if self._lost is None and verify:
            # Compare ids, not revisions: a renewal in flight may have stored a newer revision of ours.
            entry = await _last(self.conn, self.bucket, self.subject)
            if entry is None or entry.is_marker or entry.holder.get("id") != self._holder["id"]:
                self._mark_lost(_taken_from_us(entry))
        if self._lost is not None:
            raise LockError(
                f"lost the apply lock (bucket {self.bucket!r}, key {_key(self.scope)!r}): "
                f"{self._lost}. Stopping before the next change; run apply again."
            )

    async def release(self) -> None:
        """Purge our value if it is still ours. Never raises for a server problem: the lease expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._revision is None or self._released_at is not None:
            return
        self._released_at = time.monotonic()
        purge = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
        expected = self._revision
        for _ in range(3):
            try:
                # The purge marker carries our holder record, so the next holder can say who was last.
                await _publish(
                    self.conn,
                    self.subject,
                    self._value(),
                    {**purge, "Nats-Expected-Last-Subject-Sequence": str(expected)},
                )
                return
            except _CasFailed:
                # A renewal cancelled in flight may have stored a newer revision of ours: purge that one.
                entry = await self._last_or_none()
                if entry is None or entry.is_marker or entry.holder.get("id") != self._holder["id"]:
                    return  # someone else's now, or already gone
                expected = entry.seq
            except (_NoAck, ConnectError, TimeoutError_, ApiError) as exc:
                log.warning(
                    "could not release the apply lock %s (%s); it expires within %gs",
                    self.subject,
                    exc,
                    self._lease,
                )
                return
