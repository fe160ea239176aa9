"""Pick a renderer by name."""

from __future__ import annotations

from .plan import Plan
from .render import render_text


def render(plan: Plan, output: str, color: bool = False) -> str:
    if output == "text":
        return render_text(plan, color=color)
    raise NotImplementedError(output)
