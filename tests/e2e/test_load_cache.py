"""The load cache through the real CLI, as a pre-start hook meets it: runs that repeat, then a manifest
edited, broken, fixed, and a variable changed between runs. The server's state is the judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, server_snapshot, stream_config, write

pytestmark = pytest.mark.e2e

STREAM = """
kind: Stream
name: ORDERS
spec:
  subjects: [orders.>]
  max_age: ${ORDERS_MAX_AGE:-1h}
---
kind: Consumer
stream: ORDERS
name: workers
spec:
  ack_policy: explicit
  max_deliver: 5
"""
HOUR = 3600 * 10**9


def apply(url: str, manifests: Path, cache: Path, **env: str) -> str:
    result = run_cli("apply", str(manifests), url=url, env={"XDG_CACHE_HOME": str(cache), **env})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "nats-reconcile").glob("load-*.pickle"))


def test_repeated_edited_broken_and_fixed_manifests(nats_server, tmp_path: Path) -> None:
    manifests, cache = tmp_path / "manifests", tmp_path / "cache"
    path = write(manifests, "orders.yaml", STREAM)

    assert "created stream/ORDERS" in apply(nats_server.url, manifests, cache)
    assert len(entries(cache)) == 1
    assert "No changes" in apply(nats_server.url, manifests, cache)  # served from the entry
    assert stream_config(nats_server.url, "ORDERS")["max_age"] == HOUR

    path.write_text(path.read_text().replace("max_deliver: 5", "max_deliver: 7"))
    assert "consumer/ORDERS/workers" in apply(nats_server.url, manifests, cache)
    assert len(entries(cache)) == 2

    before = server_snapshot(nats_server.url)
    path.write_text(path.read_text().replace("max_deliver: 7", "max_delivr: 7"))
    for _ in range(2):  # never cached: reported on every run, and nothing sent
        broken = run_cli("apply", str(manifests), url=nats_server.url, env={"XDG_CACHE_HOME": str(cache)})
        assert broken.returncode == 1
        assert f"{path}:" in broken.stderr and "unknown field 'max_delivr'" in broken.stderr
    assert server_snapshot(nats_server.url) == before
    assert len(entries(cache)) == 2

    path.write_text(path.read_text().replace("max_delivr: 7", "max_deliver: 7"))
    assert "No changes" in apply(nats_server.url, manifests, cache)


def test_a_changed_variable_is_not_served_the_old_value(nats_server, tmp_path: Path) -> None:
    manifests, cache = tmp_path / "manifests", tmp_path / "cache"
    write(manifests, "orders.yaml", STREAM)
    apply(nats_server.url, manifests, cache)

    assert "updated stream/ORDERS" in apply(nats_server.url, manifests, cache, ORDERS_MAX_AGE="2h")
    assert stream_config(nats_server.url, "ORDERS")["max_age"] == 2 * HOUR
    assert "No changes" in apply(nats_server.url, manifests, cache, ORDERS_MAX_AGE="2h")

    apply(nats_server.url, manifests, cache)  # unset again: the default, not the last value
    assert stream_config(nats_server.url, "ORDERS")["max_age"] == HOUR


def test_cache_off_and_an_unusable_cache_still_apply(nats_server, tmp_path: Path) -> None:
    manifests, cache = tmp_path / "manifests", tmp_path / "cache"
    write(manifests, "orders.yaml", STREAM)
    apply(nats_server.url, manifests, cache, NATS_RECONCILE_CACHE="off")
    assert entries(cache) == []

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    out = apply(nats_server.url, manifests, blocker)  # XDG_CACHE_HOME is a file: nothing can be kept
    assert "No changes" in out
    assert stream_config(nats_server.url, "ORDERS")["max_age"] == HOUR
