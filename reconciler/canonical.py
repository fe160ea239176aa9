"""Canonical configs: the comparable form of a stream or consumer configuration.

The canonical form fills in what the server would fill in (zero-means-default, derived defaults such
as the duplicate window) and then leaves out every field that equals its default, drops server-managed
fields (`_nats.*` metadata, `mirror_direct`) and sorts set-like lists. Two configs are the same to the
server exactly when their canonical forms are equal, which is what keeps plans free of false diffs.
The canonical form is also what `export` writes, and `full_*` expands it into a request body.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .versions import STREAM_FIELDS_UNTIL, Server

TWO_MINUTES = 120_000_000_000
ACK_WAIT_DEFAULT = 30_000_000_000
MAX_ACK_PENDING_DEFAULT = 1000
MAX_WAITING_DEFAULT = 512
FLOW_CONTROL_HEARTBEAT = 1_000_000_000
MARKER = "nats-reconcile.set"  # metadata key that marks resources this tool manages, value = set name

STREAM_DEFAULTS: dict[str, Any] = {
    "retention": "limits",
    "max_consumers": -1,
    "max_msgs": -1,
    "max_bytes": -1,
    "max_age": 0,
    "max_msgs_per_subject": -1,
    "max_msg_size": -1,
    "discard": "old",
    "storage": "file",
    "num_replicas": 1,
    "compression": "none",
    "allow_direct": False,
    "sealed": False,
    "deny_delete": False,
    "deny_purge": False,
    "allow_rollup_hdrs": False,
    "consumer_limits": {},
    "allow_msg_ttl": False,
}
# The server turns 0 into the default for these (setStreamConfigDefaults); Go clients send 0.
STREAM_ZERO_IS_DEFAULT = (
    "max_consumers",
    "max_msgs",
    "max_bytes",
    "max_msgs_per_subject",
    "max_msg_size",
    "num_replicas",
)
STREAM_SERVER_MANAGED = ("name", "mirror_direct")

CONSUMER_DEFAULTS: dict[str, Any] = {
    "deliver_policy": "all",
    "ack_policy": "none",
    "replay_policy": "instant",
    "max_deliver": -1,
    "num_replicas": 0,
    "priority_policy": "none",
}
# `pause_until` is applied through CONSUMER.PAUSE, not through create/update, so it is not compared.
CONSUMER_SERVER_MANAGED = ("name", "durable_name", "pause_until")

_NO_DEFAULT = object()
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)")


def _strip(value: Any) -> Any:
    """Drop empty values (None, false, 0, "", and lists and objects left empty) from nested objects:
    the server omits them, clients send them. One pass, as this runs on every live configuration."""
    if isinstance(value, list):
        return [_strip(item) if isinstance(item, (dict, list)) else item for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if not item:  # JSON's falsy values are exactly the empty ones
            continue
        if isinstance(item, dict):
            item = _strip(item)
            if not item:
                continue
        elif isinstance(item, list):
            item = _strip(item)
        out[key] = item
    return out


def user_metadata(metadata: dict | None) -> dict[str, str]:
    """Metadata without the `_nats.*` keys the server adds on 2.11+."""
    return {k: v for k, v in (metadata or {}).items() if not k.startswith("_nats.")}


def go_time(text: str) -> str:
    """An RFC 3339 time as Go's RFC3339Nano writes it back: no trailing fractional zeros, Z for UTC."""
    match = _RFC3339.fullmatch(text)
    if not match:
        return text
    base, fraction, zone = match.groups()
    fraction = (fraction or "").rstrip("0").rstrip(".")
    if zone in ("+00:00", "-00:00", "z"):
        zone = "Z"
    return f"{base}{fraction}{zone}"


def default_duplicate_window(config: dict, server: Server) -> int:
    # Mirrors get no default window, nor (from 2.14) streams with sources; otherwise 2m, capped at max_age.
    if config.get("mirror") or (config.get("sources") and not server.sourced_streams_get_duplicate_window):
        return 0
    max_age = config.get("max_age") or 0
    return max_age if 0 < max_age < TWO_MINUTES else TWO_MINUTES


