"""Version compatibility on a real server, through the real CLI, on every supported nats-server version.

1. Every field: manifests that together use every stream, consumer, KV and object-store field the running
   server supports (tests/e2e/manifests_all_fields/ plus the newer fields generated per version here)
   apply without drift and plan clean; so do the repo's manifests/ and an `export` of all of it.
2. The immutability table of reconciler/versions.py, proved against the server: each change the server
   refuses in place plans as `replace` (with `forces_replace` on the field) and the in-place update it
   stands for really is refused with the err_code of IMMUTABILITY.md; each mutable change plans as
   `update`, applies and plans clean.
3. A field newer than the server is an error at file:line naming the field and both versions, and
   nothing is sent.

Run on one version: NATS_SERVER_VERSION=2.10.25 pytest tests/e2e/test_compat.py
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.devserver import LocalServer
from reconciler.versions import (
    CONSUMER_FIELDS_SINCE,
    STREAM_FIELDS_SINCE,
    STREAM_FIELDS_UNTIL,
    STREAM_NESTED_SINCE,
    VALUES_SINCE,
    Version,
    parse_version,
    show,
)
from tests.conftest import REFERENCE
from tests.helpers import request as api_request
from tests.helpers import run_cli, server_snapshot, stream_config, stream_names

pytestmark = [pytest.mark.e2e, pytest.mark.compat]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALL_FIELDS = HERE / "manifests_all_fields"
CORE_FILES = ("10-streams.yaml", "20-buckets.yaml", "30-consumers.yaml")
SCHEMAS = ROOT / "schemas"
BEHAVIOUR = REFERENCE / "server-behaviour"
DRIFT = "did not take these fields as asked"

V2_11, V2_12, V2_14 = (2, 11, 0), (2, 12, 0), (2, 14, 0)


# --- helpers -------------------------------------------------------------------------------------


def version_of(server: LocalServer) -> Version:
    return parse_version(server.version)


def apply_ok(url: str, *paths: Path | str, extra: tuple[str, ...] = ()) -> str:
    result = run_cli("apply", *map(str, paths), *extra, url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert DRIFT not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def plan_clean(url: str, *paths: Path | str) -> None:
    result = run_cli("plan", *map(str, paths), "--detailed-exitcode", url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in result.stdout, result.stdout


def plan_json(url: str, *paths: Path | str) -> dict[str, Any]:
    result = run_cli("plan", *map(str, paths), "-o", "json", url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def dump(path: Path, documents: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True))
    return path


def stream(name: str, **spec: Any) -> dict:
    return {"kind": "Stream", "name": name, "spec": spec}


def consumer(stream_name: str, name: str, **spec: Any) -> dict:
    return {"kind": "Consumer", "stream": stream_name, "name": name, "spec": spec}


def kv(name: str, **spec: Any) -> dict:
    return {"kind": "KeyValue", "name": name, "spec": spec}


# --- 1. every field, every version ------------------------------------------------------------------


def versioned_documents(version: Version) -> list[dict]:
    """The fields newer than 2.10, each where versions.py says the server knows it."""

    def stream_knows(*fields: str) -> bool:
        return all(
            version >= STREAM_FIELDS_SINCE.get(f, STREAM_NESTED_SINCE.get(f, (0, 0, 0))) for f in fields
        )

    def consumer_knows(*fields: str) -> bool:
        return all(version >= CONSUMER_FIELDS_SINCE[f] for f in fields)

    limited = {"ack_policy": "explicit", "max_ack_pending": 100, "inactive_threshold": "1h"}  # ALL_ORIGIN
    docs: list[dict] = []
    if stream_knows("allow_msg_ttl", "subject_delete_marker_ttl"):
        docs.append(
            stream(
                "ALL_TTL",
                subjects=["ttl.>"],
                allow_msg_ttl=True,
                subject_delete_marker_ttl="5m",
                allow_rollup_hdrs=True,
            )
        )
        docs.append(kv("kv_markers", history=3, limit_marker_ttl="10m"))
    if consumer_knows("priority_groups", "priority_policy", "priority_timeout"):
        docs.append(
            consumer(
                "ALL_ORIGIN",
                "pull_overflow",
                **limited,
                priority_groups=["g1", "g2"],
                priority_policy="overflow",
                filter_subject="origin.f.>",
            )
        )
        docs.append(
            consumer(
                "ALL_ORIGIN",
                "pull_pinned",
                **limited,
                priority_groups=["jobs"],
                priority_policy="pinned_client",
                priority_timeout="2m",
            )
        )
        if version >= VALUES_SINCE[("consumer", "priority_policy", "prioritized")]:
            docs.append(
                consumer(
                    "ALL_ORIGIN",
                    "pull_prioritized",
                    **limited,
                    priority_groups=["p"],
                    priority_policy="prioritized",
                )
            )
    if consumer_knows("pause_until"):
        docs.append(consumer("ALL_ORIGIN", "pull_paused", **limited, pause_until="2099-01-01T00:00:00Z"))
    if stream_knows("allow_msg_counter"):
        docs.append(stream("ALL_COUNTER", subjects=["counter.>"], allow_msg_counter=True, allow_direct=True))
    if stream_knows("allow_msg_schedules", "allow_msg_ttl", "allow_atomic", "persist_mode"):
        docs.append(
            stream(
                "ALL_SCHEDULES",
                subjects=["schedules.>"],
                allow_msg_schedules=True,
                allow_msg_ttl=True,
                allow_rollup_hdrs=True,  # schedules need roll-ups (10052 without)
                allow_atomic=True,
                persist_mode="default",
            )
        )
    if stream_knows("persist_mode"):
        async_spec: dict[str, Any] = {"subjects": ["async.>"], "persist_mode": "async"}
        if stream_knows("allow_batched"):
            async_spec["allow_batched"] = True  # async persistence refuses allow_atomic, not batches
        docs.append(stream("ALL_ASYNC", **async_spec))
    if stream_knows("sources.*.consumer"):
        source = {
            "name": "ALL_ORIGIN",
            "consumer": {"name": "durable_source", "deliver_subject": "deliver.ds"},
        }
        docs.append(stream("ALL_DURABLE_SOURCE", sources=[source]))  # no filter with a consumer (10215)
    if consumer_knows("sourcing"):
        docs.append(
            consumer("ALL_ORIGIN", "sourcing_pull", **limited, sourcing=True, filter_subject="origin.h.>")
        )
    return docs


def all_fields_dir(tmp_path: Path, version: Version) -> Path:
    target = tmp_path / "all_fields"
    target.mkdir(parents=True)
    for name in CORE_FILES:
        shutil.copy(ALL_FIELDS / name, target / name)
    dump(target / "50-versioned.yaml", versioned_documents(version))
    return target


def load_documents(directory: Path) -> list[dict]:
    return [d for path in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def schema_fields(name: str) -> set[str]:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    props = schema["properties"]
    if "spec" in props:
        props = props["spec"].get("properties", props)
    return set(props)


def _definition(name: str) -> set[str]:
    definitions = json.loads((SCHEMAS / "definitions.json").read_text())["definitions"]
    return set(definitions[name]["properties"])


# Fields of the schemas that no manifest of the set can use, each with the reason.
NOT_DECLARABLE = {
    "stream": {
        "name": "implied by the manifest name",
        # 10052 on create; sealing by a manifest update: test_sealing_a_stream_through_its_manifest
        "sealed": "a stream cannot be created sealed",
        # server-managed, never compared; mirrors of direct-get origins: test_mirror_of_a_direct_get_origin
        "mirror_direct": "server-managed",
    },
    "consumer": {
        "name": "implied by the manifest name",
        "durable_name": "implied by the manifest name",
        "direct": "direct consumers must be ephemeral; manifests declare durables",
    },
    "stream_source": {},
    "placement": {"preferred": "refused when a stream is created"},
}


# Enum values no manifest of the set uses, each with the reason.
UNUSED_VALUES = {
    ("stream", "compression", "none"): "the default",
    ("stream", "persist_mode", ""): "the default, the same as 'default'",
    ("consumer", "priority_policy", "none"): "the default",
    ("consumer", "ack_policy", "flow_control"): "test_ack_policy_flow_control_consumer (a product bug)",
}


def schema_enums(name: str) -> dict[str, list]:
    definitions = json.loads((SCHEMAS / "definitions.json").read_text())["definitions"]
    out = {}
    for key, prop in json.loads((SCHEMAS / f"{name}.json").read_text())["properties"].items():
        values = prop.get("enum") or definitions.get(prop.get("$ref", "").split("/")[-1], {}).get("enum")
        if values:
            out[key] = values
    return out


def _too_new(table: dict[str, Version], field: str, version: Version) -> bool:
    return field in table and version < table[field]


def test_the_all_fields_set_uses_every_field_the_server_supports(nats_server, tmp_path):
    """The manifests below really are 'every field': checked against the project's own schemas."""
    version = version_of(nats_server)
    docs = load_documents(all_fields_dir(tmp_path, version))
    docs += list(yaml.safe_load_all((ALL_FIELDS / "40-direct-mirrors.yaml").read_text()))
    used: dict[str, set[str]] = {k: set() for k in ("Stream", "Consumer", "KeyValue", "ObjectStore")}
    nested: dict[str, set[str]] = {"stream_source": set(), "placement": set(), "republish": set()}
    nested.update({"subject_transform": set(), "consumer_limits": set()})
    for doc in docs:
        spec = doc.get("spec") or {}
        used[doc["kind"]] |= set(spec)
        for source in [*(spec.get("sources") or []), *([spec["mirror"]] if spec.get("mirror") else [])]:
            nested["stream_source"] |= set(source)
            for transform in source.get("subject_transforms") or []:
                nested["subject_transform"] |= set(transform)
        for key in ("placement", "republish", "subject_transform", "consumer_limits"):
            if isinstance(spec.get(key), dict):
                nested[key] |= set(spec[key])
    stream_fields = {
        f
        for f in schema_fields("stream_configuration")
        if not _too_new(STREAM_FIELDS_SINCE, f, version)
        and not (f in STREAM_FIELDS_UNTIL and version >= STREAM_FIELDS_UNTIL[f])
    }
    consumer_fields = {
        f for f in schema_fields("consumer_configuration") if not _too_new(CONSUMER_FIELDS_SINCE, f, version)
    }
    kv_fields = schema_fields("keyvalue_manifest") - ({"limit_marker_ttl"} if version < V2_11 else set())
    source_fields = {
        f
        for f in _definition("stream_source")
        if not _too_new(STREAM_NESTED_SINCE, f"sources.*.{f}", version)
    }
    expected = {
        "Stream": stream_fields - set(NOT_DECLARABLE["stream"]),
        "Consumer": consumer_fields - set(NOT_DECLARABLE["consumer"]),
        "KeyValue": kv_fields,
        "ObjectStore": schema_fields("objectstore_manifest"),
    }
    for kind, fields in expected.items():
        assert fields - used[kind] == set(), f"{kind} fields not used by any manifest"
    for name in ("placement", "republish", "subject_transform", "consumer_limits"):
        missing = _definition(name) - set(NOT_DECLARABLE.get(name, {})) - nested[name]
        assert missing == set(), f"{name} fields not used by any manifest"
    assert source_fields - nested["stream_source"] == set(), "stream source fields not used"
    enum_fields = {"stream": STREAM_FIELDS_SINCE, "consumer": CONSUMER_FIELDS_SINCE}
    for kind, schema in (("stream", "stream_configuration"), ("consumer", "consumer_configuration")):
        for key, values in schema_enums(schema).items():
            if _too_new(enum_fields[kind], key, version):
                continue
            seen = {(d["spec"] or {}).get(key) for d in docs if d["kind"] == kind.capitalize()}
            missing = {
                v
                for v in values
                if v not in seen
                and (kind, key, v) not in UNUSED_VALUES
                and version >= VALUES_SINCE.get((kind, key, v), (0, 0, 0))
            }
            assert missing == set(), f"{kind} {key} values not used by any manifest"
    # nothing newer than the server slipped in
    for field_name in used["Stream"]:
        assert not _too_new(STREAM_FIELDS_SINCE, field_name, version), field_name
    for field_name in used["Consumer"]:
        assert not _too_new(CONSUMER_FIELDS_SINCE, field_name, version), field_name


