"""The JSON plan document: a stable, versioned format for scripts. schemas/plan.json is generated from it.

Bump FORMAT_VERSION on any change that could break a reader (removing or renaming a field, changing a
meaning); adding an optional field is not such a change.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .plan import Action, Plan, ResourceChange
from .units import show_value

FORMAT_VERSION = "1.0"

ActionName = Literal["no-op", "create", "update", "replace", "delete"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldChange(_Model):
    path: str = Field(description="Dotted wire field path, e.g. max_age or consumer_limits.max_ack_pending")
    before: Any = Field(
        description="Live value in wire units (nanoseconds, bytes); the server default if unset"
    )
    after: Any = Field(description="Desired value in wire units")
    before_display: str = Field(description="`before` in human units, e.g. 7d, 1GiB, unlimited")
    after_display: str = Field(description="`after` in human units")
    forces_replace: bool = Field(description="The server refuses to change this field in place")
    reason: str | None = Field(None, description="Why the field forces a replace")


class Change(_Model):
    address: str = Field(description="kind/name, or consumer/stream/name")
    kind: Literal["stream", "consumer", "kv", "objectstore"]
    name: str
    stream: str = Field(
        description="The JetStream stream behind the resource (KV_x, OBJ_x, or the consumer's)"
    )
    action: ActionName
    destructive: bool = Field(description="replace or delete: data or delivery state is lost")
    adopt: bool = Field(description="Matches, but apply will add this set's marker to its metadata")
    reason: str | None = None
    before: dict[str, Any] | None = Field(
        description="Live config, canonical (defaults left out); null on create"
    )
    after: dict[str, Any] | None = Field(description="Desired config, canonical; null on delete")
    diffs: list[FieldChange]


class Summary(_Model):
    create: int
    update: int
    replace: int
    delete: int
    unchanged: int
    adopt: int


class ServerInfo(_Model):
    version: str
    api_level: int


class PlanDocument(_Model):
    format_version: Literal["1.0"] = FORMAT_VERSION
    set: str = Field(description="The manifest set (--set)")
    prune: bool
    server: ServerInfo
    has_changes: bool
    summary: Summary
    changes: list[Change] = Field(
        description="Every declared (and, with prune, deleted) resource, in apply order"
    )


def _change(c: ResourceChange) -> Change:
    return Change(
        address=str(c.address),
        kind=c.address.kind,
        name=c.address.name,
        stream=c.address.stream_name,  # type: ignore[arg-type]
        action=c.action.value,
        destructive=c.action.destructive,
        adopt=c.adopt,
        reason=c.reason,
        before=c.before,
        after=c.after,
        diffs=[
            FieldChange(
                path=d.path,
                before=d.before,
                after=d.after,
                before_display=show_value(d.path, d.before),
                after_display=show_value(d.path, d.after),
                forces_replace=d.forces_replace,
                reason=d.reason,
            )
            for d in c.diffs
        ],
    )


def plan_document(plan: Plan) -> PlanDocument:
    return PlanDocument(
        set=plan.set_name,
        prune=plan.prune,
        server=ServerInfo(version=str(plan.server), api_level=plan.server.api_level),
        has_changes=plan.has_changes,
        summary=Summary(
            create=plan.count(Action.CREATE),
            update=plan.count(Action.UPDATE),
            replace=plan.count(Action.REPLACE),
            delete=plan.count(Action.DELETE),
            unchanged=plan.count(Action.NOOP),
            adopt=sum(1 for c in plan.changes if c.adopt),
        ),
        changes=[_change(c) for c in plan.changes],
    )


def render_json(plan: Plan) -> str:
    """The plan document as JSON."""
    return plan_document(plan).model_dump_json(indent=2)


def json_schema() -> str:
    schema = PlanDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nats-reconcile plan document"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m reconciler.plan_document > schemas/plan.json
    print(json_schema(), end="")
