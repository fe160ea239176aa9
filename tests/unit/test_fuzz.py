"""Property-based fuzzing of loading and validation (hypothesis, bounded).

(a) any text, and any bytes decoded, go through `parse_text` without an exception;
(b) random documents (real field names, hostile values) written as YAML or JSON either load or raise a
    ManifestError whose every problem is located in the file;
(c) manifests valid by construction (built from the schemas' types, enums and bounds, and the semantic
    rules) load, plan as creates only against an empty server, and plan as no-ops once the bodies those
    creates send are what the server holds.

Profiles: `ci` (the default under CI=1: derandomized, no example database) and `dev`; choose one with
HYPOTHESIS_PROFILE. Each test stays at max_examples=200, so the module takes well under a minute.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import api
from reconciler.errors import ManifestError
from reconciler.load import parse_text
from reconciler.model import Resource
from reconciler.observe import LiveState
from reconciler.plan import Action, make_plan
from reconciler.schema import SCHEMA_DIR
from reconciler.units import parse_duration, parse_size
from reconciler.versions import Server

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, print_blob=True, suppress_health_check=_SLOW
)
settings.register_profile("dev", deadline=None, suppress_health_check=_SLOW)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ENV = {"X": "1h", "EMPTY": "", "COLON": "a: b", "NUM": "5", "DOT": "a.b"}
KINDS = ("Stream", "Consumer", "KeyValue", "ObjectStore")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- the schemas -------------------------------------------------------------------------------------


def _schemas() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMA_DIR.glob("*.json")}


SCHEMAS = _schemas()


def _field_names() -> list[str]:
    """Every property name in the schemas: stream, consumer, bucket and nested fields."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([s for name, s in SCHEMAS.items() if name != "plan.json"])
    return sorted(names)


FIELD_NAMES = _field_names()


def _resolve(ref: str, base: str) -> tuple[dict, str]:
    file, _, pointer = ref.partition("#")
    file = file or base
    node: Any = SCHEMAS[file]
    for part in pointer.strip("/").split("/") if pointer else []:
        node = node[part]
    return node, file


# --- (a) any text -----------------------------------------------------------------------------------

YAML_TOKENS = [
    "kind: Stream\n",
    "name: JOBS\n",
    "spec:\n",
    "  ",
    "    ",
    "- ",
    "\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!int ",
    "!!str ",
    "!!python/object:os.system ",
    "!Ref ",
    "!!binary ",
    "!!set ",
    "<<: ",
    "? ",
    "${X}",
    "${UNSET}",
    "${UNSET:-1h}",
    "${COLON}",
    "$$",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! x\n",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    ":",
    "\t",
    "'",
    '"',
    "#",
    "|\n",
    ">-\n",
    "1h",
    "1GiB",
    "-1",
    "0",
    "1e400",
    "1.0e+400",
    ".nan",
    ".inf",
    "~",
    "null",
    "true",
    "yes",
    "0x1F",
    "017",
    "1:30",
    "1_000",
    "2001-12-14",
    "\ufeff",
    "\x00",
    "\x07",
    "\x85",
    "\u2028",
    "subjects",
    "max_age",
    "jobs.>",
    "*.*",
    "\\",
    "\\u0000",
    "\\x",
    "@",
    "`",
    "%",
]
JSON_TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\t",
    '"kind"',
    '"Stream"',
    '"name"',
    '"JOBS"',
    '"spec"',
    '"max_age"',
    '"1h"',
    "1",
    "-1",
    "0",
    "1.5",
    "1e5",
    "1e999",
    "-0",
    "NaN",
    "Infinity",
    "true",
    "null",
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"${UNSET}"',
    '"${X}"',
    "//",
    "'",
    "\ufeff",
]


def _joined(tokens: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=60).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(st.text(max_size=400), _joined(YAML_TOKENS), _joined(JSON_TOKENS)),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_parse_text_takes_any_text(text: str, suffix: str):
    name = f"fuzz{suffix}"
    documents, problems = parse_text(text, name, ENV)
    assert all(p.location.file == name for p in problems)
    assert all(d.file == name for d in documents)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_parse_text_takes_any_bytes_decoded(data: bytes, encoding: str):
    text = data.decode(encoding, errors="replace")
    for name in ("fuzz.yaml", "fuzz.json"):
        _, problems = parse_text(text, name, ENV)
        assert all(p.location.file == name for p in problems)


# --- (b) random documents with real field names -----------------------------------------------------

