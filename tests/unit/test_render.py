"""The same plan (creates, an update, a replace, a prune) rendered as text, JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reconciler.canonical import MARKER
from reconciler.load import parse_text
from reconciler.observe import LiveState
from reconciler.plan import Action, make_plan
from reconciler.plan_document import json_schema
from reconciler.render import MARKDOWN_MARKER, render
from reconciler.validate import validate
from reconciler.versions import Server

ROOT = Path(__file__).resolve().parents[2]

MANIFESTS = """
kind: Stream
name: ORDERS
spec: {subjects: ["orders.>"], max_age: 14d, storage: file}
---
kind: Stream
name: AUDIT
spec: {subjects: ["audit.>"], storage: memory}
---
kind: Consumer
stream: ORDERS
name: billing
spec: {ack_policy: explicit, filter_subject: orders.paid}
---
kind: KeyValue
name: carts
spec: {history: 3}
"""


def live_state() -> LiveState:
    marker = {MARKER: "default"}
    return LiveState(
        Server((2, 15, 1), 5),
        streams={
            "ORDERS": {
                "name": "ORDERS",
                "subjects": ["orders.>"],
                "max_age": 7 * 86400 * 10**9,
                "metadata": marker,
            },
            "AUDIT": {"name": "AUDIT", "subjects": ["audit.>"], "storage": "file", "metadata": marker},
            "OLD": {"name": "OLD", "subjects": ["old.>"], "metadata": marker},
            "NOT_OURS": {"name": "NOT_OURS", "subjects": ["x.>"]},
        },
        consumers={"ORDERS": {}, "AUDIT": {}, "OLD": {}, "NOT_OURS": {}},
    )


@pytest.fixture
def plan():
    docs, problems = parse_text(MANIFESTS, "orders.yaml", {})
    assert not problems
    return make_plan(validate(docs), live_state(), prune=True)


def test_the_plan_has_every_kind_of_action(plan):
    actions = {str(c.address): c.action for c in plan.changes}
    assert actions == {
        "stream/ORDERS": Action.UPDATE,
        "stream/AUDIT": Action.REPLACE,
        "consumer/ORDERS/billing": Action.CREATE,
        "kv/carts": Action.CREATE,
        "stream/OLD": Action.DELETE,
    }
    assert plan.summary == "2 to create, 1 to update, 1 to replace, 1 to delete"


def test_text(plan):
    text = render(plan, "text")
    assert "~ update stream/ORDERS\n      max_age: 7d -> 14d" in text
    assert "-/+ replace stream/AUDIT  (destroys its data)" in text
    assert "storage: file -> memory  # forces replace: the storage type cannot be changed" in text
    assert "+ create consumer/ORDERS/billing" in text
    assert "- delete stream/OLD" in text
    assert "NOT_OURS" not in text
    assert text.rstrip().endswith("Plan: 2 to create, 1 to update, 1 to replace, 1 to delete.")
    assert "\033[" not in text
    assert "\033[" in render(plan, "text", color=True)


def test_json_validates_against_its_schema(plan):
    document = json.loads(render(plan, "json"))
    schema = json.loads((ROOT / "schemas" / "plan.json").read_text())
    jsonschema.validate(document, schema)
    assert document["format_version"] == "1.0"
    assert document["summary"] == {
        "create": 2,
        "update": 1,
        "replace": 1,
        "delete": 1,
        "unchanged": 0,
        "adopt": 0,
    }
    orders = next(c for c in document["changes"] if c["address"] == "stream/ORDERS")
    assert orders["diffs"] == [
        {
            "path": "max_age",
            "before": 7 * 86400 * 10**9,
            "after": 14 * 86400 * 10**9,
            "before_display": "7d",
            "after_display": "14d",
            "forces_replace": False,
            "reason": None,
        }
    ]
    audit = next(c for c in document["changes"] if c["address"] == "stream/AUDIT")
    assert audit["destructive"] and audit["diffs"][0]["forces_replace"]


def test_schema_file_is_generated_from_the_model():
    assert (ROOT / "schemas" / "plan.json").read_text() == json_schema(), (
        "regenerate with: python -m reconciler.plan_document > schemas/plan.json"
    )


def test_markdown_has_the_summary_and_a_section_per_resource(plan):
    md = render(plan, "markdown")
    assert md.startswith(MARKDOWN_MARKER)
    assert "**2 to create, 1 to update, 1 to replace, 1 to delete**" in md
    assert "> [!WARNING]" in md
    for address in ("stream/ORDERS", "stream/AUDIT", "consumer/ORDERS/billing", "kv/carts", "stream/OLD"):
        assert "<summary>" in md and f"<code>{address}</code></summary>" in md
        assert f"| `{address}` |" in md
    assert "| `max_age` | 7d | 14d |  |" in md
    assert "| `storage` | file | memory | forces replace |" in md
    assert md.count("⚠️ destructive") == 2


def test_no_changes_in_every_format():
    docs, _ = parse_text("kind: Stream\nname: S\nspec: {subjects: [s]}\n", "s.yaml", {})
    live = LiveState(
        Server(),
        streams={"S": {"name": "S", "subjects": ["s"], "metadata": {MARKER: "default"}}},
        consumers={"S": {}},
    )
    plan = make_plan(validate(docs), live)
    assert not plan.has_changes
    assert "No changes" in render(plan, "text")
    assert "**No changes.**" in render(plan, "markdown")
    assert json.loads(render(plan, "json"))["has_changes"] is False
