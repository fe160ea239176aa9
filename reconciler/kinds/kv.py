"""kind: KeyValue. A bucket is the stream KV_<bucket>, shaped as nats.go creates it (ADR-8)."""

from __future__ import annotations

from typing import Any

ADDRESS_KIND = "kv"
SCHEMA = "keyvalue_manifest"
TWO_MINUTES = 120_000_000_000


def _source(bucket: str, source: dict[str, Any], *, transform: bool = True) -> dict[str, Any]:
    """A bucket source or mirror names a bucket; the stream sources KV_<name> (as nats.go does).

    A source of another bucket gets the transform that maps its keys into this bucket, unless the
    manifest says how; a mirror keeps the origin's subjects (nats.go: mirror_direct, no transform).
    """
    out = dict(source)
    origin = source["name"].removeprefix("KV_")
    out["name"] = f"KV_{origin}"
    declared = source.get("subject_transforms") or source.get("filter_subject")
    if transform and origin != bucket and not declared:
        out["subject_transforms"] = [{"src": f"$KV.{origin}.>", "dest": f"$KV.{bucket}.>"}]
    return out


def to_config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    ttl = spec.get("ttl", 0)
    config: dict[str, Any] = {
        "subjects": [f"$KV.{name}.>"],
        "max_msgs_per_subject": spec.get("history", 1),
        "max_bytes": spec.get("max_bytes", -1),
        "max_age": ttl,
        "max_msg_size": spec.get("max_value_size", -1),
        "storage": spec.get("storage", "file"),
        "num_replicas": spec.get("replicas", 1),
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "duplicate_window": ttl if 0 < ttl < TWO_MINUTES else TWO_MINUTES,
        "max_msgs": -1,
        "max_consumers": -1,
        "allow_direct": True,
        "discard": "new",
    }
    if spec.get("compression"):
        config["compression"] = "s2"
    if spec.get("limit_marker_ttl"):
        config["allow_msg_ttl"] = True
        config["subject_delete_marker_ttl"] = spec["limit_marker_ttl"]
    for field in ("description", "metadata", "placement", "republish"):
        if spec.get(field):
            config[field] = spec[field]
    if spec.get("mirror"):
        config.pop("subjects")
        config["mirror"] = _source(name, spec["mirror"], transform=False)
        config["mirror_direct"] = True
        config.pop("duplicate_window")
    if spec.get("sources"):
        config["sources"] = [_source(name, s) for s in spec["sources"]]
    return config


def keep_live(spec: dict[str, Any]) -> frozenset[str]:
    # nats-py turns per-message TTLs on for every bucket; it cannot be turned off (2.11+), and is
    # harmless to keep. Only a declared limit_marker_ttl makes it part of what we ask for.
    return frozenset() if spec.get("limit_marker_ttl") else frozenset({"allow_msg_ttl"})


def from_config(name: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The KeyValue spec a canonical KV_<name> stream config stands for, or None if it is not one.

    The caller checks that to_config(spec) gives the same canonical config back.
    """
    mirror, sources = config.get("mirror"), config.get("sources")
    if config.get("subjects") != ([f"$KV.{name}.>"] if not mirror else None):
        return None
    spec: dict[str, Any] = {}
    pairs = (
        ("max_msgs_per_subject", "history", 1),
        ("max_bytes", "max_bytes", -1),
        ("max_age", "ttl", 0),
        ("max_msg_size", "max_value_size", -1),
        ("storage", "storage", "file"),
        ("num_replicas", "replicas", 1),
    )
    for wire, field, default in pairs:
        if config.get(wire, default) != default:
            spec[field] = config[wire]
    if config.get("compression") == "s2":
        spec["compression"] = True
    if config.get("subject_delete_marker_ttl"):
        spec["limit_marker_ttl"] = config["subject_delete_marker_ttl"]
    for field in ("description", "metadata", "placement", "republish"):
        if config.get(field):
            spec[field] = config[field]
    if mirror:
        spec["mirror"] = _bucket_source(name, mirror)
    if sources:
        spec["sources"] = [_bucket_source(name, s) for s in sources]
    return spec


def _bucket_source(bucket: str, source: dict[str, Any]) -> dict[str, Any]:
    """The reverse of _source: a stream source of KV_<origin> as the bucket source it came from."""
    out = dict(source)
    out["name"] = source["name"].removeprefix("KV_")
    if out.get("subject_transforms") == [{"src": f"$KV.{out['name']}.>", "dest": f"$KV.{bucket}.>"}]:
        out.pop("subject_transforms")
    return out