def test_every_field_applies_without_drift_and_plans_clean(nats_server, tmp_path):
    url, version = nats_server.url, version_of(nats_server)
    manifests = all_fields_dir(tmp_path, version)
    apply_ok(url, manifests)
    plan_clean(url, manifests)

    # What the server stores is what the manifests say (spot checks of fields that are easy to lose).
    origin = stream_config(url, "ALL_ORIGIN")
    assert origin["compression"] == "s2" and origin["first_seq"] == 1000
    assert origin["placement"]["cluster"] == "east"
    assert sorted(origin["placement"]["tags"]) == ["az1", "ssd"]
    assert origin["consumer_limits"] == {"inactive_threshold": 3600 * 10**9, "max_ack_pending": 500}
    assert origin["metadata"]["team"] == "jobs"
    assert stream_config(url, "ALL_WQ")["duplicate_window"] == 90 * 10**9
    assert stream_config(url, "OBJ_obj_mem")["duplicate_window"] == 90 * 10**9
    if version >= V2_11:
        assert stream_config(url, "KV_kv_markers")["subject_delete_marker_ttl"] == 600 * 10**9
    if version >= V2_12:
        assert stream_config(url, "ALL_COUNTER")["allow_msg_counter"] is True
        assert stream_config(url, "ALL_ASYNC")["persist_mode"] == "async"
    if version >= V2_14:
        assert stream_config(url, "ALL_ASYNC")["allow_batched"] is True


