"""Plan -> text. Rendering makes no decisions; it only shows what plan.py decided."""

from __future__ import annotations

from .plan import Action, Plan, ResourceChange
from .units import show_value


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


MARKDOWN_MARKER = "<!-- nats-reconcile-plan -->"  # lets a CI job find and update its own PR comment
_EMOJI = {
    Action.CREATE: "🟢",
    Action.UPDATE: "🟡",
    Action.REPLACE: "🔴",
    Action.DELETE: "🔴",
    Action.NOOP: "⚪",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: Plan) -> str:
    """A PR comment: summary table, one collapsible section per changed resource, destructive marked."""
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    lines = [MARKDOWN_MARKER, "### nats-reconcile plan", ""]
    if not shown:
        lines.append(f"**No changes.** The server (nats-server {plan.server}) matches the manifests.")
        return "\n".join(lines) + "\n"
    destructive = sum(1 for c in shown if c.action.destructive)
    lines.append(f"**{plan.summary}** · nats-server {plan.server} · set `{plan.set_name}`")
    if destructive:
        lines += ["", f"> [!WARNING]\n> {destructive} destructive change(s): replace and delete lose data."]
    lines += ["", "| | Action | Resource | Fields |", "|---|---|---|---|"]
    for c in shown:
        action = f"**{c.action.value}** ⚠️ destructive" if c.action.destructive else c.action.value
        fields = ", ".join(f"`{d.path}`" for d in c.diffs) or c.reason or f"{len(c.after or {})} fields"
        lines.append(f"| {_EMOJI[c.action]} | {action} | `{c.address}` | {_cell(fields)} |")
    for c in shown:
        lines += [
            "",
            f"<details><summary>{_EMOJI[c.action]} {c.action.value} <code>{c.address}</code></summary>",
            "",
        ]
        if c.reason:
            lines += [f"_{_cell(c.reason)}_", ""]
        if c.action is Action.CREATE:
            lines += ["| Field | Value |", "|---|---|"]
            lines += [f"| `{k}` | {_cell(show_value(k, v))} |" for k, v in (c.after or {}).items()]
        elif c.diffs:
            lines += ["| Field | Before | After | |", "|---|---|---|---|"]
            for d in c.diffs:
                note = "forces replace" if d.forces_replace else ""
                lines.append(
                    f"| `{d.path}` | {_cell(show_value(d.path, d.before))} | "
                    f"{_cell(show_value(d.path, d.after))} | {note} |"
                )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render(plan: Plan, output: str = "text", color: bool = False) -> str:
    if output == "json":
        from .plan_document import render_json  # pydantic costs 100ms of start-up; only JSON needs it

        return render_json(plan)
    if output == "markdown":
        return render_markdown(plan)
    return render_text(plan, color=color)
