"""End to end on a real server through the real CLI: apply, plan clean, updates, replaces, prune, export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.canonical import MARKER
from tests.helpers import consumer_config, request, run_cli, stream_config, stream_names, write

pytestmark = [pytest.mark.e2e, pytest.mark.compat]

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    target = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", target)
    return target


def apply_ok(url: str, *paths: str | Path, extra: tuple[str, ...] = ()) -> str:
    result = run_cli("apply", *map(str, paths), *extra, url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def plan_clean(url: str, *paths: str | Path) -> None:
    result = run_cli("plan", *map(str, paths), "--detailed-exitcode", url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in result.stdout


def test_apply_examples_then_plan_has_no_changes(nats_server, manifests):
    out = apply_ok(nats_server.url, manifests)
    assert "created stream/JOBS" in out
    # the four declared streams, plus the bucket that held the apply lock
    assert stream_names(nats_server.url) == [
        "JOBS",
        "JOB_EVENTS",
        "KV_job_state",
        "KV_nats_reconcile",
        "OBJ_job_artifacts",
    ]
    jobs = stream_config(nats_server.url, "JOBS")
    assert jobs["retention"] == "workqueue"
    assert jobs["max_age"] == 24 * 3600 * 10**9
    assert jobs["max_bytes"] == GiB
    assert jobs["metadata"][MARKER] == "default"
    workers = consumer_config(nats_server.url, "JOBS", "workers")
    assert workers["backoff"] == [30 * 10**9, 60 * 10**9, 300 * 10**9, 900 * 10**9]
    assert workers["ack_wait"] == 30 * 10**9
    kv = stream_config(nats_server.url, "KV_job_state")
    assert kv["max_msgs_per_subject"] == 5 and kv["allow_direct"] is True and kv["deny_delete"] is True
    plan_clean(nats_server.url, manifests)
    again = run_cli("apply", str(manifests), url=nats_server.url)
    assert again.returncode == 0 and "No changes" in again.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "shown", "check"),
    [
        (
            "events.yaml",
            "max_age: 7d",
            "max_age: 14d",
            "max_age: 7d -> 14d",
            lambda url: stream_config(url, "JOB_EVENTS")["max_age"] == 14 * 86400 * 10**9,
        ),
        (
            "events.yaml",
            "max_deliver: 3",
            "max_deliver: 10",
            "max_deliver: 3 -> 10",
            lambda url: consumer_config(url, "JOB_EVENTS", "failures")["max_deliver"] == 10,
        ),
        (
            "state.yaml",
            "history: 5",
            "history: 10",
            "max_msgs_per_subject: 5 -> 10",
            lambda url: stream_config(url, "KV_job_state")["max_msgs_per_subject"] == 10,
        ),
        (
            "state.yaml",
            "max_bytes: 10GiB",
            "max_bytes: 20GiB",
            "max_bytes: 10GiB -> 20GiB",
            lambda url: stream_config(url, "OBJ_job_artifacts")["max_bytes"] == 20 * GiB,
        ),
    ],
    ids=["stream", "consumer", "kv", "objectstore"],
)
def test_one_field_change_is_an_update_of_exactly_that_field(
    nats_server, manifests, file, old, new, shown, check
):
    apply_ok(nats_server.url, manifests)
    path = manifests / file
    path.write_text(path.read_text().replace(old, new))
    result = run_cli("plan", str(manifests), "--detailed-exitcode", url=nats_server.url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in result.stdout
    diff_lines = [line.strip() for line in result.stdout.splitlines() if "->" in line]
    assert diff_lines == [shown]
    apply_ok(nats_server.url, manifests)
    assert check(nats_server.url)
    plan_clean(nats_server.url, manifests)


def test_removing_a_field_plans_a_change_back_to_the_default(nats_server, manifests):
    apply_ok(nats_server.url, manifests)
    path = manifests / "events.yaml"
    path.write_text(path.read_text().replace("  max_msgs_per_subject: 1000\n", ""))
    result = run_cli("plan", str(manifests), url=nats_server.url)
    assert "max_msgs_per_subject: 1000 -> unlimited" in result.stdout
    apply_ok(nats_server.url, manifests)
    assert stream_config(nats_server.url, "JOB_EVENTS")["max_msgs_per_subject"] == -1


def test_immutable_change_is_a_replace_refused_without_allow_replace(nats_server, manifests):
    apply_ok(nats_server.url, manifests)
    path = manifests / "jobs.yaml"
    path.write_text(path.read_text().replace("storage: file", "storage: memory"))
    plan = run_cli("plan", str(manifests), "--detailed-exitcode", url=nats_server.url)
    assert plan.returncode == 2
    assert "replace stream/JOBS" in plan.stdout
    assert "storage: file -> memory  # forces replace" in plan.stdout
    assert "replace consumer/JOBS/workers" in plan.stdout  # a replaced stream takes its consumers along
    before = stream_config(nats_server.url, "JOBS")

    refused = run_cli("apply", str(manifests), url=nats_server.url)
    assert refused.returncode == 1
    assert "--allow-replace" in refused.stderr and "Traceback" not in refused.stderr
    assert stream_config(nats_server.url, "JOBS") == before

    apply_ok(nats_server.url, manifests, extra=("--allow-replace",))
    assert stream_config(nats_server.url, "JOBS")["storage"] == "memory"
    assert consumer_config(nats_server.url, "JOBS", "workers")["max_deliver"] == 5
    plan_clean(nats_server.url, manifests)


def test_consumer_immutable_change_is_a_replace(nats_server, manifests):
    apply_ok(nats_server.url, manifests)
    path = manifests / "events.yaml"
    path.write_text(path.read_text().replace("deliver_policy: new", "deliver_policy: last"))
    plan = run_cli("plan", str(manifests), url=nats_server.url)
    assert "replace consumer/JOB_EVENTS/failures" in plan.stdout
    assert "deliver_policy: new -> last  # forces replace" in plan.stdout
    apply_ok(nats_server.url, manifests, extra=("--allow-replace",))
    assert consumer_config(nats_server.url, "JOB_EVENTS", "failures")["deliver_policy"] == "last"


def test_prune_deletes_only_resources_this_set_created(nats_server, manifests, tmp_path):
    url = nats_server.url
    apply_ok(url, manifests)
    # A stream and a consumer made by hand on the same server: never ours to delete.
    request(url, "$JS.API.STREAM.CREATE.HANDMADE", {"name": "HANDMADE", "subjects": ["hand.>"]})
    request(
        url,
        "$JS.API.CONSUMER.CREATE.JOB_EVENTS.audit",
        {"stream_name": "JOB_EVENTS", "config": {"durable_name": "audit", "ack_policy": "explicit"}},
    )
    # Another manifest set on the same server.
    other = write(
        tmp_path / "other",
        "other.yaml",
        """
        kind: Stream
        name: OTHER_TEAM
        spec: {subjects: ["other.>"]}
    """,
    ).parent
    apply_ok(url, other, extra=("--set", "other-team"))

    (manifests / "state.yaml").unlink()  # drop the KV bucket and the object store
    path = manifests / "events.yaml"
    path.write_text(path.read_text().split("---")[0])  # drop the failures consumer
    without_prune = run_cli("plan", str(manifests), url=url)
    assert "delete" not in without_prune.stdout

    plan = run_cli("plan", str(manifests), "--prune", url=url)
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete." in plan.stdout, plan.stdout
    apply_ok(url, manifests, extra=("--prune",))
    names = set(stream_names(url))
    assert {"JOBS", "JOB_EVENTS", "HANDMADE", "OTHER_TEAM"} <= names
    assert not names & {"KV_job_state", "OBJ_job_artifacts"}
    assert consumer_config(url, "JOB_EVENTS", "failures") is None
    assert consumer_config(url, "JOB_EVENTS", "audit") is not None
    plan_clean(url, manifests)


def test_export_of_hand_made_resources_plans_back_clean(nats_server, tmp_path):
    url = nats_server.url
    request(
        url,
        "$JS.API.STREAM.CREATE.ORDERS",
        {
            "name": "ORDERS",
            "subjects": ["orders.*", "orders.archive.>"],
            "max_age": 3 * 86400 * 10**9,
            "max_bytes": 512 * 1024**2,
            "discard": "new",
            "num_replicas": 1,
            "duplicate_window": 30 * 10**9,
            "metadata": {"team": "shop"},
        },
    )
    request(
        url,
        "$JS.API.CONSUMER.CREATE.ORDERS.billing",
        {
            "stream_name": "ORDERS",
            "config": {
                "durable_name": "billing",
                "ack_policy": "explicit",
                "filter_subjects": ["orders.paid", "orders.refunded"],
                "max_deliver": 4,
                "backoff": [10**9, 5 * 10**9, 30 * 10**9],
                "ack_wait": 10**9,
            },
        },
    )
    request(
        url,
        "$JS.API.STREAM.CREATE.KV_sessions",
        {
            "name": "KV_sessions",
            "subjects": ["$KV.sessions.>"],
            "max_msgs_per_subject": 3,
            "max_age": 3600 * 10**9,
            "max_bytes": -1,
            "max_msg_size": 4096,
            "storage": "memory",
            "num_replicas": 1,
            "allow_rollup_hdrs": True,
            "deny_delete": True,
            "duplicate_window": 120 * 10**9,
            "max_msgs": -1,
            "max_consumers": -1,
            "allow_direct": True,
            "discard": "new",
        },
    )
    exported = run_cli("export", url=url)
    assert exported.returncode == 0, exported.stderr
    assert "kind: KeyValue" in exported.stdout and "name: sessions" in exported.stdout
    assert "max_age: 3d" in exported.stdout and "max_bytes: 512MiB" in exported.stdout
    assert "retention" not in exported.stdout  # defaults are left out
    path = write(tmp_path, "live.yaml", exported.stdout)
    plan_clean(url, path)
    # and only some of them, by name
    only = run_cli("export", "--stream", "ORDERS", url=url)
    assert "name: billing" in only.stdout and "sessions" not in only.stdout


def test_a_refused_change_names_the_manifest_and_what_was_done(nats_server, tmp_path):
    url = nats_server.url
    # The server refuses this consumer (its deliver subject is inside its own stream: a delivery cycle),
    # which validation cannot know; the stream before it is created.
    path = write(
        tmp_path,
        "m.yaml",
        """
        kind: Stream
        name: PAYMENTS
        spec: {subjects: ["payments.>"]}
        ---
        kind: Consumer
        stream: PAYMENTS
        name: settle
        spec: {ack_policy: explicit, deliver_subject: payments.settled}
    """,
    )
    result = run_cli("apply", str(path), url=url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:7:1: create consumer/PAYMENTS/settle failed" in result.stderr
    assert "Done before the failure:\n  created stream/PAYMENTS" in result.stderr
    assert "Not done:\n  create consumer/PAYMENTS/settle" in result.stderr
    assert "Traceback" not in result.stderr
    assert stream_config(url, "PAYMENTS") is not None
    assert consumer_config(url, "PAYMENTS", "settle") is None
