"""kind: Stream. The spec is a JetStream stream configuration already."""

from __future__ import annotations

from typing import Any

ADDRESS_KIND = "stream"
SCHEMA = "stream_manifest"


def to_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    config = dict(spec)
    config.pop("name", None)
    return config


def keep_live(spec: dict[str, Any]) -> frozenset[str]:
    return frozenset()
