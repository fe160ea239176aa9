"""Test helpers: run the real CLI as a subprocess, write manifests, read the server's real state."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

CLI = [sys.executable, "-m", "reconciler"]
LOCK_STREAM = "KV_nats_reconcile"  # apply's lock: the key apply.<set> of the KV bucket nats_reconcile
LOCK_SUBJECT = "$KV.nats_reconcile.apply.default"


def run_cli(
    *args: str, url: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    full_env["NO_COLOR"] = "1"
    if url:
        full_env["NATS_URL"] = url
    full_env.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def raw_request(url: str, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One `$JS.API` request with plain nats-py, as another client would send it."""
    nc = await nats.connect(url)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        msg = await nc.request(subject, payload, timeout=5)
        return json.loads(msg.data) if msg.data else {}
    finally:
        await nc.close()


def request(url: str, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return asyncio.run(raw_request(url, subject, body))


def stream_config(url: str, name: str) -> dict[str, Any] | None:
    answer = request(url, f"$JS.API.STREAM.INFO.{name}")
    return None if "error" in answer else answer["config"]


def consumer_config(url: str, stream: str, name: str) -> dict[str, Any] | None:
    answer = request(url, f"$JS.API.CONSUMER.INFO.{stream}.{name}")
    return None if "error" in answer else answer["config"]


def stream_names(url: str) -> list[str]:
    return sorted(request(url, "$JS.API.STREAM.NAMES", {"offset": 0}).get("streams") or [])


def consumer_names(url: str, stream: str) -> list[str]:
    return sorted(request(url, f"$JS.API.CONSUMER.NAMES.{stream}", {"offset": 0}).get("consumers") or [])


def server_snapshot(url: str) -> dict[str, Any]:
    """Every stream and consumer config on the server, for 'nothing changed' assertions."""
    snapshot = {}
    for name in stream_names(url):
        snapshot[name] = {
            "config": stream_config(url, name),
            "consumers": {c: consumer_config(url, name, c) for c in consumer_names(url, name)},
        }
    return snapshot


def lock_message(url: str, fetch: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The lock key's last message as the server stores it, or None when nothing is stored.
    `fetch`: another request function (the cluster tests' one, which polls through failures)."""
    answer = (fetch or request)(url, f"$JS.API.STREAM.MSG.GET.{LOCK_STREAM}", {"last_by_subj": LOCK_SUBJECT})
    return None if "error" in answer else answer["message"]


def lock_is_held(url: str, fetch: Callable[..., dict[str, Any]] | None = None) -> bool:
    """Whether the lock key holds a holder (not a delete, a purge or a TTL marker)."""
    message = lock_message(url, fetch)
    if message is None:
        return False
    headers = base64.b64decode(message.get("hdrs") or "").decode()
    return "KV-Operation" not in headers and "Nats-Marker-Reason" not in headers
