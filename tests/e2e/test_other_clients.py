"""Resources made by other clients plan as no changes when a manifest declares the same thing.

Every resource here is created with the exact request another client sends, as raw JSON on `$JS.API.*`
with plain nats-py: nats.go marshals its structs without `omitempty` on many fields, so a zero-valued Go
`StreamConfig` sends `"max_msgs":0,"num_replicas":0,...`; nats.go and nats-py shape KV buckets and object
stores differently (client-semantics.md, server-behaviour/2.15.1/captured_client_requests.json).

For each shape: plan is clean; apply changes nothing on the server but adds our marker to the metadata
(no message lost, no consumer recreated: its `created` and delivery state stay); plan is clean again.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from reconciler.canonical import MARKER
from tests.helpers import consumer_names, request, run_cli, stream_names, write

pytestmark = [pytest.mark.e2e, pytest.mark.compat]

SET = "default"  # the set name run_cli's apply uses (NATS_* variables are not passed on)
LOCK_STREAM = "KV_nats_reconcile"  # apply's lock bucket; not part of what is compared
S = 1_000_000_000
MINUTE, HOUR = 60 * S, 3600 * S
GiB = 1024**3


# --- the requests other clients send -------------------------------------------------------------


def go_stream(name: str, **fields: Any) -> dict[str, Any]:
    """json.Marshal(jetstream.StreamConfig{Name: name, ...}): the fields without omitempty are always sent.

    retention, max_consumers, max_msgs, max_bytes, discard, max_age, max_msgs_per_subject, storage,
    num_replicas, compression, allow_direct, mirror_direct and consumer_limits (a struct, so `{}`).
    The zero values of the enums are limits / old / file / none.
    """
    body: dict[str, Any] = {
        "name": name,
        "retention": "limits",
        "max_consumers": 0,
        "max_msgs": 0,
        "max_bytes": 0,
        "discard": "old",
        "max_age": 0,
        "max_msgs_per_subject": 0,
        "storage": "file",
        "num_replicas": 0,
        "compression": "none",
        "allow_direct": False,
        "mirror_direct": False,
        "consumer_limits": {},
    }
    body.update(fields)
    return body


def go_kv(bucket: str, *, history: int = 0, ttl: int = 0) -> dict[str, Any]:
    """jetstream.prepareKeyValueConfig(KeyValueConfig{Bucket, History, TTL}) marshalled as nats.go does."""
    return go_stream(
        f"KV_{bucket}",
        subjects=[f"$KV.{bucket}.>"],
        max_consumers=-1,
        max_msgs=-1,
        max_bytes=-1,
        discard="new",
        max_age=ttl,
        max_msgs_per_subject=history or 1,
        max_msg_size=-1,
        num_replicas=1,
        duplicate_window=ttl if 0 < ttl < 2 * MINUTE else 2 * MINUTE,
        deny_delete=True,
        allow_rollup_hdrs=True,
        allow_direct=True,
    )


def go_object_store(bucket: str) -> dict[str, Any]:
    """jetstream.prepareObjectStoreConfig(ObjectStoreConfig{Bucket}): no duplicate window, limits at 0."""
    return go_stream(
        f"OBJ_{bucket}",
        subjects=[f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        max_bytes=-1,
        discard="new",
        num_replicas=1,
        allow_rollup_hdrs=True,
        allow_direct=True,
    )


def py_kv(bucket: str) -> dict[str, Any]:
    """nats-py 2.16 `js.create_key_value(bucket=...)` (captured_client_requests.json)."""
    return {
        "name": f"KV_{bucket}",
        "subjects": [f"$KV.{bucket}.>"],
        "max_consumers": -1,
        "max_msgs": -1,
        "discard": "new",
        "discard_new_per_subject": False,
        "max_msgs_per_subject": 1,
        "num_replicas": 1,
        "no_ack": False,
        "duplicate_window": 2 * MINUTE,
        "sealed": False,
        "deny_delete": True,
        "deny_purge": False,
        "allow_rollup_hdrs": True,
        "allow_msg_ttl": True,
        "max_age": 0,
    }


def py_object_store(bucket: str) -> dict[str, Any]:
    """nats-py 2.16 `js.create_object_store(bucket)` (captured_client_requests.json)."""
    return {
        "name": f"OBJ_{bucket}",
        "subjects": [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        "max_consumers": 0,
        "discard": "new",
        "discard_new_per_subject": False,
        "max_msgs_per_subject": -1,
        "max_msg_size": -1,
        "num_replicas": 1,
        "no_ack": False,
        "duplicate_window": 0,
        "sealed": False,
        "deny_delete": False,
        "deny_purge": False,
        "allow_rollup_hdrs": True,
        "allow_direct": True,
        "max_age": 0,
    }


def go_consumer(durable: str, **fields: Any) -> dict[str, Any]:
    """json.Marshal(jetstream.ConsumerConfig{Durable: durable, ...}).

    deliver_policy, ack_policy, replay_policy and num_replicas have no omitempty; their zero values are
    all / explicit (AckExplicitPolicy is iota 0 in the jetstream package) / instant / 0.
    """
    return {
        "durable_name": durable,
        "deliver_policy": "all",
        "ack_policy": "explicit",
        "replay_policy": "instant",
        "num_replicas": 0,
        **fields,
    }


# A client that marshals every numeric field (no omitempty at all) sends these zeros too; the server
# turns each into its default (setConsumerConfigDefaults).
ZERO_CONSUMER_FIELDS: dict[str, Any] = {
    "max_deliver": 0,
    "ack_wait": 0,
    "max_ack_pending": 0,
    "max_waiting": 0,
    "max_batch": 0,
    "max_expires": 0,
    "max_bytes": 0,
    "inactive_threshold": 0,
    "rate_limit_bps": 0,
    "opt_start_seq": 0,
}


def create(url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = request(url, subject, body)
    assert "error" not in answer, (subject, answer)
    return answer


def create_stream(url: str, body: dict[str, Any]) -> dict[str, Any]:
    return create(url, f"$JS.API.STREAM.CREATE.{body['name']}", body)


def legacy_durable(url: str, stream: str, config: dict[str, Any]) -> dict[str, Any]:
    """Pre-2.9 nats.go: `$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>`, no action, no name."""
    return create(
        url,
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{config['durable_name']}",
        {"stream_name": stream, "config": config},
    )


def go_create_consumer(url: str, stream: str, config: dict[str, Any], action: str = "create") -> dict:
    """jetstream.CreateConsumer: the filter-subject form of the subject when exactly one filter is set."""
    subject = f"$JS.API.CONSUMER.CREATE.{stream}.{config['durable_name']}"
    if config.get("filter_subject") and not config.get("filter_subjects"):
        subject += f".{config['filter_subject']}"
    return create(url, subject, {"stream_name": stream, "config": config, "action": action})


# --- messages and delivery state -----------------------------------------------------------------


async def _publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for subject, data in messages:
            await js.publish(subject, data)
    finally:
        await nc.close()


def publish(url: str, *messages: tuple[str, bytes]) -> None:
    asyncio.run(_publish(url, list(messages)))


async def _fetch_and_ack(url: str, stream: str, durable: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(durable=durable, stream=stream)
        for msg in await sub.fetch(count, timeout=5):
            await msg.ack_sync()
    finally:
        await nc.close()


def fetch_and_ack(url: str, stream: str, durable: str, count: int = 1) -> None:
    asyncio.run(_fetch_and_ack(url, stream, durable, count))


def wait_for_messages(url: str, stream: str, count: int, timeout: float = 10) -> None:
    """Sourcing is asynchronous: wait until `stream` holds `count` messages."""
    deadline = time.monotonic() + timeout
    while True:
        state = request(url, f"$JS.API.STREAM.INFO.{stream}")["state"]
        if state["messages"] >= count or time.monotonic() > deadline:
            assert state["messages"] == count, state
            return
        time.sleep(0.1)


# --- what the server holds -----------------------------------------------------------------------


def _user_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the `_nats.*` metadata keys the server manages."""
    out = copy.deepcopy(config)
    metadata = {k: v for k, v in (out.get("metadata") or {}).items() if not k.startswith("_nats.")}
    if metadata:
        out["metadata"] = metadata
    else:
        out.pop("metadata", None)
    return out


