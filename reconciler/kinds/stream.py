"""kind: Stream. The spec is a JetStream stream configuration already."""

from __future__ import annotations

from typing import Any

ADDRESS_KIND = "stream"
SCHEMA = "stream_manifest"


def to_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    config = dict(spec)
    config.pop("name", None)
    if not (config.get("subjects") or config.get("sources") or config.get("mirror")):
        config["subjects"] = [name]  # the server's default: a stream listens on its own name
    return config


def keep_live(spec: dict[str, Any]) -> frozenset[str]:
    return frozenset()