def test_repo_manifests_apply_and_plan_clean(nats_server, tmp_path):
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)
    apply_ok(nats_server.url, manifests)
    plan_clean(nats_server.url, manifests)


def test_export_of_everything_plans_clean(nats_server, tmp_path):
    url, version = nats_server.url, version_of(nats_server)
    manifests = all_fields_dir(tmp_path, version)
    shutil.copytree(ROOT / "manifests", manifests / "repo")
    apply_ok(url, manifests)
    target = export(url, tmp_path)
    plan_clean(url, target)
    plan_clean(url, manifests)  # the exported set says what the declared one says
    exported = {(d["kind"], d.get("stream"), d["name"]) for d in load_documents(target.parent)}
    declared = [*load_documents(manifests), *load_documents(manifests / "repo")]
    # every declared resource is exported under its own kind (sourced buckets: see the test below)
    expected = {
        (d["kind"], d.get("stream"), d["name"])
        for d in declared
        if not (d["kind"] == "KeyValue" and (d["spec"].get("sources") or d["spec"].get("mirror")))
    }
    assert expected - exported == set()


def export(url: str, tmp_path: Path) -> Path:
    result = run_cli("export", url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    target = tmp_path / "exported" / "live.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(result.stdout)
    return target


def test_export_writes_a_sourced_bucket_as_a_keyvalue(nats_server, tmp_path, request):
    url = nats_server.url
    path = dump(tmp_path / "m" / "kv.yaml", [kv("kv_one"), kv("kv_two", sources=[{"name": "kv_one"}])])
    apply_ok(url, path)
    docs = load_documents(export(url, tmp_path).parent)
    assert {(d["kind"], d["name"]) for d in docs} == {("KeyValue", "kv_one"), ("KeyValue", "kv_two")}


def test_export_leaves_out_the_servers_own_source_consumers(nats_server, tmp_path, request):
    """2.14+ source an interest stream through a durable consumer of its own (sourcing: true)."""
    url = nats_server.url
    path = dump(
        tmp_path / "m" / "sourcing.yaml",
        [
            stream("EVENTS", subjects=["events.>"], retention="interest"),
            stream("COPY", sources=[{"name": "EVENTS"}]),
        ],
    )
    apply_ok(url, path)
    docs = load_documents(export(url, tmp_path).parent)
    assert {(d["kind"], d["name"]) for d in docs} == {("Stream", "EVENTS"), ("Stream", "COPY")}


# --- server behaviour the all-fields set has to step around (each one a product bug) -------------


def test_mirror_of_a_direct_get_origin(nats_server, request):
    """A mirror of a stream with allow_direct, e.g. any KV mirror: 2.11+ pedantic wants mirror_direct."""
    path = ALL_FIELDS / "40-direct-mirrors.yaml"
    apply_ok(nats_server.url, path)
    plan_clean(nats_server.url, path)
    assert stream_config(nats_server.url, "KV_kv_mirror")["mirror"]["name"] == "KV_kv_direct_origin"


def test_ack_none_consumer_on_a_stream_with_consumer_limits(nats_server, tmp_path, request):
    """The server copies consumer_limits.max_ack_pending into every consumer, ack_policy none too, and then
    refuses it (10082; 2.11+ pedantic refuses leaving it out): no such consumer can exist, so it is
    refused offline, with its location."""
    path = dump(
        tmp_path / "limited.yaml",
        [
            stream("LIMITED", subjects=["limited.>"], consumer_limits={"max_ack_pending": 100}),
            consumer("LIMITED", "fire_and_forget", ack_policy="none", deliver_subject="deliver.faf"),
        ],
    )
    before = server_snapshot(nats_server.url)
    result = run_cli("apply", str(path), url=nats_server.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:" in result.stderr and "consumer_limits.max_ack_pending" in result.stderr
    assert "Nothing was sent to the server." in result.stderr
    assert server_snapshot(nats_server.url) == before


def test_sealing_a_stream_through_its_manifest(nats_server, tmp_path, request):
    """Sealing sets discard new, deny_delete, deny_purge, no roll-ups and max_age 0 on the server."""
    url = nats_server.url
    spec = {"subjects": ["sealed.>"], "max_age": "1h", "allow_rollup_hdrs": True}
    path = dump(tmp_path / "sealed.yaml", [stream("TO_SEAL", **spec)])
    apply_ok(url, path)
    dump(path, [stream("TO_SEAL", **spec, sealed=True)])
    doc = plan_json(url, path)
    (change,) = doc["changes"]
    assert change["action"] == "update", change
    assert ("sealed", False, True) in [(d["path"], d["before"], d["after"]) for d in change["diffs"]]
    apply_ok(url, path)
    assert stream_config(url, "TO_SEAL")["sealed"] is True
    plan_clean(url, path)


def test_stream_without_subjects_takes_its_name(nats_server, tmp_path, request):
    """A stream with neither subjects nor sources nor mirror listens on its own name (server default)."""
    path = dump(tmp_path / "named.yaml", [stream("NAMED", max_age="1h")])
    apply_ok(nats_server.url, path)
    assert stream_config(nats_server.url, "NAMED")["subjects"] == ["NAMED"]
    plan_clean(nats_server.url, path)


def _offline_error_or_clean(url: str, path: Path, stream_name: str, words: tuple[str, ...]) -> None:
    """Either the tool refuses the manifest before sending anything, or it applies and plans clean."""
    before = server_snapshot(url)
    result = run_cli("apply", str(path), url=url)
    if result.returncode == 0:
        assert DRIFT not in result.stdout + result.stderr, result.stdout + result.stderr
        plan_clean(url, path)
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Nothing was sent to the server" in result.stderr, result.stderr
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", result.stderr), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert server_snapshot(url) == before
    assert stream_name not in stream_names(url)


def test_message_schedules_without_rollups(nats_server, tmp_path, request):
    version = version_of(nats_server)
    if version < V2_12:
        pytest.skip("allow_msg_schedules needs nats-server 2.12")
    path = dump(
        tmp_path / "schedules.yaml", [stream("SCHEDULED", subjects=["sched.>"], allow_msg_schedules=True)]
    )
    _offline_error_or_clean(nats_server.url, path, "SCHEDULED", ("allow_rollup_hdrs",))


@pytest.mark.parametrize(
    "spec",
    [
        {"flow_control": True, "idle_heartbeat": "1s"},
        {},
    ],
    ids=["declared-heartbeat", "server-defaults"],
)
def test_ack_policy_flow_control_consumer(nats_server, tmp_path, request, spec):
    """2.14+: ack_policy flow_control is push only, sets flow_control + a 1s heartbeat, and no ack_wait."""
    version = version_of(nats_server)
    if version < V2_14:
        pytest.skip("ack_policy flow_control needs nats-server 2.14")
    path = dump(
        tmp_path / "flow.yaml",
        [
            stream("FLOWS", subjects=["flows.>"]),
            consumer(
                "FLOWS", "acked_by_flow", ack_policy="flow_control", deliver_subject="deliver.flow", **spec
            ),
        ],
    )
    _offline_error_or_clean(nats_server.url, path, "FLOWS", ("flow_control",))


# --- 2. the immutability table, proved against the server ---------------------------------------

DELETE = object()  # in Case.raw: leave the field out of the update


@dataclass(frozen=True)
class Refusal:
    err_code: int
    text: str  # a fragment of the server's description
    ref: str | None = None  # the case's name in <version>/immutability_raw.json


@dataclass(frozen=True)
class Case:
    """One change of one field, applied to its own stream (or consumer of IM_CONSUMERS)."""

    id: str
    kind: str  # stream | consumer
    base: dict
    changed: dict
    key: str  # the field whose plan diff must (or must not) force the replace
    raw: dict = field(default_factory=dict)  # the in-place update: live config with these changes
    refused: Callable[[Version], Refusal | None] = lambda v: None  # None: mutable on that version
    since: Version = (2, 10, 0)
    pre: dict | None = None  # applied between base and changed (sealing)

    @property
    def name(self) -> str:
        return self.id.upper().replace("-", "_")[:40] if self.kind == "stream" else self.id.replace("-", "_")

    @property
    def stream_name(self) -> str:
        return f"IM_{self.name}" if self.kind == "stream" else "IM_CONSUMERS"

    @property
    def address(self) -> str:
        return f"stream/{self.stream_name}" if self.kind == "stream" else f"consumer/IM_CONSUMERS/{self.name}"

    def document(self, spec: dict) -> dict:
        if self.kind == "stream":
            subjects = (
                {"subjects": [f"im.{self.id}.>"]} if "mirror" not in spec and "subjects" not in spec else {}
            )
            return stream(self.stream_name, **{**subjects, **spec})
        return consumer("IM_CONSUMERS", self.name, **spec)


def always(err_code: int, text: str, ref: str | None = None) -> Callable[[Version], Refusal | None]:
    return lambda v: Refusal(err_code, text, ref)


def before(version: Version, err_code: int, text: str, ref: str | None = None):
    """Refused before `version`, allowed from it on."""
    return lambda v: Refusal(err_code, text, ref) if v < version else None


def from_(version: Version, err_code: int, text: str, ref: str | None = None):
    """Allowed before `version`, refused from it on."""
    return lambda v: Refusal(err_code, text, ref) if v >= version else None


SEC = 10**9
UPDATE_REFUSED = 10052
T1, T2 = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"
PULL: dict[str, Any] = {"ack_policy": "explicit"}
PUSH: dict[str, Any] = {"ack_policy": "explicit", "deliver_subject": "deliver.im.push"}

STREAM_CASES = [
    # refused in place
    Case(
        "storage-file-to-memory",
        "stream",
        {},
        {"storage": "memory"},
        "storage",
        {"storage": "memory"},
        always(UPDATE_REFUSED, "can not change storage type", "storage file->memory"),
    ),
    Case(
        "storage-memory-to-file",
        "stream",
        {"storage": "memory"},
        {"storage": "file"},
        "storage",
        {"storage": "file"},
        always(UPDATE_REFUSED, "can not change storage type", "storage memory->file"),
    ),
    Case(
        "retention-limits-to-workqueue",
        "stream",
        {},
        {"retention": "workqueue"},
        "retention",
        {"retention": "workqueue"},
        always(UPDATE_REFUSED, "retention policy to/from workqueue", "retention limits->workqueue"),
    ),
    Case(
        "retention-workqueue-to-limits",
        "stream",
        {"retention": "workqueue"},
        {"retention": "limits"},
        "retention",
        {"retention": "limits"},
        always(UPDATE_REFUSED, "retention policy to/from workqueue", "retention workqueue->limits"),
    ),
    Case(
        "retention-workqueue-to-interest",
        "stream",
        {"retention": "workqueue"},
        {"retention": "interest"},
        "retention",
        {"retention": "interest"},
        always(UPDATE_REFUSED, "retention policy to/from workqueue", "retention workqueue->interest"),
    ),
    Case(
        "mirror-add",
        "stream",
        {},
        {"mirror": {"name": "IM_ORIGIN"}},
        "mirror",
        {"mirror": {"name": "IM_ORIGIN"}, "subjects": DELETE},
        always(10055, "mirror configuration can not be updated", "mirror add to normal stream"),
    ),
    Case(
        "mirror-change",
        "stream",
        {"mirror": {"name": "IM_ORIGIN"}},
        {"mirror": {"name": "IM_ORIGIN2"}},
        "mirror",
        {"mirror": {"name": "IM_ORIGIN2"}},
        always(10055, "mirror configuration can not be updated", "mirror change source name"),
    ),
    Case(
        "mirror-remove",
        "stream",
        {"mirror": {"name": "IM_ORIGIN"}},
        {"subjects": ["im.mirror-remove.>"]},
        "mirror",
        {"mirror": DELETE, "subjects": ["im.mirror-remove.>"]},
        before(V2_12, 10055, "mirror configuration can not be updated", "mirror remove from mirror stream"),
    ),
    Case(
        "max-consumers",
        "stream",
        {},
        {"max_consumers": 10},
        "max_consumers",
        {"max_consumers": 10},
        before(V2_12, UPDATE_REFUSED, "can not change MaxConsumers", "max_consumers -1->10"),
    ),
    Case(
        "deny-delete-off",
        "stream",
        {"deny_delete": True},
        {"deny_delete": False},
        "deny_delete",
        {"deny_delete": False},
        always(UPDATE_REFUSED, "can not cancel deny message deletes", "deny_delete true->false"),
    ),
    Case(
        "deny-purge-off",
        "stream",
        {"deny_purge": True},
        {"deny_purge": False},
        "deny_purge",
        {"deny_purge": False},
        always(UPDATE_REFUSED, "can not cancel deny purge", "deny_purge true->false"),
    ),
    Case(
        "unseal",
        "stream",
        {},
        {},
        "sealed",
        {"sealed": False},
        always(UPDATE_REFUSED, "can not unseal a sealed stream", "sealed true->false (after sealing)"),
        pre={"sealed": True},
    ),
    Case(
        "msg-ttl-off",
        "stream",
        {"allow_msg_ttl": True},
        {},
        "allow_msg_ttl",
        {"allow_msg_ttl": False},
        always(UPDATE_REFUSED, "message TTL status can not be disabled", "allow_msg_ttl true->false"),
        since=V2_11,
    ),
    Case(
        "msg-schedules-off",
        "stream",
        {"allow_msg_schedules": True, "allow_rollup_hdrs": True},
        {"allow_rollup_hdrs": True},
        "allow_msg_schedules",
        {"allow_msg_schedules": False},
        always(UPDATE_REFUSED, "message schedules can not be disabled", "allow_msg_schedules true->false"),
        since=V2_12,
    ),
    Case(
        "msg-counter-on",
        "stream",
        {},
        {"allow_msg_counter": True},
        "allow_msg_counter",
        {"allow_msg_counter": True},
        always(UPDATE_REFUSED, "can not change message counter setting", "allow_msg_counter false->true"),
        since=V2_12,
    ),
    Case(
        "msg-counter-off",
        "stream",
        {"allow_msg_counter": True},
        {},
        "allow_msg_counter",
        {"allow_msg_counter": False},
        always(UPDATE_REFUSED, "can not change message counter setting", "allow_msg_counter true->false"),
        since=V2_12,
    ),
    Case(
        "persist-mode-to-async",
        "stream",
        {},
        {"persist_mode": "async"},
        "persist_mode",
        {"persist_mode": "async"},
        always(UPDATE_REFUSED, "can not change persist mode", "persist_mode default->async"),
        since=V2_12,
    ),
    Case(
        "persist-mode-to-default",
        "stream",
        {"persist_mode": "async"},
        {"persist_mode": "default"},
        "persist_mode",
        {"persist_mode": DELETE},
        always(UPDATE_REFUSED, "can not change persist mode", "persist_mode async->default"),
        since=V2_12,
    ),
    # changed in place
    Case("subjects", "stream", {}, {"subjects": ["im.subjects.>", "im.more.>"]}, "subjects"),
    Case("max-age", "stream", {"max_age": "1h"}, {"max_age": "2h"}, "max_age"),
    Case("max-msgs", "stream", {}, {"max_msgs": 1000}, "max_msgs"),
    Case("max-bytes", "stream", {}, {"max_bytes": "1GiB"}, "max_bytes"),
    Case("duplicate-window", "stream", {}, {"duplicate_window": "10s"}, "duplicate_window"),
    Case("discard", "stream", {}, {"discard": "new"}, "discard"),
    Case("rollups-on", "stream", {}, {"allow_rollup_hdrs": True}, "allow_rollup_hdrs"),
    Case("rollups-off", "stream", {"allow_rollup_hdrs": True}, {}, "allow_rollup_hdrs"),
    Case("deny-delete-on", "stream", {}, {"deny_delete": True}, "deny_delete"),
    Case("deny-purge-on", "stream", {}, {"deny_purge": True}, "deny_purge"),
    Case("compression", "stream", {}, {"compression": "s2"}, "compression"),
    Case("allow-direct", "stream", {}, {"allow_direct": True}, "allow_direct"),
    Case("description", "stream", {}, {"description": "now described"}, "description"),
    Case("metadata", "stream", {"metadata": {"a": "1"}}, {"metadata": {"a": "2", "b": "3"}}, "metadata"),
    Case("retention-limits-to-interest", "stream", {}, {"retention": "interest"}, "retention"),
    Case(
        "republish",
        "stream",
        {},
        {"republish": {"src": "im.republish.>", "dest": "out.republish.>"}},
        "republish",
    ),
    Case("msg-ttl-on", "stream", {}, {"allow_msg_ttl": True}, "allow_msg_ttl", since=V2_11),
    Case("atomic-on", "stream", {}, {"allow_atomic": True}, "allow_atomic", since=V2_12),
    Case("batched-on", "stream", {}, {"allow_batched": True}, "allow_batched", since=V2_14),
]

CONSUMER_REFUSED = 10012
CONSUMER_CASES = [
    # refused in place
    Case(
        "deliver_policy",
        "consumer",
        PULL,
        {**PULL, "deliver_policy": "last"},
        "deliver_policy",
        {"deliver_policy": "last"},
        always(CONSUMER_REFUSED, "deliver policy can not be updated", "deliver_policy all->last"),
    ),
    Case(
        "opt_start_seq",
        "consumer",
        {**PULL, "deliver_policy": "by_start_sequence", "opt_start_seq": 1},
        {**PULL, "deliver_policy": "by_start_sequence", "opt_start_seq": 5},
        "opt_start_seq",
        {"opt_start_seq": 5},
        always(CONSUMER_REFUSED, "start sequence can not be updated", "opt_start_seq 1->5"),
    ),
    Case(
        "opt_start_time",
        "consumer",
        {**PULL, "deliver_policy": "by_start_time", "opt_start_time": T1},
        {**PULL, "deliver_policy": "by_start_time", "opt_start_time": T2},
        "opt_start_time",
        {"opt_start_time": T2},
        always(CONSUMER_REFUSED, "start time can not be updated", "opt_start_time change"),
    ),
    Case(
        "ack_policy_to_all",
        "consumer",
        PULL,
        {"ack_policy": "all"},
        "ack_policy",
        {"ack_policy": "all"},
        always(CONSUMER_REFUSED, "ack policy can not be updated", "ack_policy explicit->all"),
    ),
    Case(
        "ack_policy_to_none",
        "consumer",
        PULL,
        {"ack_policy": "none"},
        "ack_policy",
        {"ack_policy": "none"},
        always(CONSUMER_REFUSED, "ack policy can not be updated", "ack_policy explicit->none"),
    ),
    Case(
        "replay_policy",
        "consumer",
        PULL,
        {**PULL, "replay_policy": "original"},
        "replay_policy",
        {"replay_policy": "original"},
        always(CONSUMER_REFUSED, "replay policy can not be updated", "replay_policy instant->original"),
    ),
    Case(
        "max_waiting",
        "consumer",
        PULL,
        {**PULL, "max_waiting": 100},
        "max_waiting",
        {"max_waiting": 100},
        always(CONSUMER_REFUSED, "max waiting can not be updated", "max_waiting 512->100"),
    ),
    Case(
        "idle_heartbeat",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.hb"},
        {**PUSH, "deliver_subject": "deliver.im.hb", "idle_heartbeat": "5s"},
        "idle_heartbeat",
        {"idle_heartbeat": 5 * SEC},
        always(CONSUMER_REFUSED, "heart beats can not be updated", "idle_heartbeat (push) set"),
    ),
    Case(
        "flow_control",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.fc", "idle_heartbeat": "5s"},
        {**PUSH, "deliver_subject": "deliver.im.fc", "idle_heartbeat": "5s", "flow_control": True},
        "flow_control",
        {"flow_control": True},
        always(CONSUMER_REFUSED, "flow control can not be updated"),
    ),
    Case(
        "pull_to_push",
        "consumer",
        PULL,
        {**PUSH, "deliver_subject": "deliver.im.p2p"},
        "deliver_subject",
        {"deliver_subject": "deliver.im.p2p", "max_waiting": DELETE},
        lambda v: Refusal(
            CONSUMER_REFUSED,
            "can not update pull consumer to push based" if v >= V2_11 else "max waiting can not be updated",
            "deliver_subject pull->push",
        ),
    ),
    Case(
        "push_to_pull",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.p2q"},
        PULL,
        "deliver_subject",
        {"deliver_subject": DELETE},
        lambda v: Refusal(
            CONSUMER_REFUSED,
            "can not update push consumer to pull based" if v >= V2_11 else "max waiting can not be updated",
            "deliver_subject push->pull",
        ),
    ),
    Case(
        "mem_storage",
        "consumer",
        PULL,
        {**PULL, "mem_storage": True},
        "mem_storage",
        {"mem_storage": True},
        from_(V2_14, CONSUMER_REFUSED, "storage type can not be updated", "mem_storage false->true"),
    ),
    # changed in place
    Case("max_ack_pending", "consumer", PULL, {**PULL, "max_ack_pending": 50}, "max_ack_pending"),
    Case("ack_wait", "consumer", PULL, {**PULL, "ack_wait": "10s"}, "ack_wait"),
    Case("max_deliver", "consumer", PULL, {**PULL, "max_deliver": 5}, "max_deliver"),
    Case(
        "filter_subject",
        "consumer",
        {**PULL, "filter_subject": "imc.a"},
        {**PULL, "filter_subject": "imc.b"},
        "filter_subject",
    ),
    Case(
        "filter_subjects",
        "consumer",
        {**PULL, "filter_subject": "imc.a"},
        {**PULL, "filter_subjects": ["imc.b", "imc.c"]},
        "filter_subjects",
    ),
    Case(
        "backoff",
        "consumer",
        {**PULL, "max_deliver": 5},
        {**PULL, "max_deliver": 5, "backoff": ["1s", "2s"]},
        "backoff",
    ),
    Case("headers_only", "consumer", PULL, {**PULL, "headers_only": True}, "headers_only"),
    Case("inactive_threshold", "consumer", PULL, {**PULL, "inactive_threshold": "10m"}, "inactive_threshold"),
    Case("consumer_description", "consumer", PULL, {**PULL, "description": "workers"}, "description"),
    Case("consumer_metadata", "consumer", PULL, {**PULL, "metadata": {"team": "b"}}, "metadata"),
    Case("max_batch", "consumer", PULL, {**PULL, "max_batch": 10}, "max_batch"),
    Case("max_expires", "consumer", PULL, {**PULL, "max_expires": "30s"}, "max_expires"),
    Case("sample_freq", "consumer", PULL, {**PULL, "sample_freq": "10%"}, "sample_freq"),
    Case(
        "rate_limit_bps",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.rate"},
        {**PUSH, "deliver_subject": "deliver.im.rate", "rate_limit_bps": 1000},
        "rate_limit_bps",
    ),
    Case(
        "deliver_group",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.grp"},
        {**PUSH, "deliver_subject": "deliver.im.grp", "deliver_group": "grp"},
        "deliver_group",
    ),
    Case(
        "deliver_subject",
        "consumer",
        {**PUSH, "deliver_subject": "deliver.im.one"},
        {**PUSH, "deliver_subject": "deliver.im.two"},
        "deliver_subject",
    ),
    Case(
        "priority_groups",
        "consumer",
        PULL,
        {**PULL, "priority_groups": ["g"], "priority_policy": "overflow"},
        "priority_groups",
        since=V2_11,
    ),
]
CASES = {c.id: c for c in STREAM_CASES + CONSUMER_CASES}


@dataclass
class Run:
    """What the module fixture saw: one base apply, one plan, raw updates, one converging apply."""

    version: Version
    url: str
    cases: list[Case]
    steps: dict[str, Any] = field(default_factory=dict)  # base / pre / final: CompletedProcess
    planned: dict[str, dict] = field(default_factory=dict)  # address -> plan change (before the apply)
    raw: dict[str, dict] = field(default_factory=dict)  # case id -> server answer to the in-place update
    live_before: dict[str, dict] = field(default_factory=dict)  # case id -> config before the update
    failed: dict[str, str] = field(default_factory=dict)  # case id -> why apply failed for it
    final: dict[str, dict] = field(default_factory=dict)  # address -> plan change after the apply


def _live(url: str, case: Case) -> dict | None:
    subject = (
        f"$JS.API.STREAM.INFO.{case.stream_name}"
        if case.kind == "stream"
        else f"$JS.API.CONSUMER.INFO.IM_CONSUMERS.{case.name}"
    )
    answer = api_request(url, subject)
    return None if "error" in answer else answer["config"]


def _in_place_update(url: str, case: Case, live: dict) -> dict:
    body = json.loads(json.dumps(live))
    for key, value in case.raw.items():
        if value is DELETE:
            body.pop(key, None)
        else:
            body[key] = value
    if case.kind == "stream":
        return api_request(url, f"$JS.API.STREAM.UPDATE.{case.stream_name}", body)
    return api_request(
        url,
        f"$JS.API.CONSUMER.CREATE.IM_CONSUMERS.{case.name}",
        {"stream_name": "IM_CONSUMERS", "config": body, "action": "update"},
    )


def _write_cases(directory: Path, cases: list[Case], spec_of: Callable[[Case], dict]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    dump(
        directory / "00-shared.yaml",
        [
            stream("IM_ORIGIN", subjects=["im.origin.>"]),
            stream("IM_ORIGIN2", subjects=["im.origin2.>"]),
            stream("IM_CONSUMERS", subjects=["imc.>"]),
        ],
    )
    for case in cases:
        dump(directory / f"case-{case.id}.yaml", [case.document(spec_of(case))])


FAILED_STEP = re.compile(r"error: \w+ (\S+) failed: (.*)")


@pytest.fixture(scope="module")
def immutability(server_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    server = LocalServer(server_bin).start()
    try:
        version = version_of(server)
        cases = [c for c in CASES.values() if version >= c.since]
        run = Run(version, server.url, cases)
        work = tmp_path_factory.mktemp("immutability")
        manifests = work / "manifests"
        _write_cases(manifests, cases, lambda c: c.base)
        run.steps["base"] = run_cli("apply", str(manifests), url=server.url)
        staged = [c for c in cases if c.pre is not None]
        if staged:
            _write_cases(manifests, cases, lambda c: {**c.base, **(c.pre or {})})
            run.steps["pre"] = run_cli("apply", str(manifests), url=server.url)
        _write_cases(manifests, cases, lambda c: c.changed)
        planned = run_cli("plan", str(manifests), "-o", "json", url=server.url)
        run.steps["plan"] = planned
        if planned.returncode == 0:
            run.planned = {c["address"]: c for c in json.loads(planned.stdout)["changes"]}
        for case in cases:
            if case.refused(version) is not None and (live := _live(server.url, case)) is not None:
                run.live_before[case.id] = live
                run.raw[case.id] = _in_place_update(server.url, case, live)
        by_address = {c.address: c for c in cases}
        for _ in range(len(cases)):  # a case whose apply fails is recorded and left out, then again
            result = run_cli("apply", str(manifests), "--allow-replace", url=server.url)
            run.steps["final"] = result
            failed = FAILED_STEP.search(result.stderr)
            if result.returncode == 0 or failed is None or failed.group(1) not in by_address:
                break
            case = by_address[failed.group(1)]
            run.failed[case.id] = failed.group(2)
            (manifests / f"case-{case.id}.yaml").unlink()
        final = run_cli("plan", str(manifests), "-o", "json", url=server.url)
        if final.returncode == 0:
            run.final = {c["address"]: c for c in json.loads(final.stdout)["changes"]}
        yield run
    finally:
        server.cleanup()


def _reference(version: Version, ref: str) -> dict | None:
    """The measured result of the same change in shared/reference/server-behaviour, if there is one."""
    path = BEHAVIOUR / show(version) / "immutability_raw.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    for entry in data["stream_updates"] + data["consumer_updates"]:
        if entry["test"] == ref:
            return entry["update"]
    return None


def test_immutability_cases_are_set_up(immutability):
    """The base manifests applied, and the plan of the changed ones ran (everything below needs both)."""
    for step in ("base", "plan"):
        result = immutability.steps[step]
        assert result.returncode == 0, f"{step}: {result.stdout}{result.stderr}"
        assert DRIFT not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("case_id", list(CASES))
def test_change_plans_as_the_server_treats_it(immutability, case_id):
    """(a) plan: replace with forces_replace, or update; (b) the in-place update is refused as measured."""
    run, case = immutability, CASES[case_id]
    if run.version < case.since:
        pytest.skip(f"{case.key} needs nats-server {show(case.since)}")
    refusal = case.refused(run.version)
    change = run.planned.get(case.address)
    assert change is not None, f"{case.address} not in the plan: {run.steps['plan'].stderr}"
    touched = [d for d in change["diffs"] if d["path"] == case.key or d["path"].startswith(case.key + ".")]
    assert touched, change
    if refusal is None:
        # mutable on this version: an update of exactly that, which applies and then plans clean
        assert change["action"] == "update", change
        assert not any(d["forces_replace"] for d in change["diffs"]), change
    else:
        assert change["action"] == "replace", change
        assert all(d["forces_replace"] for d in touched), change
        # ... and the update it stands for really is refused by the server
        answer = run.raw.get(case.id)
        assert answer is not None, f"{case.address} was not on the server before the change"
        error = answer.get("error")
        assert error is not None, f"the server accepted the in-place update: {answer.get('config')}"
        assert error["err_code"] == refusal.err_code, error
        assert refusal.text in error["description"], error
        measured = _reference(run.version, refusal.ref) if refusal.ref else None
        if measured is not None:
            assert measured.get("err_code") == error["err_code"], (measured, error)
    assert case.id not in run.failed, run.failed[case.id]
    after = run.final.get(case.address)
    assert after is not None and after["action"] == "no-op", after


def test_the_unseal_case_was_sealed_through_its_manifest(immutability):
    """The 'unseal' case sealed its stream by a manifest update (sealed: true) before unsealing it."""
    run = immutability
    live = run.live_before.get("unseal")
    assert live is not None and live["sealed"] is True
    assert run.steps["pre"].returncode in (0, 1)  # 1: drift, see test_sealing_a_stream_through_its_manifest


def test_replacing_everything_converges(immutability):
    """One `apply --allow-replace` carries out every replace and update above; then nothing is left."""
    run = immutability
    assert run.failed == {}
    result = run.steps["final"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert DRIFT not in result.stdout + result.stderr, result.stdout + result.stderr
    pending = {a: c["action"] for a, c in run.final.items() if c["action"] != "no-op"}
    assert pending == {}


# --- 3. a field newer than the server -------------------------------------------------------------


@dataclass(frozen=True)
class NewField:
    id: str
    since: Version  # the first server version that knows it
    text: str  # one manifest document; the error must point at the line that starts with `marker`
    shown: str  # how the error names the field
    marker: str
    field_since: Version | None = None  # for a new enum value: the version of the field itself

    def needs(self, version: Version) -> Version:
        return self.field_since if self.field_since and version < self.field_since else self.since


def _stream_text(name: str, lines: str) -> str:
    return f'kind: Stream\nname: {name}\nspec:\n  subjects: ["{name.lower()}.>"]\n{lines}'


def _consumer_text(name: str, lines: str) -> str:
    return f"kind: Consumer\nstream: BASE\nname: {name}\nspec:\n  ack_policy: explicit\n{lines}"


NEW_FIELDS = [
    # the ones the issue names
    NewField(
        "stream-allow_msg_ttl",
        V2_11,
        _stream_text("TTL", "  allow_msg_ttl: true\n"),
        "allow_msg_ttl",
        "  allow_msg_ttl:",
    ),
    NewField(
        "stream-allow_atomic",
        V2_12,
        _stream_text("ATOMIC", "  allow_atomic: true\n"),
        "allow_atomic",
        "  allow_atomic:",
    ),
    NewField(
        "stream-allow_batched",
        V2_14,
        _stream_text("BATCHED", "  allow_batched: true\n"),
        "allow_batched",
        "  allow_batched:",
    ),
    NewField(
        "consumer-priority_groups",
        V2_11,
        _consumer_text("grouped", "  priority_groups: [jobs]\n  priority_policy: overflow\n"),
        "priority_groups",
        "  priority_groups:",
    ),
    NewField(
        "consumer-ack_policy-flow_control",
        V2_14,
        "kind: Consumer\nstream: BASE\nname: flowing\nspec:\n  deliver_subject: deliver.flowing\n"
        "  ack_policy: flow_control\n  flow_control: true\n  idle_heartbeat: 1s\n",
        "ack_policy: flow_control",
        "  ack_policy:",
    ),
    NewField(
        "kv-limit_marker_ttl",
        V2_11,
        "kind: KeyValue\nname: marked\nspec:\n  history: 2\n  limit_marker_ttl: 5m\n",
        "limit_marker_ttl",
        "  limit_marker_ttl:",
    ),
    # and the other fields versions.py knows
    NewField(
        "stream-subject_delete_marker_ttl",
        V2_11,
        _stream_text(
            "MARKERS", "  allow_msg_ttl: true\n  allow_rollup_hdrs: true\n  subject_delete_marker_ttl: 1m\n"
        ),
        "subject_delete_marker_ttl",
        "  subject_delete_marker_ttl:",
    ),
    NewField(
        "stream-allow_msg_counter",
        V2_12,
        _stream_text("COUNTER", "  allow_msg_counter: true\n"),
        "allow_msg_counter",
        "  allow_msg_counter:",
    ),
    NewField(
        "stream-allow_msg_schedules",
        V2_12,
        _stream_text("SCHEDULES", "  allow_rollup_hdrs: true\n  allow_msg_schedules: true\n"),
        "allow_msg_schedules",
        "  allow_msg_schedules:",
    ),
    NewField(
        "stream-persist_mode",
        V2_12,
        _stream_text("PERSIST", "  persist_mode: async\n"),
        "persist_mode",
        "  persist_mode:",
    ),
    NewField(
        "stream-sources-consumer",
        V2_14,
        "kind: Stream\nname: DURABLE_SOURCE\nspec:\n  sources:\n"
        "    - {name: BASE, consumer: {name: src, deliver_subject: deliver.src}}\n",
        "sources.consumer",
        "  sources:",
    ),
    NewField(
        "consumer-pause_until",
        V2_11,
        _consumer_text("paused", '  pause_until: "2099-01-01T00:00:00Z"\n'),
        "pause_until",
        "  pause_until:",
    ),
    NewField(
        "consumer-priority_policy-prioritized",
        V2_12,
        _consumer_text("prioritized", "  priority_groups: [jobs]\n  priority_policy: prioritized\n"),
        "priority_policy",
        "  priority_policy:",
        field_since=V2_11,
    ),
    NewField(
        "consumer-sourcing",
        V2_14,
        _consumer_text("sourcing", "  sourcing: true\n"),
        "sourcing",
        "  sourcing:",
    ),
]
NAMED_IN_THE_ISSUE = 6


@pytest.fixture(scope="module")
def older_server(server_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for the cases below, with a stream BASE so that 'unchanged' means something."""
    server = LocalServer(server_bin).start()
    try:
        base = dump(tmp_path_factory.mktemp("base") / "base.yaml", [stream("BASE", subjects=["base.>"])])
        apply_ok(server.url, base)
        yield server
    finally:
        server.cleanup()


def _line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(marker))


def _assert_reported(stderr: str, path: Path, case: NewField, version: Version, server_version: str) -> None:
    line = _line_of(case.text, case.marker)
    wanted = (
        rf"{re.escape(str(path))}:{line}:\d+: .*{re.escape(case.shown)}.* needs nats-server "
        rf"{re.escape(show(case.needs(version)))} or newer; the server is {re.escape(server_version)}"
    )
    assert re.search(wanted, stderr), f"no line matching {wanted!r} in:\n{stderr}"
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "case", NEW_FIELDS[:NAMED_IN_THE_ISSUE], ids=[c.id for c in NEW_FIELDS[:NAMED_IN_THE_ISSUE]]
)
def test_a_field_newer_than_the_server_is_refused_before_anything_is_sent(older_server, tmp_path, case):
    version = version_of(older_server)
    if version >= case.since:
        pytest.skip(f"nats-server {older_server.version} knows {case.shown}")
    url = older_server.url
    path = tmp_path / "newer.yaml"
    path.write_text(case.text)
    before = server_snapshot(url)
    for command in ("plan", "apply"):
        result = run_cli(command, str(path), url=url)
        assert result.returncode == 1, f"{command}: {result.stdout}{result.stderr}"
        _assert_reported(result.stderr, path, case, version, older_server.version)
    assert "Nothing was sent to the server" in result.stderr
    assert server_snapshot(url) == before


def test_every_field_newer_than_the_server_is_reported_at_once(older_server, tmp_path):
    """All of versions.py's newer fields in one run: each one at its file:line, nothing sent."""
    version = version_of(older_server)
    lacking = [c for c in NEW_FIELDS if version < c.since]
    if not lacking:
        pytest.skip(f"nats-server {older_server.version} knows every field of versions.py")
    assert [c.id for c in NEW_FIELDS[:NAMED_IN_THE_ISSUE] if version < c.since], "the issue's cases run"
    directory = tmp_path / "newer"
    before = server_snapshot(older_server.url)
    for i, case in enumerate(lacking):
        (directory / f"{i:02d}.yaml").parent.mkdir(exist_ok=True)
        (directory / f"{i:02d}.yaml").write_text(case.text)
    result = run_cli("apply", str(directory), url=older_server.url)
    assert result.returncode == 1, result.stdout + result.stderr
    for i, case in enumerate(lacking):
        _assert_reported(result.stderr, directory / f"{i:02d}.yaml", case, version, older_server.version)
    assert server_snapshot(older_server.url) == before


def test_timestamps_compare_as_instants_not_as_text(nats_server, tmp_path, request):
    """The server writes times back in Go's RFC 3339 form: '12:00:00.000Z' comes back as '12:00:00Z'."""
    path = dump(
        tmp_path / "times.yaml",
        [
            stream("TIMES", subjects=["times.>"]),
            stream(
                "TIMES_COPY", sources=[{"name": "TIMES", "opt_start_time": "2024-05-01T14:00:00.500+02:00"}]
            ),
            consumer(
                "TIMES",
                "from_noon",
                ack_policy="explicit",
                deliver_policy="by_start_time",
                opt_start_time="2024-05-01T12:00:00.000Z",
            ),
        ],
    )
    apply_ok(nats_server.url, path)
    plan_clean(nats_server.url, path)


def test_republish_without_src_republishes_everything(nats_server, tmp_path, request):
    """The schema lets republish.src out; the server reads that as '>' (and 2.11+ pedantic refuses it)."""
    path = dump(
        tmp_path / "republish.yaml",
        [
            stream("ANNOUNCED", subjects=["announced.>"], republish={"dest": "out.announced.>"}),
            kv("announced_kv", republish={"dest": "out.kv.>"}),
        ],
    )
    apply_ok(nats_server.url, path)
    plan_clean(nats_server.url, path)


def test_pause_until_pauses_the_consumer_when_it_is_created(nats_server, tmp_path, request):
    """The schema accepts pause_until ('applied on create only'); the server pauses on create (2.11+)."""
    if version_of(nats_server) < CONSUMER_FIELDS_SINCE["pause_until"]:
        pytest.skip("pause_until needs nats-server 2.11")
    until = "2099-01-01T00:00:00Z"
    path = dump(
        tmp_path / "paused.yaml",
        [
            stream("PAUSED", subjects=["paused.>"]),
            consumer("PAUSED", "later", ack_policy="explicit", pause_until=until),
        ],
    )
    apply_ok(nats_server.url, path)
    info = request_info(nats_server.url, "PAUSED", "later")
    assert info["config"].get("pause_until") == until, info["config"]
    assert info.get("paused") is True, info
    plan_clean(nats_server.url, path)


def request_info(url: str, stream_name: str, name: str) -> dict:
    return api_request(url, f"$JS.API.CONSUMER.INFO.{stream_name}.{name}")