def _unmarked(config: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    metadata = {k: v for k, v in (out.get("metadata") or {}).items() if k != MARKER}
    if metadata:
        out["metadata"] = metadata
    else:
        out.pop("metadata", None)
    return out


def snapshot(url: str) -> dict[str, Any]:
    """Every stream and consumer: config (minus `_nats.*`), creation time, message and delivery state."""
    out: dict[str, Any] = {}
    for name in stream_names(url):
        if name == LOCK_STREAM:
            continue
        info = request(url, f"$JS.API.STREAM.INFO.{name}")
        state = info["state"]
        consumers = {}
        for consumer in consumer_names(url, name):
            ci = request(url, f"$JS.API.CONSUMER.INFO.{name}.{consumer}")
            consumers[consumer] = {
                "config": _user_config(ci["config"]),
                "created": ci["created"],
                "delivered": (ci["delivered"]["consumer_seq"], ci["delivered"]["stream_seq"]),
                "ack_floor": (ci["ack_floor"]["consumer_seq"], ci["ack_floor"]["stream_seq"]),
                "num_ack_pending": ci["num_ack_pending"],
                "num_redelivered": ci["num_redelivered"],
                "num_pending": ci["num_pending"],
            }
        out[name] = {
            "config": _user_config(info["config"]),
            "created": info["created"],
            "state": {k: state[k] for k in ("messages", "bytes", "first_seq", "last_seq")},
            "consumers": consumers,
        }
    return out


def assert_only_marker_added(
    before: dict[str, Any],
    after: dict[str, Any],
    changed: dict[str, dict[str, tuple[Any, Any]]] | None = None,
) -> None:
    """`after` is `before` plus our marker on every stream and consumer; `changed` lists expected updates."""
    changed = changed or {}
    assert sorted(after) == sorted(before)
    for name, b in before.items():
        a = copy.deepcopy(after[name])
        assert (a["config"].get("metadata") or {}).get(MARKER) == SET, (name, a["config"])
        for field, (old, new) in changed.get(name, {}).items():
            assert (b["config"].get(field), a["config"].get(field)) == (old, new), (name, field)
            a["config"][field] = b["config"].get(field)
            if old is None:
                a["config"].pop(field)
        a["config"] = _unmarked(a["config"])
        assert a["config"] == b["config"], f"stream {name}: the server config changed beyond the marker"
        assert a["created"] == b["created"], f"stream {name} was recreated"
        assert a["state"] == b["state"], f"stream {name}: messages changed"
        assert sorted(a["consumers"]) == sorted(b["consumers"]), name
        for consumer, bc in b["consumers"].items():
            ac = a["consumers"][consumer]
            assert (ac["config"].get("metadata") or {}).get(MARKER) == SET, (name, consumer, ac["config"])
            ac["config"] = _unmarked(ac["config"])
            assert ac["config"] == bc["config"], (
                f"consumer {name}/{consumer}: config changed beyond the marker"
            )
            assert ac["created"] == bc["created"], f"consumer {name}/{consumer} was recreated"
            assert ac == bc, f"consumer {name}/{consumer}: delivery state changed"


# --- the reconciler ------------------------------------------------------------------------------


def manifests(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "manifests"
    write(directory, "resources.yaml", text)
    return directory


def plan(url: str, directory: Path) -> tuple[int, str]:
    result = run_cli("plan", str(directory), "--detailed-exitcode", url=url)
    assert result.returncode in (0, 2), result.stdout + result.stderr
    return result.returncode, result.stdout


def plan_json(url: str, directory: Path) -> dict[str, Any]:
    result = run_cli("plan", str(directory), "--output", "json", url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def assert_plan_clean(url: str, directory: Path, *, adopted: bool = False) -> None:
    code, out = plan(url, directory)
    assert code == 0 and "No changes" in out, out
    if adopted:
        assert "Apply will mark" not in out, out


def apply(url: str, directory: Path) -> str:
    result = run_cli("apply", str(directory), url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "did not take" not in result.stderr, result.stderr
    return result.stdout


def adopt_without_changes(url: str, directory: Path) -> None:
    """Plan clean; apply only adds the marker; plan clean again (and nothing left to mark)."""
    assert_plan_clean(url, directory)
    before = snapshot(url)
    apply(url, directory)
    assert_only_marker_added(before, snapshot(url))
    assert_plan_clean(url, directory, adopted=True)


# --- (a), (b): nats.go StreamConfig ---------------------------------------------------------------


def test_zero_valued_go_stream_config_plans_clean(nats_server, tmp_path):
    url = nats_server.url
    create_stream(url, go_stream("EVENTS", subjects=["events.>"]))
    publish(url, ("events.user.signup", b"{}"), ("events.user.login", b"{}"))
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: EVENTS
        spec:
          subjects: ["events.>"]
        """,
    )
    adopt_without_changes(url, directory)


def test_go_stream_config_with_real_values_plans_clean(nats_server, tmp_path):
    url = nats_server.url
    create_stream(
        url,
        go_stream(
            "JOBS",
            subjects=["jobs.>"],
            retention="workqueue",
            max_age=HOUR,
            max_bytes=GiB,
            storage="memory",
        ),
    )
    publish(url, ("jobs.resize", b"img-1"), ("jobs.resize", b"img-2"), ("jobs.transcode", b"vid-1"))
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: JOBS
        spec:
          subjects: ["jobs.>"]
          retention: workqueue
          storage: memory
          max_age: 1h
          max_bytes: 1GiB
        """,
    )
    adopt_without_changes(url, directory)


# --- (c), (d): KV buckets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "options", "spec"),
    [
        ("sessions", {"history": 5, "ttl": HOUR}, "{history: 5, ttl: 1h}"),
        ("feature_flags", {}, "{}"),
        ("presence", {"ttl": 30 * S}, "{ttl: 30s}"),
    ],
    ids=["history-and-ttl", "no-options", "ttl-below-duplicate-window"],
)
def test_go_kv_bucket_plans_clean(nats_server, tmp_path, bucket, options, spec):
    url = nats_server.url
    create_stream(url, go_kv(bucket, **options))
    publish(url, (f"$KV.{bucket}.user.42", b"on"), (f"$KV.{bucket}.user.42", b"off"))
    directory = manifests(
        tmp_path,
        f"""
        kind: KeyValue
        name: {bucket}
        spec: {spec}
        """,
    )
    adopt_without_changes(url, directory)


def test_nats_py_kv_bucket_updates_allow_direct_in_place(nats_server, tmp_path):
    """nats-py leaves direct get off and turns per-message TTLs on; ADR-8 (the manifest) wants direct get.

    The plan may update allow_direct, but must not replace the bucket (that would lose its values), and
    must not try to turn allow_msg_ttl off (the server refuses that on 2.11+).
    """
    url = nats_server.url
    create_stream(url, py_kv("job_state"))
    publish(url, ("$KV.job_state.job.1", b"running"), ("$KV.job_state.job.2", b"done"))
    directory = manifests(
        tmp_path,
        """
        kind: KeyValue
        name: job_state
        spec: {}
        """,
    )
    document = plan_json(url, directory)
    (change,) = document["changes"]
    assert change["address"] == "kv/job_state"
    assert change["action"] == "update", change
    assert not change["destructive"]
    assert [d["path"] for d in change["diffs"]] == ["allow_direct"], change["diffs"]
    assert (change["diffs"][0]["before"], change["diffs"][0]["after"]) == (False, True)
    code, out = plan(url, directory)
    assert code == 2 and "replace" not in out.replace("0 to replace", ""), out

    before = snapshot(url)
    apply(url, directory)
    assert_only_marker_added(before, snapshot(url), {"KV_job_state": {"allow_direct": (False, True)}})
    assert_plan_clean(url, directory, adopted=True)


# --- (e): object stores ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["nats.go", "nats-py"])
def test_object_store_plans_clean(nats_server, tmp_path, client):
    url = nats_server.url
    body = go_object_store("artifacts") if client == "nats.go" else py_object_store("artifacts")
    create_stream(url, body)
    publish(url, ("$O.artifacts.C.chunk1", b"\x00" * 512), ("$O.artifacts.M.cmVwb3J0LnBkZg==", b"{}"))
    directory = manifests(
        tmp_path,
        """
        kind: ObjectStore
        name: artifacts
        """,
    )
    adopt_without_changes(url, directory)


# --- (f), (g), (h): consumers ---------------------------------------------------------------------


def test_work_queue_with_legacy_durable_consumers_plans_clean(nats_server, tmp_path, request):
    """Two durables with disjoint filters through the legacy DURABLE.CREATE API (no `name` on ≤2.11).

    `emails` is exactly what nats.go marshals (omitempty leaves the zero numbers out); `reports` also
    carries every numeric field as 0, as a client without omitempty sends it.
    """
    url = nats_server.url
    create_stream(url, go_stream("TASKS", subjects=["tasks.>"], retention="workqueue"))
    legacy_durable(url, "TASKS", go_consumer("emails", filter_subject="tasks.email.>"))
    legacy_durable(
        url, "TASKS", go_consumer("reports", filter_subject="tasks.report.>", **ZERO_CONSUMER_FIELDS)
    )
    publish(
        url,
        ("tasks.email.welcome", b"a"),
        ("tasks.email.reset", b"b"),
        ("tasks.report.daily", b"c"),
        ("tasks.report.weekly", b"d"),
    )
    fetch_and_ack(url, "TASKS", "emails")  # some delivery state that a recreate would lose
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: TASKS
        spec:
          subjects: ["tasks.>"]
          retention: workqueue
        ---
        kind: Consumer
        stream: TASKS
        name: emails
        spec:
          ack_policy: explicit
          filter_subject: tasks.email.>
        ---
        kind: Consumer
        stream: TASKS
        name: reports
        spec:
          ack_policy: explicit
          filter_subject: tasks.report.>
        """,
    )
    adopt_without_changes(url, directory)


def test_go_push_consumers_plan_clean(nats_server, tmp_path):
    url = nats_server.url
    create_stream(url, go_stream("ORDERS", subjects=["orders.>"]))
    go_create_consumer(
        url,
        "ORDERS",
        go_consumer(
            "audit",
            filter_subject="orders.>",
            deliver_subject="deliver.orders.audit",
            flow_control=True,
            idle_heartbeat=5 * S,
        ),
    )
    go_create_consumer(
        url,
        "ORDERS",
        go_consumer(
            "shipping",
            filter_subject="orders.paid",
            deliver_subject="deliver.orders.shipping",
            deliver_group="shippers",
        ),
    )
    publish(url, ("orders.created", b"1"), ("orders.paid", b"1"))
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: ["orders.>"]
        ---
        kind: Consumer
        stream: ORDERS
        name: audit
        spec:
          ack_policy: explicit
          filter_subject: orders.>
          deliver_subject: deliver.orders.audit
          flow_control: true
          idle_heartbeat: 5s
        ---
        kind: Consumer
        stream: ORDERS
        name: shipping
        spec:
          ack_policy: explicit
          filter_subject: orders.paid
          deliver_subject: deliver.orders.shipping
          deliver_group: shippers
        """,
    )
    adopt_without_changes(url, directory)


def test_consumer_with_backoff_and_no_ack_wait_plans_clean(nats_server, tmp_path):
    """The server sets ack_wait to backoff[0]; a manifest that leaves ack_wait out means the same."""
    url = nats_server.url
    create_stream(url, go_stream("WEBHOOKS", subjects=["webhooks.>"], retention="workqueue"))
    go_create_consumer(
        url,
        "WEBHOOKS",
        go_consumer("deliver", filter_subject="webhooks.>", max_deliver=5, backoff=[S, 10 * S, MINUTE]),
    )
    publish(url, ("webhooks.github", b"push"))
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: WEBHOOKS
        spec:
          subjects: ["webhooks.>"]
          retention: workqueue
        ---
        kind: Consumer
        stream: WEBHOOKS
        name: deliver
        spec:
          ack_policy: explicit
          filter_subject: webhooks.>
          max_deliver: 5
          backoff: [1s, 10s, 1m]
        """,
    )
    adopt_without_changes(url, directory)


# --- (i): sources ---------------------------------------------------------------------------------


def test_go_stream_with_sources_plans_clean(nats_server, tmp_path, request):
    url = nats_server.url
    create_stream(url, go_stream("ORDERS_EU", subjects=["orders.eu.>"]))
    create_stream(url, go_stream("ORDERS_US", subjects=["orders.us.>"]))
    create_stream(url, go_stream("ORDERS_ALL", sources=[{"name": "ORDERS_EU"}, {"name": "ORDERS_US"}]))
    publish(url, ("orders.eu.created", b"1"), ("orders.us.created", b"2"), ("orders.us.paid", b"3"))
    wait_for_messages(url, "ORDERS_ALL", 3)
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: ORDERS_EU
        spec:
          subjects: ["orders.eu.>"]
        ---
        kind: Stream
        name: ORDERS_US
        spec:
          subjects: ["orders.us.>"]
        ---
        kind: Stream
        name: ORDERS_ALL
        spec:
          sources:
            - name: ORDERS_EU
            - name: ORDERS_US
        """,
    )
    adopt_without_changes(url, directory)