HOSTILE_STRINGS = [
    "1h",
    "-5s",
    "1GiB",
    "500ms",
    "1h30m",
    "7d",
    "0",
    "",
    "1.5",
    "10MB",
    "1 GiB",
    "1XB",
    "PT1H",
    "jobs.>",
    "jobs.*",
    "*",
    ">",
    "jobs..a",
    "a.>.b",
    "a b",
    "workqueue",
    "explicit",
    "file",
    "memory",
    "s2",
    "none",
    "all",
    "limits",
    "interest",
    "new",
    "old",
    "instant",
    "pinned_client",
    "by_start_time",
    "2024-05-01T12:00:00Z",
    "2024-13-45T00:00:00Z",
    "yes",
    "null",
    "${X}",
    "${UNSET:-1h}",
    "${UNSET}",
    "KV_x",
    "$KV.x.>",
    "JOBS",
    "a.b",
    "x" * 300,
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, -2, 5, 64, 65, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.floats(),
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=12),
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)
NAMES = st.one_of(st.sampled_from(["JOBS", "ORDERS", "job_state", "KV_job_state", "w"]), SCALARS)


@st.composite
def random_document(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUES)  # not even a mapping
    doc: dict[str, Any] = {"kind": draw(st.one_of(st.sampled_from(KINDS), SCALARS)), "name": draw(NAMES)}
    if draw(st.booleans()):
        doc["stream"] = draw(NAMES)
    doc["spec"] = draw(st.one_of(st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=8), VALUES))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(KEYS)] = draw(VALUES)
    return doc


def _write(path: Path, documents: list[Any]) -> bool:
    """Write the documents as YAML or JSON; False when the format cannot hold them."""
    if path.suffix == ".json":
        try:
            path.write_text(json.dumps(documents), encoding="utf-8")
        except (TypeError, ValueError):  # keys that are not strings
            return False
        return True
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    return True


def _check_outcome(path: Path) -> list[Resource]:
    """Load `path`: resources, or a ManifestError located in the file; any other exception fails."""
    try:
        return api.load([str(path)], env={})
    except ManifestError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.location.file == str(path), problem
            assert problem.location.line >= 1, problem
        assert str(path) in str(exc)
        return []


@settings(max_examples=200, deadline=None)
@given(
    documents=st.lists(random_document(), min_size=1, max_size=4), suffix=st.sampled_from([".yaml", ".json"])
)
def test_random_documents_load_or_fail_with_located_problems(workdir: Path, documents: list, suffix: str):
    path = workdir / f"random{suffix}"
    if _write(path, documents):
        _check_outcome(path)


# --- (c) manifests valid by construction ------------------------------------------------------------

SAFE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_,.:", max_size=12)
META_KEYS = st.text(alphabet=string.ascii_lowercase + "-_", min_size=1, max_size=8)
TIMES = st.sampled_from(
    ["2024-05-01T12:00:00Z", "2030-01-02T03:04:05.5+02:00", "2025-12-31T23:59:59.123456789Z"]
)
DURATION_TEXT = st.sampled_from(["1ns", "500ms", "30s", "90s", "1m", "1h30m", "7d", "1.5h", "2w"])
SIZE_TEXT = st.sampled_from(["1", "512KiB", "1MiB", "10MB", "1GiB", "1.5GiB", "2kb"])
UNIT_REFS = {"duration", "size", "size32"}


def from_schema(node: dict, base: str, skip: frozenset[str] = frozenset()) -> st.SearchStrategy[Any]:
    """Values the schema accepts: types, enums, bounds, required keys; durations and sizes also in
    human units. Fields in `skip` (those with rules across fields) are left out of objects."""
    if "$ref" in node:
        target, file = _resolve(node["$ref"], base)
        definition = node["$ref"].rsplit("/", 1)[-1]
        merged = {**target, **{k: v for k, v in node.items() if k not in ("$ref", "description")}}
        inner = from_schema(merged, file, skip)
        if definition in UNIT_REFS:
            low, high = merged.get("minimum", 0), merged.get("maximum", 2**63 - 1)
            human = DURATION_TEXT if definition == "duration" else SIZE_TEXT
            ok = human.filter(lambda text: low <= _units(text, definition) <= high)
            return st.one_of(inner, ok)
        return inner
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    kind = next(t for t in kind if t != "null") if isinstance(kind, list) else kind
    if kind == "integer":
        low, high = node.get("minimum", -(2**63)), node.get("maximum", 2**63 - 1)
        edges = [v for v in (low, high, 0, 1, -1) if low <= v <= high]
        return st.one_of(st.integers(min(max(low, -1000), high), min(high, 10**6)), st.sampled_from(edges))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if node.get("format") == "date-time":
            return TIMES
        if "pattern" in node:
            return st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
        return SAFE_TEXT.filter(lambda s: len(s) >= node.get("minLength", 0))
    if kind == "array":
        return st.lists(from_schema(node.get("items", {}), base, skip), max_size=3)
    if kind == "object":
        props = {k: v for k, v in node.get("properties", {}).items() if k not in skip}
        required = [k for k in node.get("required", []) if k in props]
        if not props and isinstance(node.get("additionalProperties"), dict):  # metadata
            return st.dictionaries(META_KEYS, SAFE_TEXT, max_size=3)
        return st.fixed_dictionaries(
            {k: from_schema(props[k], base, skip) for k in required},
            optional={k: from_schema(v, base, skip) for k, v in props.items() if k not in required},
        )
    return st.nothing()


