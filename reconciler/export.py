"""Live resources -> manifests that plan back as no changes (defaults left out, human units)."""

from __future__ import annotations

from typing import Any

import yaml

from .canonical import MARKER, canonical_consumer, canonical_stream
from .kinds import kv, objectstore
from .observe import LiveState
from .units import DURATIONS, SIZES, format_duration
from .versions import Server

LOCK_STREAMS = ("KV_nats_reconcile",)


def _human(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _human(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_human(v, key) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        if key in DURATIONS and value > 0:
            return format_duration(value)
        if key in SIZES and value > 0 and value % 1024 == 0:
            for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
                if value % size == 0:
                    return f"{value // size}{unit}"
    return value


def _drop_marker(config: dict) -> dict:
    meta = {k: v for k, v in (config.get("metadata") or {}).items() if k != MARKER}
    out = {k: v for k, v in config.items() if k != "metadata"}
    if meta:
        out["metadata"] = meta
    return out


def _stream_document(name: str, raw: dict, server: Server) -> dict:
    config = _drop_marker(canonical_stream(raw, server))
    for prefix, module, kind in (("KV_", kv, "KeyValue"), ("OBJ_", objectstore, "ObjectStore")):
        if name.startswith(prefix):
            bucket = name[len(prefix) :]
            spec = module.from_config(bucket, config)
            if spec is not None:
                rebuilt = canonical_stream(module.to_config(bucket, spec), server)
                for kept in module.keep_live(spec):
                    rebuilt.pop(kept, None)
                    if kept in config:
                        rebuilt[kept] = config[kept]
                if rebuilt == config:
                    return {"kind": kind, "name": bucket, "spec": _human(spec)}
    return {"kind": "Stream", "name": name, "spec": _human(config)}


def export_documents(
    live: LiveState,
    streams: list[str] | None = None,
    kvs: list[str] | None = None,
    objectstores: list[str] | None = None,
) -> list[dict]:
    wanted: list[str] = []
    if streams or kvs or objectstores:
        wanted = [
            *(streams or []),
            *(f"KV_{b}" for b in kvs or []),
            *(f"OBJ_{b}" for b in objectstores or []),
        ]
    else:
        wanted = sorted(n for n in live.streams if n not in LOCK_STREAMS)
    documents = []
    for name in wanted:
        raw = live.streams.get(name)
        if raw is None:
            raise LookupError(f"stream {name!r} does not exist on the server")
        documents.append(_stream_document(name, raw, live.server))
        stream_canonical = canonical_stream(raw, live.server)
        for consumer, config in sorted(live.consumers.get(name, {}).items()):
            if not config.get("durable_name"):
                continue  # ephemeral consumers belong to their clients, not to manifests
            if any(key.startswith("_nats.src.") for key in config.get("metadata") or {}):
                continue  # made by the server for a stream that sources this one (2.14+)
            spec = _drop_marker(canonical_consumer(config, stream_canonical))
            documents.append({"kind": "Consumer", "stream": name, "name": consumer, "spec": _human(spec)})
    return documents


def dump_yaml(documents: list[dict]) -> str:
    return yaml.safe_dump_all(
        documents, sort_keys=False, explicit_start=True, default_flow_style=False, allow_unicode=True
    )
