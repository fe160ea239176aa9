"""Our schemas: agreement with the jsm.go reference, real server payloads, manifest errors, unit fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from referencing import Resource

from reconciler import schema
from reconciler.schema import SCHEMA_DIR, schema_problems, unit_fields, validator

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
JSM = SHARED / "reference" / "jsm-schemas"
BEHAVIOUR = SHARED / "reference" / "server-behaviour"

OURS = sorted(path.stem for path in SCHEMA_DIR.glob("*.json"))
MANIFESTS = ["stream_manifest", "consumer_manifest", "keyvalue_manifest", "objectstore_manifest"]


# --- the schema files themselves ---------------------------------------------------------------------


def _refs(node: object):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_schema_is_there():
    assert set(OURS) >= {"definitions", "stream_configuration", "consumer_configuration", *MANIFESTS}


@pytest.mark.parametrize("name", OURS)
def test_schema_is_valid_and_every_ref_resolves_offline(name):
    validator(name)  # checks the schema against its metaschema
    contents = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    resolver = schema._registry().resolver()
    for ref in _refs(contents):
        assert "://" not in ref, f"{name}: {ref} is not a relative ref"
        resolver.lookup(urljoin(f"{name}.json", ref))


def test_wire_configurations_are_closed_and_require_nothing():
    for name in ("stream_configuration", "consumer_configuration"):
        contents = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        assert contents["additionalProperties"] is False
        assert "required" not in contents
    assert schema_problems("stream_configuration", {}) == []
    assert schema_problems("consumer_configuration", {}) == []


# --- agreement with the jsm.go reference schemas -----------------------------------------------------

BOUND_KEYS = ("minimum", "maximum", "minLength", "maxLength")
# Strings a name pattern must refuse when the reference pattern refuses them.
PATTERN_PROBES = ["a.b", "a*", "a>", ".", "*", ">"]


def _load(folder: Path, doc: str, pointer: str = "") -> dict:
    node = json.loads((folder / doc).read_text())
    for part in filter(None, pointer.split("/")):
        node = node[part]
    return node


def flatten(folder: Path, node: dict, doc: str) -> dict:
    """A schema's effective constraints along its $ref chain, with `$ref` siblings applied.

    `explicit` holds the bounds written on the property itself (not inherited from golang_int64 & co).
    """
    view: dict = {"explicit": {key: node[key] for key in BOUND_KEYS if key in node}}
    while True:
        for key in ("type", "enum", "const", "pattern", "properties", "items"):
            if key in node and key not in view:
                view[key] = node[key]
                view[f"{key}_doc"] = doc
        for key in BOUND_KEYS:
            if key in node:
                tighter = max if key.startswith("min") else min
                view[key] = tighter(view.get(key, node[key]), node[key])
        if "$ref" not in node:
            return view
        target = urljoin(doc, node["$ref"])
        doc, _, pointer = target.partition("#")
        node = _load(folder, doc, pointer)


def _types(view: dict) -> set[str]:
    kind = view.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def compare(ref: dict, ours: dict, where: str, problems: list[str]) -> None:
    """Everything the reference says about a field, ours must say too (or be stricter where noted)."""
    if "type" in ref and _types(ref) != _types(ours):
        problems.append(f"{where}: type {sorted(_types(ours))}, reference {sorted(_types(ref))}")
    for key in ("enum", "const"):
        if key in ref and (key not in ours or sorted(map(str, ours[key])) != sorted(map(str, ref[key]))):
            problems.append(f"{where}: {key} {ours.get(key)}, reference {ref[key]}")
    # The reference puts `minimum` on objects (subject_transforms items) and `minLength` on arrays
    # (subjects); those do nothing, so bounds count only on the type they apply to.
    applies = {"minimum": {"integer", "number"}, "maximum": {"integer", "number"}}
    for key in BOUND_KEYS:
        if key not in ref or not _types(ref) & applies.get(key, {"string"}):
            continue
        if key not in ours:
            problems.append(f"{where}: no {key}, reference {ref[key]}")
        elif key in ref["explicit"] and key in ("minimum", "maximum") and ours[key] != ref[key]:
            problems.append(f"{where}: {key} {ours[key]}, reference {ref[key]}")
        elif (ours[key] < ref[key]) if key.startswith("min") else (ours[key] > ref[key]):
            problems.append(f"{where}: {key} {ours[key]} is looser than the reference's {ref[key]}")
    if "pattern" in ref:
        for probe in PATTERN_PROBES:
            ours_accepts = re.search(ours.get("pattern", ""), probe) and len(probe) >= ours.get(
                "minLength", 0
            )
            if not re.search(ref["pattern"], probe) and ours_accepts:
                problems.append(f"{where}: accepts {probe!r}, the reference refuses it")
    for key, sub in ref.get("properties", {}).items():
        if key not in ours.get("properties", {}):
            problems.append(f"{where}.{key}: missing")
            continue
        compare(
            flatten(JSM, sub, ref["properties_doc"]),
            flatten(SCHEMA_DIR, ours["properties"][key], ours["properties_doc"]),
            f"{where}.{key}",
            problems,
        )
    if isinstance(ref.get("items"), dict):
        compare(
            flatten(JSM, ref["items"], ref["items_doc"]),
            flatten(SCHEMA_DIR, ours.get("items", {}), ours.get("items_doc", "")),
            f"{where}[]",
            problems,
        )


def _views(name: str, ours_node: dict | None = None) -> tuple[dict, dict]:
    if not JSM.is_dir():
        pytest.skip(f"no reference schemas at {JSM}")
    doc = f"{name}.json"
    ref = flatten(JSM, _load(JSM, doc), doc)
    return ref, flatten(SCHEMA_DIR, ours_node or _load(SCHEMA_DIR, doc), doc)


@pytest.mark.parametrize("name", ["stream_configuration", "consumer_configuration"])
def test_agrees_with_reference(name):
    ref, ours = _views(name)
    problems: list[str] = []
    compare(ref, ours, name, problems)
    assert problems == []


def test_reference_check_has_teeth():
    tampered = _load(SCHEMA_DIR, "stream_configuration.json")
    tampered["properties"]["num_replicas"]["maximum"] = 9
    tampered["properties"]["retention"]["enum"] = ["limits"]
    del tampered["properties"]["allow_direct"]
    tampered["properties"]["placement"] = {"type": "object", "properties": {"cluster": {"type": "integer"}}}
    ref, ours = _views("stream_configuration", tampered)
    problems: list[str] = []
    compare(ref, ours, "s", problems)
    assert problems == [
        "s.retention: enum ['limits'], reference ['limits', 'interest', 'workqueue']",
        "s.num_replicas: maximum 9, reference 5",
        "s.placement.cluster: type ['integer'], reference ['string']",
        "s.placement.tags: missing",
        "s.placement.preferred: missing",
        "s.allow_direct: missing",
    ]


def test_reference_bounds_we_rely_on():
    # Spot checks of what the generic comparison covers, readable on their own.
    if not JSM.is_dir():
        pytest.skip(f"no reference schemas at {JSM}")
    assert schema_problems("stream_configuration", {"num_replicas": 6}) == [
        (("num_replicas",), "must be at most 5")
    ]
    assert schema_problems("stream_configuration", {"max_consumers": -2}) == [
        (("max_consumers",), "must be at least -1")
    ]
    assert schema_problems("consumer_configuration", {"ack_wait": 0}) == [
        (("ack_wait",), "must be at least 1")
    ]
    assert schema_problems("stream_configuration", {"max_msg_size": 2**31}) == [
        (("max_msg_size",), "must be at most 2147483647")
    ]


# --- what real servers return --------------------------------------------------------------------------


def _payloads() -> list:
    files = [
        *[
            (path, "stream_configuration")
            for pattern in ("stream_*.json", "kv.json", "object_store.json")
            for path in BEHAVIOUR.glob(f"*/{pattern}")
        ],
        *[(path, "consumer_configuration") for path in BEHAVIOUR.glob("*/consumer_*.json")],
    ]
    return [pytest.param(path, name, id=str(path.relative_to(BEHAVIOUR))) for path, name in sorted(files)]


@pytest.mark.parametrize(("path", "name"), _payloads() or [pytest.param(None, None, id="absent")])
def test_server_info_config_validates(path, name):
    if path is None:
        pytest.skip(f"no recorded server payloads at {BEHAVIOUR}")
    config = json.loads(path.read_text())["config"]
    assert schema_problems(name, config) == []


def test_captured_client_requests_validate():
    files = sorted(BEHAVIOUR.glob("*/captured_client_requests.json"))
    if not files:
        pytest.skip(f"no recorded client requests at {BEHAVIOUR}")
    for path in files:
        for request in json.loads(path.read_text()):
            if ".STREAM.CREATE." in request["subject"]:
                assert schema_problems("stream_configuration", request["request"]) == [], request
            else:
                assert schema_problems("consumer_configuration", request["request"]["config"]) == [], request


# --- manifests -------------------------------------------------------------------------------------------

VALID = [
    (
        "stream_manifest",
        {
            "kind": "Stream",
            "name": "JOBS",
            "spec": {
                "subjects": ["jobs.>"],
                "retention": "workqueue",
                "max_age": 86_400_000_000_000,
                "max_bytes": 1 << 30,
                "num_replicas": 3,
                "sources": [{"name": "OTHER", "subject_transforms": [{"src": "a.>", "dest": "b.>"}]}],
                "consumer_limits": {"inactive_threshold": 60_000_000_000, "max_ack_pending": 100},
                "metadata": {"team": "jobs"},
                "persist_mode": "",
            },
        },
    ),
    ("stream_manifest", {"kind": "Stream", "name": "MIN"}),
    (
        "consumer_manifest",
        {
            "kind": "Consumer",
            "stream": "JOBS",
            "name": "workers",
            "spec": {
                "ack_policy": "explicit",
                "ack_wait": 30_000_000_000,
                "backoff": [30_000_000_000, 60_000_000_000],
                "max_deliver": 5,
                "filter_subject": "jobs.>",
                "priority_policy": "pinned_client",
                "priority_groups": ["jobs"],
            },
        },
    ),
    (
        "consumer_manifest",
        {
            "kind": "Consumer",
            "stream": "S",
            "name": "c",
            "spec": {"deliver_policy": "by_start_sequence", "opt_start_seq": 7},
        },
    ),
    (
        "consumer_manifest",
        {
            "kind": "Consumer",
            "stream": "S",
            "name": "c",
            "spec": {"deliver_policy": "by_start_time", "opt_start_time": "2024-05-01T12:00:00.5+02:00"},
        },
    ),
    (
        "keyvalue_manifest",
        {
            "kind": "KeyValue",
            "name": "job_state",
            "spec": {
                "history": 5,
                "ttl": 604_800_000_000_000,
                "replicas": 3,
                "compression": True,
                "storage": "memory",
            },
        },
    ),
    ("objectstore_manifest", {"kind": "ObjectStore", "name": "artifacts", "spec": {"max_bytes": 10 << 30}}),
]


@pytest.mark.parametrize(("name", "manifest"), VALID)
def test_valid_manifests(name, manifest):
    assert schema_problems(name, manifest) == []


def _stream(**spec):
    return {"kind": "Stream", "name": "JOBS", "spec": spec}


def _consumer(**spec):
    return {"kind": "Consumer", "stream": "JOBS", "name": "workers", "spec": spec}


INVALID = [
    ("stream_manifest", _stream(max_agee=1), [(("spec", "max_agee"), "unknown field 'max_agee'")]),
    ("stream_manifest", _stream(max_msgs="abc"), [(("spec", "max_msgs"), "expected an integer, got 'abc'")]),
    ("stream_manifest", _stream(max_msgs=True), [(("spec", "max_msgs"), "expected an integer, got true")]),
    (
        "stream_manifest",
        _stream(retention="fifo"),
        [(("spec", "retention"), "must be one of: limits, interest, workqueue")],
    ),
    (
        "stream_manifest",
        _stream(persist_mode="sync"),
        [(("spec", "persist_mode"), 'must be one of: "", default, async')],
    ),
    ("stream_manifest", _stream(max_consumers=-5), [(("spec", "max_consumers"), "must be at least -1")]),
    ("stream_manifest", _stream(num_replicas=7), [(("spec", "num_replicas"), "must be at most 5")]),
    (
        "stream_manifest",
        _stream(subjects="jobs.>"),
        [(("spec", "subjects"), "expected a list, got 'jobs.>'")],
    ),
    (
        "stream_manifest",
        _stream(sources=[{"name": "A"}, {"nme": "B"}]),
        [
            (("spec", "sources", 1), "required field 'name' is missing"),
            (("spec", "sources", 1, "nme"), "unknown field 'nme'"),
        ],
    ),
    (
        "stream_manifest",
        _stream(metadata={"team": 5}),
        [(("spec", "metadata", "team"), "expected a string, got 5")],
    ),
    (
        "stream_manifest",
        _stream(consumer_limits={"inactive_threshold": "1h"}),
        [(("spec", "consumer_limits", "inactive_threshold"), "expected an integer, got '1h'")],
    ),
    (
        "stream_manifest",
        {"kind": "Stream", "name": "jobs.*", "labels": {}},
        [
            (("labels",), "unknown field 'labels'"),
            (("name",), "must not contain '.', '*', '>', '/', '\\', whitespace or control characters"),
        ],
    ),
    ("stream_manifest", {"kind": "Stream", "name": ""}, [(("name",), "must not be empty")]),
    (
        "stream_manifest",
        {"name": "JOBS", "spec": None},
        [
            ((), "required field 'kind' is missing"),
            (("spec",), "expected an object, got null"),
        ],
    ),
    ("stream_manifest", {"kind": "Consumer", "name": "JOBS"}, [(("kind",), "must be Stream")]),
    (
        "consumer_manifest",
        {"kind": "Consumer", "name": "workers", "spec": {}},
        [((), "required field 'stream' is missing")],
    ),
    ("consumer_manifest", _consumer(ack_wait=0), [(("spec", "ack_wait"), "must be at least 1")]),
    (
        "consumer_manifest",
        _consumer(ack_policy="auto"),
        [
            (("spec", "ack_policy"), "must be one of: none, all, explicit, flow_control"),
        ],
    ),
    (
        "consumer_manifest",
        _consumer(backoff=[1, "2s"]),
        [(("spec", "backoff", 1), "expected an integer, got '2s'")],
    ),
    ("consumer_manifest", _consumer(max_bytes=-1), [(("spec", "max_bytes"), "must be at least 0")]),
    (
        "consumer_manifest",
        _consumer(opt_start_seq=5),
        [(("spec",), "opt_start_seq needs deliver_policy: by_start_sequence")],
    ),
    (
        "consumer_manifest",
        _consumer(deliver_policy="all", opt_start_time="2024-05-01T12:00:00Z"),
        [(("spec", "deliver_policy"), "must be by_start_time when opt_start_time is set")],
    ),
    (
        "consumer_manifest",
        _consumer(deliver_policy="by_start_sequence"),
        [(("spec",), "required field 'opt_start_seq' is missing (deliver_policy is by_start_sequence)")],
    ),
    (
        "consumer_manifest",
        _consumer(deliver_policy="by_start_time", opt_start_time="yesterday"),
        [(("spec", "opt_start_time"), "must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z")],
    ),
    (
        "keyvalue_manifest",
        {"kind": "KeyValue", "name": "job.state", "spec": {"history": 65, "replicas": 0}},
        [
            (("name",), "may only contain letters, digits, '_' and '-'"),
            (("spec", "history"), "must be at most 64"),
            (("spec", "replicas"), "must be at least 1"),
        ],
    ),
    (
        "keyvalue_manifest",
        {"kind": "KeyValue", "name": "b", "spec": {"num_replicas": 3, "compression": "s2"}},
        [
            (("spec", "compression"), "expected true or false, got 's2'"),
            (("spec", "num_replicas"), "unknown field 'num_replicas'"),
        ],
    ),
    (
        "objectstore_manifest",
        {"kind": "ObjectStore", "name": "my bucket", "spec": {"history": 2, "storage": "disk"}},
        [
            (("name",), "may only contain letters, digits, '_' and '-'"),
            (("spec", "history"), "unknown field 'history'"),
            (("spec", "storage"), "must be one of: file, memory"),
        ],
    ),
]


@pytest.mark.parametrize(("name", "manifest", "expected"), INVALID)
def test_invalid_manifests(name, manifest, expected):
    assert schema_problems(name, manifest) == expected


def test_problems_are_deterministic():
    manifest = _stream(zz=1, aa=2, sources=[{"name": "A", "x": 1}] * 11, max_msgs="x")
    first = schema_problems("stream_manifest", manifest)
    assert first == schema_problems("stream_manifest", dict(reversed(list(manifest.items()))))
    # list indexes sort numerically: item 2 comes before item 10
    assert [path for path, _ in first].index(("spec", "sources", 2, "x")) < [path for path, _ in first].index(
        ("spec", "sources", 10, "x")
    )


def test_unknown_schema_name():
    with pytest.raises(KeyError):
        validator("no_such_schema")


# --- unit fields -------------------------------------------------------------------------------------------


def test_unit_fields_consumer():
    fields = unit_fields("consumer_manifest")
    assert fields == {
        ("spec", "ack_wait"): "duration",
        ("spec", "idle_heartbeat"): "duration",
        ("spec", "max_expires"): "duration",
        ("spec", "max_bytes"): "size",
        ("spec", "inactive_threshold"): "duration",
        ("spec", "backoff", "*"): "duration",
        ("spec", "priority_timeout"): "duration",
    }


def test_unit_fields_stream():
    assert unit_fields("stream_manifest") == {
        ("spec", "max_age"): "duration",
        ("spec", "duplicate_window"): "duration",
        ("spec", "subject_delete_marker_ttl"): "duration",
        ("spec", "consumer_limits", "inactive_threshold"): "duration",
        ("spec", "max_bytes"): "size",
        ("spec", "max_msg_size"): "size",
    }
    assert unit_fields("stream_configuration")[("max_age",)] == "duration"


def test_unit_fields_buckets():
    assert unit_fields("keyvalue_manifest") == {
        ("spec", "ttl"): "duration",
        ("spec", "limit_marker_ttl"): "duration",
        ("spec", "max_value_size"): "size",
        ("spec", "max_bytes"): "size",
    }
    assert unit_fields("objectstore_manifest") == {("spec", "ttl"): "duration", ("spec", "max_bytes"): "size"}


def test_unit_fields_returns_a_copy():
    unit_fields("stream_manifest").clear()
    assert unit_fields("stream_manifest")


def test_unit_fields_survives_ref_cycles(monkeypatch):
    cyclic = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "properties": {"child": {"$ref": "#"}, "ttl": {"$ref": "definitions.json#/definitions/duration"}},
    }
    registry = schema._registry().with_resource("cyclic.json", Resource.from_contents(cyclic))
    monkeypatch.setattr(schema, "_registry", lambda: registry)
    found: dict = {}
    schema._walk(cyclic, "cyclic.json", (), found, frozenset())
    assert found == {("ttl",): "duration", ("child", "ttl"): "duration"}