def _units(text: str, definition: str) -> int:
    return parse_duration(text) if definition == "duration" else parse_size(text)


def _spec(schema_file: str, skip: set[str], path: tuple[str, ...] = ()) -> st.SearchStrategy[dict]:
    node: Any = SCHEMAS[schema_file]
    for part in path:
        node = node["properties"][part]
    return from_schema(node, schema_file, frozenset(skip | {"preferred", "name", "durable_name"}))


# Fields with rules across fields or resources, or that only a live resource may have: set by the
# strategies below rather than drawn from the schema.
STREAM_RULED = {
    "subjects",
    "subject_transform",
    "mirror",
    "sources",
    "sealed",
    "republish",
    "mirror_direct",
    "allow_msg_counter",
    "allow_msg_schedules",
    "subject_delete_marker_ttl",
    "discard_new_per_subject",
    "retention",
}
CONSUMER_RULED = {
    "deliver_subject",
    "deliver_group",
    "idle_heartbeat",
    "flow_control",
    "rate_limit_bps",
    "direct",
    "sourcing",
    "filter_subject",
    "filter_subjects",
    "backoff",
    "ack_policy",
    "deliver_policy",
    "opt_start_seq",
    "opt_start_time",
    "priority_groups",
    "priority_policy",
    "priority_timeout",
    "sample_freq",
    "ack_wait",
    "max_ack_pending",
}
STREAM_SPEC = _spec("stream_configuration.json", STREAM_RULED)
CONSUMER_SPEC = _spec("consumer_configuration.json", CONSUMER_RULED)
KV_SPEC = _spec("keyvalue_manifest.json", {"mirror", "sources", "republish"}, ("spec",))
OBJECT_SPEC = _spec("objectstore_manifest.json", set(), ("spec",))
NAME_SUFFIX = st.from_regex(r"[A-Za-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def stream_document(draw: st.DrawFn, index: int, earlier: list[str]) -> tuple[dict, str, bool]:
    """A valid stream; its subjects are all under its own first token, so no two streams overlap. It
    may source from, or mirror, a stream declared before it (so there is never a cycle)."""
    name = f"S{index}{draw(NAME_SUFFIX)}"
    prefix = f"t{index}"
    spec = dict(draw(STREAM_SPEC))
    origin = draw(st.sampled_from([None, "sources", "mirror"])) if earlier else None
    workqueue = origin is None and draw(st.booleans())
    spec["retention"] = "workqueue" if workqueue else draw(st.sampled_from(["limits", "interest"]))
    if origin == "mirror":
        spec["mirror"] = draw(stream_source(earlier))
        for field in ("duplicate_window", "allow_msg_ttl", "subject_delete_marker_ttl"):
            spec.pop(field, None)
    else:
        spec["subjects"] = [f"{prefix}.>"] if draw(st.booleans()) else [f"{prefix}.a", f"{prefix}.b.*"]
    if origin == "sources":
        spec["sources"] = draw(
            st.lists(stream_source(earlier), min_size=1, max_size=2, unique_by=lambda s: s["name"])
        )
    if spec.get("deny_purge"):
        spec.pop("allow_rollup_hdrs", None)  # roll-ups need purges
    if origin != "mirror" and draw(st.booleans()) and not spec.get("deny_purge"):  # delete markers
        spec.update(allow_msg_ttl=True, allow_rollup_hdrs=True)
        spec["subject_delete_marker_ttl"] = draw(st.sampled_from(["1s", "5m", 60_000_000_000]))
    if draw(st.booleans()):
        spec.update(
            discard="new", discard_new_per_subject=True, max_msgs_per_subject=draw(st.integers(1, 100))
        )
    elif draw(st.booleans()) and not spec.get("deny_purge"):
        spec.update(allow_msg_schedules=True, allow_rollup_hdrs=True)
        spec["discard"] = "old"
    age, window = _nanos(spec.get("max_age"), "duration"), _nanos(spec.get("duplicate_window"), "duration")
    if age and window and window > age:
        spec.pop("duplicate_window")
    return {"kind": "Stream", "name": name, "spec": spec}, prefix, workqueue


@st.composite
def stream_source(draw: st.DrawFn, earlier: list[str]) -> dict:
    source: dict[str, Any] = {"name": draw(st.sampled_from(earlier))}
    start = draw(st.sampled_from([None, "seq", "time"]))
    if start == "seq":
        source["opt_start_seq"] = draw(st.integers(1, 10**6))
    elif start == "time":
        source["opt_start_time"] = draw(TIMES)
    if draw(st.booleans()):
        source["filter_subject"] = "t0.>"
    return source


def _nanos(value: Any, definition: str) -> int:
    return _units(value, definition) if isinstance(value, str) else int(value or 0)


@st.composite
def consumer_document(
    draw: st.DrawFn, stream: str, prefix: str, workqueue: bool, index: int, alone: bool
) -> dict:
    """A valid pull consumer of `stream`, whose filter is its own (never overlapping its siblings')."""
    spec = dict(draw(CONSUMER_SPEC))
    ack = "explicit" if workqueue else draw(st.sampled_from(["none", "all", "explicit"]))
    spec["ack_policy"] = ack
    if not (alone and draw(st.booleans())):  # only a lone consumer may go unfiltered on a work queue
        if draw(st.booleans()):
            spec["filter_subject"] = f"{prefix}.b.c{index}"
        else:
            spec["filter_subjects"] = [f"{prefix}.b.c{index}", f"{prefix}.b.d{index}"]
    if workqueue:
        spec["deliver_policy"] = "all"
    else:
        policy = draw(
            st.sampled_from(["all", "last", "new", "last_per_subject", "by_start_sequence", "by_start_time"])
        )
        spec["deliver_policy"] = policy
        if policy == "by_start_sequence":
            spec["opt_start_seq"] = draw(st.integers(1, 10**9))
        if policy == "by_start_time":
            spec["opt_start_time"] = draw(TIMES)
    if ack != "none":
        if draw(st.booleans()):
            backoff = draw(st.lists(st.sampled_from(["1s", "5s", "30s", "1m"]), min_size=1, max_size=3))
            spec["backoff"] = backoff
            spec["max_deliver"] = len(backoff) + draw(st.integers(1, 5))
            if draw(st.booleans()):
                spec["ack_wait"] = backoff[0]
        elif draw(st.booleans()):
            spec["ack_wait"] = draw(st.sampled_from(["1s", "30s", "2m", 5_000_000_000]))
        if draw(st.booleans()):
            spec["max_ack_pending"] = draw(st.sampled_from([-1, 1, 1000, 20_000]))
    if draw(st.booleans()):
        spec["sample_freq"] = draw(st.sampled_from(["100%", "50%", "1"]))
    policy = draw(st.sampled_from(["none", "overflow", "pinned_client", None]))
    if policy and policy != "none":
        spec["priority_policy"] = policy
        spec["priority_groups"] = ["jobs"]
        if policy == "pinned_client" and draw(st.booleans()):
            spec["priority_timeout"] = "2m"
    return {"kind": "Consumer", "stream": stream, "name": f"c{index}{draw(NAME_SUFFIX)}", "spec": spec}


@st.composite
def valid_manifest_set(draw: st.DrawFn) -> list[dict]:
    documents: list[dict] = []
    streams: list[str] = []
    for i in range(draw(st.integers(0, 3))):
        stream, prefix, workqueue = draw(stream_document(i, streams))
        documents.append(stream)
        streams.append(stream["name"])
        count = draw(st.integers(0, 3))
        for j in range(count):
            consumer = draw(
                consumer_document(stream["name"], prefix, workqueue, i * 10 + j, alone=count == 1)
            )
            if stream["spec"]["retention"] != "limits" and consumer["spec"].get("num_replicas"):
                # 10134: a consumer of a work-queue or interest stream keeps the stream's replica count.
                consumer["spec"]["num_replicas"] = stream["spec"].get("num_replicas") or 1
            documents.append(consumer)
    for i in range(draw(st.integers(0, 2))):
        documents.append({"kind": "KeyValue", "name": f"kv{i}{draw(NAME_SUFFIX)}", "spec": draw(KV_SPEC)})
    for i in range(draw(st.integers(0, 2))):
        documents.append(
            {"kind": "ObjectStore", "name": f"os{i}{draw(NAME_SUFFIX)}", "spec": draw(OBJECT_SPEC)}
        )
    if not documents:
        documents.append({"kind": "KeyValue", "name": "state", "spec": draw(KV_SPEC)})
    return documents


def _as_live(plan_changes: list) -> Iterator[tuple[str, str | None, dict]]:
    for change in plan_changes:
        if change.address.kind == "consumer":
            yield change.address.stream, change.address.name, change.body
        else:
            yield change.address.stream_name, None, change.body


@settings(max_examples=200, deadline=None)
@given(documents=valid_manifest_set(), suffix=st.sampled_from([".yaml", ".json"]))
def test_valid_manifests_load_and_plan_as_creates_then_no_ops(workdir: Path, documents: list, suffix: str):
    path = workdir / f"valid{suffix}"
    assert _write(path, documents)
    try:
        resources = api.load([str(path)], env={})
    except ManifestError as exc:
        pytest.fail(f"a valid manifest set was refused:\n{exc}\n\n{path.read_text()}")
    assert len(resources) == len(documents)

    server = Server()
    plan = make_plan(resources, LiveState(server))
    assert sorted(c.address for c in plan.changes) == sorted(r.address for r in resources)
    assert all(c.action is Action.CREATE for c in plan.changes), [str(c.address) for c in plan.changes]
    assert not [p for c in plan.changes for p in _wire_problems(c.body)]

    # What the creates send is then on the server: planning again finds nothing to do.
    live = LiveState(server)
    for stream, consumer, body in _as_live(plan.changes):
        if consumer is None:
            live.streams[stream] = body
        else:
            live.consumers.setdefault(stream, {})[consumer] = body
    again = make_plan(resources, live)
    pending = [
        (str(c.address), c.action.value, [d.path for d in c.diffs]) for c in again.changes if c.pending
    ]
    assert not pending, pending


# --- (b, deeper) valid manifests with one hostile change --------------------------------------------


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a document tree, dict keys and list indexes."""
    out: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append((node, key))
        out += _slots(value)
    return out


@st.composite
def mutated_manifest_set(draw: st.DrawFn) -> list[Any]:
    documents = draw(valid_manifest_set())
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(st.sampled_from(documents))
        how = draw(st.sampled_from(["set", "set", "delete", "add", "duplicate", "link", "stream"]))
        slots = _slots(doc)
        if how == "set" and slots:
            container, key = draw(st.sampled_from(slots))
            container[key] = draw(VALUES)
        elif how == "delete" and slots:
            container, key = draw(st.sampled_from(slots))
            if isinstance(container, dict):
                del container[key]
        elif how == "add" and isinstance(doc.get("spec"), dict):
            doc["spec"][draw(st.sampled_from(FIELD_NAMES))] = draw(VALUES)
        elif how == "duplicate":
            documents.append(json.loads(json.dumps(doc)))
        elif how == "link" and isinstance(doc.get("spec"), dict):  # sources/mirror to anything, self too
            names = [d.get("name") for d in documents if isinstance(d, dict)] + ["NOWHERE"]
            target = {"name": draw(st.sampled_from(names))}
            if draw(st.booleans()):
                doc["spec"]["mirror"] = target
            else:
                doc["spec"].setdefault("sources", [])
                if isinstance(doc["spec"]["sources"], list):
                    doc["spec"]["sources"].append(target)
        elif how == "stream" and doc.get("kind") == "Consumer":
            doc["stream"] = draw(st.sampled_from([d.get("name") for d in documents] + ["NOWHERE", None]))
    return documents


@settings(max_examples=200, deadline=None)
@given(documents=mutated_manifest_set(), suffix=st.sampled_from([".yaml", ".json"]))
def test_mutated_manifests_load_or_fail_with_located_problems_and_plan(
    workdir: Path, documents: list, suffix: str
):
    path = workdir / f"mutated{suffix}"
    if not _write(path, documents):
        return
    resources = _check_outcome(path)
    if resources:  # whatever loads must plan (creates only, against an empty server) and be sendable
        plan = make_plan(resources, LiveState(Server()))
        assert all(c.action is Action.CREATE for c in plan.changes)
        for change in plan.changes:
            assert not _wire_problems(change.body), (str(change.address), _wire_problems(change.body))


def _wire_problems(value: Any, path: str = "") -> list[str]:
    """What in a request body the server could not take: JetStream configs hold no floats (not even
    5.0: Go refuses it for an int), and every integer is a Go int64 or uint64."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _wire_problems(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _wire_problems(v, f"{path}.{i}")]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, float):
        return [f"{path}: float {value!r}"]
    if isinstance(value, int):
        return [] if -(2**63) <= value < 2**64 else [f"{path}: {value} does not fit 64 bits"]
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [f"{path}: {value!r} is not UTF-8"]
        return []
    return [f"{path}: {type(value).__name__}"]
