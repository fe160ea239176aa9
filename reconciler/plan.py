"""Pure planning: (desired resources, live state) -> Plan, in dependency order. No I/O here."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .canonical import (
    MARKER,
    STREAM_DEFAULTS,
    canonical_consumer,
    canonical_stream,
    consumer_defaults,
    default_duplicate_window,
    full_consumer,
    full_stream,
)
from .gcpause import paused_gc
from .model import Address, Resource
from .observe import LiveState
from .subjects import overlaps
from .versions import Server


class Action(str, Enum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"  # delete, then create: the data is lost
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"no-op": " ", "create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.value]

    @property
    def destructive(self) -> bool:
        return self in (Action.REPLACE, Action.DELETE)


@dataclass(frozen=True)
class FieldDiff:
    path: str  # dotted, e.g. "max_age" or "consumer_limits.max_ack_pending"
    before: Any  # live value (the server default when not set)
    after: Any  # desired value
    forces_replace: bool = False
    reason: str | None = None  # why it forces a replace; for readers only


@dataclass(frozen=True)
class ResourceChange:
    """One resource's action. `before`/`after` are canonical configs without our marker.

    before: the live config (None on create). after: the desired config (None on delete).
    body: the full request body apply sends for create/update/replace.
    adopt: the resource matches but lacks our marker; apply adds it (not counted as a change).
    """

    address: Address
    action: Action
    before: dict | None
    after: dict | None
    diffs: tuple[FieldDiff, ...] = ()
    reason: str | None = None
    adopt: bool = False
    body: dict | None = None
    # A consumer made through the legacy CONSUMER.DURABLE.CREATE API: 2.10 and 2.11 store no `name` for
    # it, and updating it through the named API would add one. Apply updates it the way it was made.
    legacy_durable: bool = False
    resource: Resource | None = field(default=None, compare=False, repr=False)

    @property
    def pending(self) -> bool:
        """Whether apply has anything to send for it."""
        return self.action is not Action.NOOP or self.adopt


@dataclass
class Plan:
    changes: list[ResourceChange]
    server: Server
    set_name: str
    prune: bool = False

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    @property
    def pending(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.pending]

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    @property
    def summary(self) -> str:
        return (
            f"{self.count(Action.CREATE)} to create, {self.count(Action.UPDATE)} to update, "
            f"{self.count(Action.REPLACE)} to replace, {self.count(Action.DELETE)} to delete"
        )


def _marker(config: dict | None) -> str | None:
    return ((config or {}).get("metadata") or {}).get(MARKER)


def _without_marker(config: dict) -> dict:
    """The config without our marker: a shallow copy when it has one, else the config itself (plans
    never change the configs they hold)."""
    if MARKER not in (config.get("metadata") or ()):
        return config
    out = dict(config)
    meta = {k: v for k, v in (out.get("metadata") or {}).items() if k != MARKER}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out


def _with_marker(config: dict, set_name: str) -> dict:
    return {**config, "metadata": {**(config.get("metadata") or {}), MARKER: set_name}}


def field_diffs(before: dict, after: dict, defaults: dict, prefix: str = "") -> list[FieldDiff]:
    """Changed fields, old -> new. Nested objects give dotted paths; lists compare whole."""
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, defaults.get(key)), after.get(key, defaults.get(key))
        if b == a:
            continue
        if isinstance(b, dict) and isinstance(a, dict):
            out += field_diffs(b, a, {}, f"{prefix}{key}.")
        else:
            out.append(FieldDiff(f"{prefix}{key}", b, a))
    return out


def _stream_defaults(config: dict, server: Server) -> dict:
    return {**STREAM_DEFAULTS, "duplicate_window": default_duplicate_window(config, server)}


def make_plan(
    resources: list[Resource], live: LiveState, *, set_name: str = "default", prune: bool = False
) -> Plan:
    with paused_gc():  # thousands of small dicts, and no cycles
        return _make_plan(resources, live, set_name, prune)


def _make_plan(resources: list[Resource], live: LiveState, set_name: str, prune: bool) -> Plan:
    server = live.server
    changes: dict[Address, ResourceChange] = {}
    desired_streams: dict[str, dict] = {}  # stream name -> canonical desired config (for consumer defaults)
    declared_consumers = {r.address for r in resources if r.address.kind == "consumer"}

    for r in (r for r in resources if r.address.is_stream):
        name = r.address.stream_name
        before = live.canonical_stream(name)
        after = r.canonical if r.canonical is not None else canonical_stream(r.config, server)
        if r.keep_live:
            after = dict(after)  # the resource's own canonical form stays as it is
        for kept in r.keep_live:
            after.pop(kept, None)
            if before is not None and kept in before:
                after[kept] = before[kept]
        desired_streams[name] = after
        if before is None:
            change = ResourceChange(r.address, Action.CREATE, None, after, resource=r)
        else:
            defaults = functools.partial(_stream_defaults, after, server)
            change = _diff_change(r, before, after, defaults, server.stream_replace_reasons, set_name)
        if change.action is Action.REPLACE:
            lost = sorted(
                c
                for c in live.consumers.get(name, {})
                if Address("consumer", c, name) not in declared_consumers
            )
            if lost:
                lost_text = ", ".join(lost)
                reason = f"{change.reason}; also deletes consumers not in the manifests: {lost_text}"
                change = dataclasses.replace(change, reason=reason)
        changes[r.address] = change

    replaced = {c.address.stream_name for c in changes.values() if c.action is Action.REPLACE}
    for r in (r for r in resources if r.address.kind == "consumer"):
        stream_name = r.address.stream
        live_stream = live.canonical_stream(stream_name) or {}
        stream_after = desired_streams.get(stream_name, live_stream)
        raw = live.consumers.get(stream_name, {}).get(r.address.name)
        after = r.canonical if r.canonical is not None else canonical_consumer(r.config, stream_after)
        if raw is None:
            change = ResourceChange(r.address, Action.CREATE, None, after, resource=r)
        elif stream_name in replaced:
            before = _without_marker(live.canonical_consumer(stream_name, r.address.name))
            reason = f"its stream {stream_name} is replaced"
            change = ResourceChange(r.address, Action.REPLACE, before, after, reason=reason, resource=r)
        else:
            before = live.canonical_consumer(stream_name, r.address.name)
            defaults = functools.partial(consumer_defaults, after, stream_after)
            change = _diff_change(r, before, after, defaults, server.consumer_replace_reasons, set_name)
            if not raw.get("name") and change.action in (Action.UPDATE, Action.NOOP):
                change = dataclasses.replace(change, legacy_durable=True)
        changes[r.address] = change

    # Request bodies, for the changes apply will send only: a no-op pre-start run builds none.
    for address, change in changes.items():
        if not change.pending:
            continue
        desired = _with_marker(change.after or {}, set_name)
        if address.is_stream:
            body = full_stream(address.stream_name, desired, server)
            mirror = desired.get("mirror") or {}
            origin = desired_streams.get(mirror.get("name"), live.canonical_stream(mirror.get("name")))
            if origin is not None and not mirror.get("external"):
                # Server-managed, so never compared; but pedantic (2.11+) wants it to match the origin.
                body["mirror_direct"] = bool(origin.get("allow_direct"))
        else:
            stream_after = desired_streams.get(address.stream, live.canonical_stream(address.stream) or {})
            body = full_consumer(address.name, desired, stream_after, server)
            pause = change.resource.config.get("pause_until") if change.resource else None
            if pause and change.action in (Action.CREATE, Action.REPLACE):
                body["pause_until"] = pause  # not compared (CONSUMER.PAUSE changes it), only sent on create
        changes[address] = dataclasses.replace(change, body=body)

    if prune:
        for change in _prunes(resources, live, set_name):
            changes[change.address] = change
    return Plan(_order(list(changes.values()), live), server, set_name, prune)


def _diff_change(
    r: Resource,
    before: dict,
    after: dict,
    defaults: Callable[[], dict],  # the server's defaults, worked out only when the configs differ
    replace_reasons,
    set_name: str,
) -> ResourceChange:
    marked = _marker(before)
    b, a = _without_marker(before), _without_marker(after)
    if b == a:  # the common case, decided without walking the fields (canonical forms omit defaults)
        return ResourceChange(r.address, Action.NOOP, b, a, adopt=marked != set_name, resource=r)
    reasons = replace_reasons(b, a)
    diffs = []
    for d in field_diffs(b, a, defaults()):
        top = d.path.split(".")[0]
        diffs.append(FieldDiff(d.path, d.before, d.after, top in reasons, reasons.get(top)))
    if not diffs:
        return ResourceChange(r.address, Action.NOOP, b, a, adopt=marked != set_name, resource=r)
    if reasons:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
        return ResourceChange(r.address, Action.REPLACE, b, a, tuple(diffs), reason=why, resource=r)
    return ResourceChange(r.address, Action.UPDATE, b, a, tuple(diffs), resource=r)


def _address_for_stream(name: str, config: dict) -> Address:
    if name.startswith("KV_") and any(s.startswith("$KV.") for s in config.get("subjects") or ["$KV."]):
        return Address("kv", name[3:])
    if name.startswith("OBJ_") and any(s.startswith("$O.") for s in config.get("subjects") or []):
        return Address("objectstore", name[4:])
    return Address("stream", name)


def _prunes(resources: list[Resource], live: LiveState, set_name: str) -> list[ResourceChange]:
    """Deletes of resources that carry our marker for this set and are no longer declared."""
    declared = {r.address for r in resources}
    declared_streams = {r.address.stream_name for r in resources if r.address.is_stream}
    out = []
    for name, config in live.streams.items():
        if _marker(config) == set_name and name not in declared_streams:
            address = _address_for_stream(name, config)
            out.append(
                ResourceChange(
                    address,
                    Action.DELETE,
                    _without_marker(canonical_stream(config, live.server)),
                    None,
                    reason="no longer in the manifests",
                )
            )
    for stream, consumers in live.consumers.items():
        for name, config in consumers.items():
            address = Address("consumer", name, stream)
            if _marker(config) == set_name and address not in declared:
                out.append(
                    ResourceChange(
                        address,
                        Action.DELETE,
                        _without_marker(canonical_consumer(config, None)),
                        None,
                        reason="no longer in the manifests",
                    )
                )
    return out


# The order of Address (kind, name, stream) as one C-level tuple per change: comparing the dataclasses
# themselves costs a Python call per comparison, thousands of them in a large plan.
_by_address = operator.attrgetter("address.kind", "address.name", "address.stream")


def _order(changes: list[ResourceChange], live: LiveState) -> list[ResourceChange]:
    """Apply order: deletes that free subjects, streams by dependency, buckets, consumers, other deletes."""
    deletes = [c for c in changes if c.action is Action.DELETE]
    rest = [c for c in changes if c.action is not Action.DELETE]
    new_subjects = [
        s
        for c in rest
        if c.address.is_stream and c.action in (Action.CREATE, Action.REPLACE)
        for s in (c.after or {}).get("subjects", [])
    ]

    def frees_subjects(c: ResourceChange) -> bool:
        return c.address.is_stream and any(
            overlaps(s, n) for s in (c.before or {}).get("subjects", []) for n in new_subjects
        )

    early = {c.address for c in deletes if frees_subjects(c)}
    consumers_of_early = {
        c.address
        for c in deletes
        if c.address.kind == "consumer" and any(c.address.stream == e.stream_name for e in early)
    }
    early |= consumers_of_early
    streams = _topological([c for c in rest if c.address.kind == "stream"])
    buckets = _topological([c for c in rest if c.address.kind in ("kv", "objectstore")])
    consumers = sorted((c for c in rest if c.address.kind == "consumer"), key=_by_address)
    delete_order = [
        *sorted((c for c in deletes if c.address.kind == "consumer"), key=_by_address),
        *reversed(_topological([c for c in deletes if c.address.is_stream], key="before")),
    ]
    first = [c for c in delete_order if c.address in early]
    last = [c for c in delete_order if c.address not in early]
    return [*first, *streams, *buckets, *consumers, *last]


def _topological(changes: list[ResourceChange], key: str = "after") -> list[ResourceChange]:
    """Streams after the streams they source or mirror. Iterative: long chains are fine."""
    by_name = {c.address.stream_name: c for c in changes}
    out: list[ResourceChange] = []
    seen: set[str] = set()

    def deps(c: ResourceChange) -> list[str]:
        config = getattr(c, key) or {}
        names = [s.get("name") for s in config.get("sources") or []]
        if config.get("mirror"):
            names.append(config["mirror"].get("name"))
        return [n for n in names if n in by_name]

    for root in sorted(changes, key=_by_address):
        if root.address.stream_name in seen:
            continue
        seen.add(root.address.stream_name)  # cycles were refused by validation; this only stops a loop
        stack = [(root, iter(deps(root)))]
        while stack:
            change, pending = stack[-1]
            dep = next(pending, None)
            if dep is None:
                out.append(change)
                stack.pop()
            elif dep not in seen:
                seen.add(dep)
                stack.append((by_name[dep], iter(deps(by_name[dep]))))
    return out
