"""Durations and sizes in human units, both ways. Durations are integer nanoseconds on the wire."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any

NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")

BYTES = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")

INT64_MAX = 2**63 - 1


def parse_duration(value: object) -> int:
    """'1h30m' -> nanoseconds. Integers pass through as nanoseconds. Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s or 1h30m, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s or 1h30m, got {value!r}")
    text = value.strip()
    if text.isdigit():
        raise ValueError(f"{value!r} has no unit; write 30s, 500ms, 1h30m, 7d, or an integer of nanoseconds")
    pos, total = 0, Fraction(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += Fraction(match.group(1)) * NANOS[match.group(2)]  # exact: floats lose ns past 104 days
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"{value!r} is not a duration; write 30s, 500ms, 1h30m, 7d, or an integer of nanoseconds"
        )
    if total > INT64_MAX:
        raise ValueError(f"{value!r} is too long a duration")
    return round(total)


def parse_size(value: object) -> int:
    """'1GiB' -> bytes. Integers pass through (-1 means unlimited). Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512KiB or 1GiB, got {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 512KiB or 1GiB, got {value!r}")
    match = _SIZE.fullmatch(value.strip())
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in BYTES):
        raise ValueError(f"{value!r} is not a size; write 512KiB, 1GiB, 10MB, or an integer of bytes")
    total = Fraction(match.group(1)) * BYTES.get(unit, 1)
    if total > INT64_MAX:
        raise ValueError(f"{value!r} is too large a size")
    if total.denominator != 1:
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(total)


def format_duration(nanos: int) -> str:
    """Nanoseconds -> the shortest exact human form: 90s -> '1m30s', 7 days -> '7d'."""
    if not isinstance(nanos, int) or isinstance(nanos, bool) or nanos < 0:
        return repr(nanos)
    if nanos == 0:
        return "0s"
    parts = []
    rest = nanos
    for unit in ("d", "h", "m", "s", "ms", "us", "ns"):
        size = NANOS[unit]
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(count: int) -> str:
    """Bytes -> '1GiB' when exact in a binary unit, else the integer. -1 is 'unlimited'."""
    if not isinstance(count, int) or isinstance(count, bool):
        return repr(count)
    if count == -1:
        return "unlimited"
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size and count % size == 0:
            return f"{count // size}{unit}"
    return str(count)


DURATIONS = {
    "max_age",
    "duplicate_window",
    "subject_delete_marker_ttl",
    "inactive_threshold",
    "ack_wait",
    "idle_heartbeat",
    "max_expires",
    "priority_timeout",
    "backoff",
    "ttl",
    "limit_marker_ttl",
}
SIZES = {"max_bytes", "max_msg_size", "max_value_size"}
LIMITS = {"max_msgs", "max_msgs_per_subject", "max_consumers", "max_deliver", "max_ack_pending"}


def show_value(path: str, value: Any) -> str:
    """A field value in human units: 86400000000000 -> '1d', 1073741824 -> '1GiB', -1 -> 'unlimited'."""
    leaf = path.rsplit(".", 1)[-1]
    if value is None:
        return "(unset)"
    if leaf in DURATIONS:
        if isinstance(value, list):
            return "[" + ", ".join(format_duration(v) for v in value) + "]"
        if leaf in ("max_age", "duplicate_window") and value == 0:
            return "0s (unlimited)" if leaf == "max_age" else "0s"
        return format_duration(value)
    if leaf in SIZES:
        return format_size(value)
    if leaf in LIMITS and value == -1:
        return "unlimited"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
