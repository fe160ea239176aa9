"""kind: Consumer. A durable consumer; `durable_name` defaults to the manifest name."""

from __future__ import annotations

from typing import Any

ADDRESS_KIND = "consumer"
SCHEMA = "consumer_manifest"


def to_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    config = dict(spec)
    config.pop("name", None)
    config.pop("durable_name", None)
    return config


def keep_live(spec: dict[str, Any]) -> frozenset[str]:
    return frozenset()
