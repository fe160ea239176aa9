"""kind: ObjectStore. A bucket is the stream OBJ_<bucket>, shaped as nats.go creates it."""

from __future__ import annotations

from typing import Any

ADDRESS_KIND = "objectstore"
SCHEMA = "objectstore_manifest"


def to_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "subjects": [f"$O.{name}.C.>", f"$O.{name}.M.>"],
        "max_age": spec.get("ttl", 0),
        "max_bytes": spec.get("max_bytes", -1),
        "storage": spec.get("storage", "file"),
        "num_replicas": spec.get("replicas", 1),
        "discard": "new",
        "allow_rollup_hdrs": True,
        "allow_direct": True,
    }
    if spec.get("compression"):
        config["compression"] = "s2"
    for field in ("description", "metadata", "placement"):
        if spec.get(field):
            config[field] = spec[field]
    return config


def keep_live(spec: dict[str, Any]) -> frozenset[str]:
    return frozenset()


def from_config(name: str, config: dict[str, Any]) -> dict[str, Any] | None:
    if sorted(config.get("subjects") or []) != sorted([f"$O.{name}.C.>", f"$O.{name}.M.>"]):
        return None
    spec: dict[str, Any] = {}
    for wire, field, default in (
        ("max_age", "ttl", 0),
        ("max_bytes", "max_bytes", -1),
        ("storage", "storage", "file"),
        ("num_replicas", "replicas", 1),
    ):
        if config.get(wire, default) != default:
            spec[field] = config[wire]
    if config.get("compression") == "s2":
        spec["compression"] = True
    for field in ("description", "metadata", "placement"):
        if config.get(field):
            spec[field] = config[field]
    return spec
