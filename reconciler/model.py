"""Desired resources, as validation produces them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Location
from .load import Document


@dataclass(frozen=True, order=True)
class Address:
    """What a change is about: 'stream/JOBS', 'consumer/JOBS/workers', 'kv/job_state'."""

    kind: str  # stream | consumer | kv | objectstore
    name: str
    stream: str = ""  # consumers only: the stream's name

    def __str__(self) -> str:
        if self.kind == "consumer":
            return f"consumer/{self.stream}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def stream_name(self) -> str:
        """The JetStream stream behind this resource (KV_<bucket>, OBJ_<bucket>, or the stream itself)."""
        if self.kind == "kv":
            return f"KV_{self.name}"
        if self.kind == "objectstore":
            return f"OBJ_{self.name}"
        if self.kind == "consumer":
            return self.stream
        return self.name

    @property
    def is_stream(self) -> bool:
        return self.kind != "consumer"


@dataclass
class Resource:
    """One declared resource: its address and the wire config it stands for."""

    address: Address
    config: dict[str, Any]  # stream configuration (for stream/kv/objectstore) or consumer configuration
    document: Document
    spec: dict[str, Any] = field(default_factory=dict)  # the spec as written, units converted
    # Fields whose live value is accepted whatever it is (and kept on update). A KV bucket made by
    # nats-py has allow_msg_ttl on, which cannot be turned off again; declaring the bucket must not
    # force a replace.
    keep_live: frozenset[str] = frozenset()
    # The config's canonical form (canonical.py), made by validation when no server can change it, so
    # that the load cache keeps it and a plan need not make it again. None: the plan makes it.
    canonical: dict[str, Any] | None = None

    def where(self, *path: str | int) -> Location:
        return self.document.where(path)

    @property
    def depends_on(self) -> list[str]:
        """Names of streams this resource needs to exist first."""
        if self.address.kind == "consumer":
            return [self.address.stream]
        names = [s.get("name") for s in self.config.get("sources") or []]
        if self.config.get("mirror"):
            names.append(self.config["mirror"].get("name"))
        # A source in another domain or account is not ours to order.
        external = {s.get("name") for s in self.config.get("sources") or [] if s.get("external")}
        if (self.config.get("mirror") or {}).get("external"):
            external.add(self.config["mirror"].get("name"))
        return [n for n in names if n and n not in external]