# --- max_age below the default duplicate window ---------------------------------------------------


def test_max_age_below_duplicate_window_applies_and_plans_clean(nats_server, tmp_path):
    """A naive pedantic create would be refused (window 2m > max_age); the tool sends window = max_age."""
    url = nats_server.url
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: HEARTBEATS
        spec:
          subjects: ["heartbeats.>"]
          max_age: 30s
        ---
        kind: ObjectStore
        name: scratch
        spec: {ttl: 30s}
        """,
    )
    code, out = plan(url, directory)
    assert code == 2, out
    result = run_cli("apply", str(directory), url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    for stream in ("HEARTBEATS", "OBJ_scratch"):
        config = request(url, f"$JS.API.STREAM.INFO.{stream}")["config"]
        assert (config["max_age"], config["duplicate_window"]) == (30 * S, 30 * S), config
        assert config["metadata"][MARKER] == SET
    assert_plan_clean(url, directory, adopted=True)


def test_go_stream_with_short_max_age_plans_clean(nats_server, tmp_path):
    """nats.go sends no duplicate_window (omitempty); the server caps it at max_age. Adopting it under
    pedantic mode must send the window itself."""
    url = nats_server.url
    create_stream(url, go_stream("PRESENCE", subjects=["presence.>"], max_age=30 * S))
    create_stream(url, go_object_store("thumbnails") | {"max_age": 30 * S})
    publish(url, ("presence.user.7", b"online"))
    directory = manifests(
        tmp_path,
        """
        kind: Stream
        name: PRESENCE
        spec:
          subjects: ["presence.>"]
          max_age: 30s
        ---
        kind: ObjectStore
        name: thumbnails
        spec: {ttl: 30s}
        """,
    )
    adopt_without_changes(url, directory)