def canonical_stream(config: dict, server: Server) -> dict:
    # Stripping empty values also makes 0 mean "the default", as the server does for the limits
    # (setStreamConfigDefaults) and for the duplicate window; and it is the copy we then change.
    c = _strip(config)
    for field in STREAM_SERVER_MANAGED:
        c.pop(field, None)
    if c.get("sealed"):  # what sealing implies, as the server stores it
        c.update(discard="new", deny_delete=True, deny_purge=True)
        c.pop("allow_rollup_hdrs", None)
        c.pop("max_age", None)
    if c.get("persist_mode") == "default":  # read back as absent (2.12+)
        c.pop("persist_mode")
    if isinstance(c.get("republish"), dict) and not c["republish"].get("src"):
        c["republish"]["src"] = ">"  # the server's default; 2.11+ pedantic refuses it left out
    for origin in [c.get("mirror"), *(c.get("sources") or [])]:
        if isinstance(origin, dict) and isinstance(origin.get("opt_start_time"), str):
            origin["opt_start_time"] = go_time(origin["opt_start_time"])
    if c.get("duplicate_window") == default_duplicate_window(c, server):
        c.pop("duplicate_window")
    _normalise_metadata(c)
    if isinstance(c.get("subjects"), list):
        c["subjects"] = sorted(c["subjects"])
    if isinstance(c.get("sources"), list):
        c["sources"] = sorted(c["sources"], key=repr)
    if isinstance(c.get("placement"), dict) and isinstance(c["placement"].get("tags"), list):
        c["placement"]["tags"] = sorted(c["placement"]["tags"])
    return {k: v for k, v in c.items() if STREAM_DEFAULTS.get(k, _NO_DEFAULT) != v}


def _normalise_metadata(c: dict) -> None:
    metadata = user_metadata(c.get("metadata"))
    if metadata:
        c["metadata"] = metadata
    else:
        c.pop("metadata", None)


def consumer_defaults(config: dict, stream: dict | None) -> dict[str, Any]:
    """The defaults the server fills in for this consumer on this stream (setConsumerConfigDefaults)."""
    limits = (stream or {}).get("consumer_limits") or {}
    defaults = dict(CONSUMER_DEFAULTS)
    ack = config.get("ack_policy", "none")
    if ack in ("explicit", "all"):
        backoff = config.get("backoff") or []
        defaults["ack_wait"] = backoff[0] if backoff else ACK_WAIT_DEFAULT
    if ack != "none":
        defaults["max_ack_pending"] = limits.get("max_ack_pending") or MAX_ACK_PENDING_DEFAULT
    elif limits.get("max_ack_pending") and not config.get("deliver_subject"):
        # The server copies the stream's limit into a pull consumer without acks too (a push one it
        # refuses, 10082: see validate.py), and 2.11+ pedantic wants it spelled out.
        defaults["max_ack_pending"] = limits["max_ack_pending"]
    if ack == "flow_control":  # 2.14+: the server turns flow control on, with a 1s heartbeat
        defaults["flow_control"] = True
        defaults["idle_heartbeat"] = FLOW_CONTROL_HEARTBEAT
    if not config.get("deliver_subject"):
        defaults["max_waiting"] = MAX_WAITING_DEFAULT
    if limits.get("inactive_threshold"):
        defaults["inactive_threshold"] = limits["inactive_threshold"]
    return defaults


def canonical_consumer(config: dict, stream: dict | None) -> dict:
    c = _strip(config)  # 0 means the default here too (setConsumerConfigDefaults)
    for field in CONSUMER_SERVER_MANAGED:
        c.pop(field, None)
    if isinstance(c.get("opt_start_time"), str):
        c["opt_start_time"] = go_time(c["opt_start_time"])
    subjects = c.get("filter_subjects")
    if isinstance(subjects, list):
        if len(subjects) == 1 and not c.get("filter_subject"):
            c["filter_subject"] = c.pop("filter_subjects")[0]
        else:
            c["filter_subjects"] = sorted(subjects)
    _normalise_metadata(c)
    defaults = consumer_defaults(c, stream)
    return {k: v for k, v in c.items() if defaults.get(k, _NO_DEFAULT) != v}


def _known(server: Server, field: str) -> bool:
    until = STREAM_FIELDS_UNTIL.get(field)
    return server.field_since("stream", field) is None and not (until and server.at_least(until))


def full_stream(name: str, canonical: dict, server: Server) -> dict:
    """A complete STREAM.CREATE/UPDATE body: every default this server knows, spelled out.

    Spelling out derived defaults (duplicate window) keeps pedantic mode (2.11+) from refusing what a
    plain request would have adjusted silently.
    """
    body: dict[str, Any] = {"name": name}
    body.update({k: copy.deepcopy(v) for k, v in STREAM_DEFAULTS.items() if _known(server, k)})
    body.update(copy.deepcopy(canonical))
    window = canonical.get("duplicate_window") or default_duplicate_window(body, server)
    if window:
        body["duplicate_window"] = window
    return body


def full_consumer(name: str, canonical: dict, stream: dict | None, server: Server) -> dict:
    """A complete consumer config for CONSUMER.CREATE, with the defaults pedantic mode wants spelled out."""
    body: dict[str, Any] = {"durable_name": name, "name": name}
    defaults = consumer_defaults(canonical, stream)
    if server.field_since("consumer", "priority_policy"):
        defaults.pop("priority_policy")
    body.update(defaults)
    body.update(copy.deepcopy(canonical))
    if body.get("priority_policy") == "none" and not body.get("priority_groups"):
        body.pop("priority_policy")
    return body
