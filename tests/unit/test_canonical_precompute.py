"""Validation makes the canonical forms no server version changes (validate._make_canonical), and the
plan uses them instead of making its own: they must be exactly what the plan would make, on every
server version, for every field the manifests can set."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import api
from reconciler.canonical import canonical_consumer, canonical_stream
from reconciler.versions import Server

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = [ROOT / "manifests", ROOT / "tests" / "e2e" / "manifests_all_fields"]
VERSIONS = [(2, 10, 0), (2, 11, 0), (2, 12, 0), (2, 14, 0), (2, 15, 1)]


@pytest.mark.parametrize("manifests", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: ".".join(map(str, v)))
def test_precomputed_canonical_forms_are_the_plans(manifests: Path, version: tuple, monkeypatch) -> None:
    monkeypatch.setenv("NATS_RECONCILE_CACHE", "off")
    server = Server(version)
    resources = api.load([manifests], env={})
    streams = {
        r.address.stream_name: canonical_stream(r.config, server) for r in resources if r.address.is_stream
    }
    made = 0
    for r in resources:
        if r.canonical is None:
            continue
        made += 1
        if r.address.is_stream:
            assert r.canonical == streams[r.address.stream_name], r.address
        else:
            assert r.canonical == canonical_consumer(r.config, streams[r.address.stream]), r.address
    assert made > len(resources) // 2  # most are made ahead; sourced streams and their consumers are not


def test_sourced_streams_are_left_to_the_plan() -> None:
    resources = api.load([MANIFESTS[1]], env={})
    sourced = [r for r in resources if r.address.is_stream and r.config.get("sources")]
    assert sourced and all(r.canonical is None for r in sourced)
