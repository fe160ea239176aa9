"""Plan -> text. Rendering makes no decisions; it only shows what plan.py decided."""

from __future__ import annotations

import json
from typing import Any

from .plan import Action, Plan, ResourceChange
from .units import format_duration, format_size

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


class Style:
    def __init__(self, color: bool):
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text


_COLORS = {
    Action.CREATE: "32",
    Action.UPDATE: "33",
    Action.REPLACE: "31",
    Action.DELETE: "31",
    Action.NOOP: "2",
}


def render_change(change: ResourceChange, style: Style) -> list[str]:
    head = f"{change.action.symbol} {change.action.value} {change.address}"
    if change.action.destructive:
        head += "  (destroys its data)" if change.address.is_stream else "  (loses its delivery state)"
    lines = [style.paint(head, _COLORS[change.action])]
    if change.action is Action.CREATE:
        for key, value in (change.after or {}).items():
            lines.append(f"      {key}: {show_value(key, value)}")
    for diff in change.diffs:
        line = (
            f"      {diff.path}: {show_value(diff.path, diff.before)} -> {show_value(diff.path, diff.after)}"
        )
        if diff.forces_replace:
            line += style.paint(f"  # forces replace: {diff.reason}", "31")
        lines.append(line)
    if (change.reason and change.action is not Action.REPLACE) or (change.reason and not change.diffs):
        lines.append(f"      ({change.reason})")
    return lines


def render_text(plan: Plan, color: bool = False) -> str:
    style = Style(color)
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    adopt = [c for c in plan.changes if c.adopt and c.action is Action.NOOP]
    lines: list[str] = []
    for change in shown:
        lines += render_change(change, style)
        lines.append("")
    if not shown:
        lines.append("No changes. The server matches the manifests.")
    else:
        lines.append(f"Plan: {plan.summary}.")
    if adopt:
        names = ", ".join(str(c.address) for c in adopt)
        lines.append(
            f"Apply will mark {len(adopt)} matching resource(s) as managed by set {plan.set_name!r}: {names}"
        )
    return "\n".join(lines)
