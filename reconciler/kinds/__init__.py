"""The four manifest kinds. Each turns a spec into the wire configuration it stands for (pure)."""

from __future__ import annotations

from . import consumer, kv, objectstore, stream

KINDS = {
    "Stream": stream,
    "Consumer": consumer,
    "KeyValue": kv,
    "ObjectStore": objectstore,
}
