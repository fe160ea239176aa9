"""Everything that differs between nats-server versions, in tables.

Measured on 2.10.25, 2.11.11, 2.12.8, 2.14.6 and 2.15.1 (see shared/reference/server-behaviour).
To support a new version, re-measure and extend these tables; no other module knows versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int, int]

OLDEST_SUPPORTED: Version = (2, 10, 0)
NEWEST_MEASURED: Version = (2, 15, 1)


def parse_version(text: str) -> Version:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text or "")
    if not match:
        return (0, 0, 0)
    major, minor, patch = (int(g) for g in match.groups())
    return (major, minor, patch)


def show(version: Version) -> str:
    return ".".join(map(str, version))


# Fields each kind of config gained, by the first version that knows them. Older servers silently drop
# unknown fields (2.10, 2.11) or refuse them with 10025 (2.12+), so we never send them there.
STREAM_FIELDS_SINCE: dict[str, Version] = {
    "allow_msg_ttl": (2, 11, 0),
    "subject_delete_marker_ttl": (2, 11, 0),
    "allow_msg_counter": (2, 12, 0),
    "allow_atomic": (2, 12, 0),
    "allow_msg_schedules": (2, 12, 0),
    "persist_mode": (2, 12, 0),
    "allow_batched": (2, 14, 0),
}
# Nested fields, as dotted paths with "*" for list items.
STREAM_NESTED_SINCE: dict[str, Version] = {
    "sources.*.consumer": (2, 14, 0),
}
CONSUMER_FIELDS_SINCE: dict[str, Version] = {
    "priority_groups": (2, 11, 0),
    "priority_policy": (2, 11, 0),
    "priority_timeout": (2, 11, 0),
    "pause_until": (2, 11, 0),
    "sourcing": (2, 14, 0),
}
# Enum values newer than the field itself.
VALUES_SINCE: dict[tuple[str, str, str], Version] = {
    ("consumer", "priority_policy", "prioritized"): (2, 12, 0),
    ("consumer", "ack_policy", "flow_control"): (2, 14, 0),
}
# Fields older servers know but newer ones refuse (template streams went away in 2.14).
STREAM_FIELDS_UNTIL: dict[str, Version] = {"template_owner": (2, 14, 0)}
_STREAM_SINCE = {**STREAM_FIELDS_SINCE, **STREAM_NESTED_SINCE}
# A server at least this new knows every field and value above.
_KNOWS_ALL = max([*_STREAM_SINCE.values(), *CONSUMER_FIELDS_SINCE.values(), *VALUES_SINCE.values()])


@dataclass(frozen=True)
class Server:
    """What we know about the server we talk to."""

    version: Version = NEWEST_MEASURED
    api_level: int = 0
    clustered: bool = False

    @classmethod
    def from_info(cls, version: str, account_info: dict | None = None, clustered: bool = False) -> Server:
        level = ((account_info or {}).get("api") or {}).get("level", 0)
        return cls(parse_version(version), int(level or 0), clustered)

    def __str__(self) -> str:
        return show(self.version)

    def at_least(self, version: Version) -> bool:
        return self.version >= version

    # --- what the server knows -------------------------------------------------------------------

    def field_since(self, kind: str, field: str) -> Version | None:
        """The version a field needs, when this server is older than that; else None."""
        needed = (CONSUMER_FIELDS_SINCE if kind == "consumer" else _STREAM_SINCE).get(field)
        return needed if needed and not self.at_least(needed) else None

    def value_since(self, kind: str, field: str, value: object) -> Version | None:
        needed = VALUES_SINCE.get((kind, field, str(value)))
        return needed if needed and not self.at_least(needed) else None

    @property
    def knows_every_field(self) -> bool:
        return self.at_least(_KNOWS_ALL)

    @property
    def pedantic(self) -> bool:
        """2.10 accepts `pedantic` and ignores it; 2.11 is the first to refuse instead of adjusting."""
        return self.at_least((2, 11, 0))

    @property
    def sourced_streams_get_duplicate_window(self) -> bool:
        """Before 2.14 a stream with sources gets the default 2m window; from 2.14 only plain streams do."""
        return not self.at_least((2, 14, 0))

    @property
    def per_message_ttl(self) -> bool:
        return self.at_least((2, 11, 0))

    # --- what the server refuses to change (IMMUTABILITY.md) ------------------------------------

    def stream_replace_reasons(self, before: dict, after: dict) -> dict[str, str]:
        """Fields whose change STREAM.UPDATE refuses (10052/10055), each with the server's reason.

        `before` and `after` are canonical configs (defaults left out; see canonical.py).
        """
        reasons: dict[str, str] = {}

        def changed(field: str, default: object = None) -> bool:
            return before.get(field, default) != after.get(field, default)

        if changed("storage", "file"):
            reasons["storage"] = "the storage type cannot be changed"
        old_ret, new_ret = before.get("retention", "limits"), after.get("retention", "limits")
        if old_ret != new_ret and "workqueue" in (old_ret, new_ret):
            reasons["retention"] = "retention cannot change to or from workqueue"
        if changed("mirror"):
            if "mirror" in before and "mirror" not in after:
                if not self.at_least((2, 12, 0)):  # turning a mirror into a normal stream: 2.12+
                    reasons["mirror"] = "a mirror cannot be removed before nats-server 2.12"
            else:
                reasons["mirror"] = "a mirror cannot be added or changed"
        if changed("max_consumers", -1) and not self.at_least((2, 12, 0)):
            reasons["max_consumers"] = "max_consumers cannot be changed before nats-server 2.12"
        for field, what in (
            ("deny_delete", "deny_delete cannot be turned off"),
            ("deny_purge", "deny_purge cannot be turned off"),
            ("sealed", "a sealed stream cannot be unsealed"),
        ):
            if before.get(field) and not after.get(field):
                reasons[field] = what
        if self.at_least((2, 11, 0)) and before.get("allow_msg_ttl") and not after.get("allow_msg_ttl"):
            reasons["allow_msg_ttl"] = "message TTLs cannot be turned off"
        if self.at_least((2, 12, 0)):
            if before.get("allow_msg_schedules") and not after.get("allow_msg_schedules"):
                reasons["allow_msg_schedules"] = "message schedules cannot be turned off"
            if changed("allow_msg_counter", False):
                reasons["allow_msg_counter"] = "the counter setting is fixed when the stream is created"
            if changed("persist_mode", ""):
                reasons["persist_mode"] = "persist_mode is fixed when the stream is created"
        return reasons

    def consumer_replace_reasons(self, before: dict, after: dict) -> dict[str, str]:
        """Fields whose change a consumer update refuses (500/10012), each with the server's reason."""
        reasons: dict[str, str] = {}
        for field, default in (
            ("deliver_policy", "all"),
            ("opt_start_seq", None),
            ("opt_start_time", None),
            ("ack_policy", "none"),
            ("replay_policy", "instant"),
            ("idle_heartbeat", None),
            ("flow_control", None),
        ):
            if before.get(field, default) != after.get(field, default):
                reasons[field] = f"{field} cannot be updated"
        if bool(before.get("deliver_subject")) != bool(after.get("deliver_subject")):
            reasons["deliver_subject"] = "a consumer cannot switch between pull and push"
        elif before.get("max_waiting") != after.get("max_waiting"):
            reasons["max_waiting"] = "max_waiting cannot be updated"
        if self.at_least((2, 14, 0)) and bool(before.get("mem_storage")) != bool(after.get("mem_storage")):
            reasons["mem_storage"] = "the storage type cannot be updated from nats-server 2.14"
        return reasons
