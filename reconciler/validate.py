"""Documents -> Resources: units, schemas, then the rules that span fields and resources.

Everything here is offline. All problems are collected and raised together as one ManifestError.
The checks that need the live server (a consumer's stream exists there, fields the server version
knows) are in `check_against_server`, which runs before any change is sent.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from . import schema
from .canonical import CONSUMER_DEFAULTS, canonical_consumer, canonical_stream
from .errors import ManifestError, Problem
from .kinds import KINDS
from .load import Document
from .model import Address, Resource
from .subjects import is_literal, overlapping_pairs, overlaps, subject_problem
from .units import parse_duration, parse_size
from .versions import Server, show


def validate(documents: Iterable[Document]) -> list[Resource]:
    problems: list[Problem] = []
    resources: list[Resource] = []
    for doc in documents:
        resource = _validate_document(doc, problems)
        if resource is not None:
            resources.append(resource)
    problems += _check_set(resources)  # on the documents that passed, so all problems show at once
    if problems:
        raise ManifestError(problems)
    _make_canonical(resources)
    return resources


def _make_canonical(resources: list[Resource]) -> None:
    """The canonical forms no server version changes: of a stream without sources (the server only
    decides the duplicate window of sourced ones), and of a consumer on such a declared stream."""
    streams = {}
    for r in resources:
        if r.address.is_stream and not r.config.get("sources"):
            r.canonical = streams[r.address.stream_name] = canonical_stream(r.config, Server())
    for r in resources:
        if r.address.kind == "consumer" and r.address.stream in streams:
            r.canonical = canonical_consumer(r.config, streams[r.address.stream])


def _problem(doc: Document, path: tuple, message: str, resource: str = "") -> Problem:
    return Problem(doc.where(path), message, resource, ".".join(str(p) for p in path))


def _validate_document(doc: Document, problems: list[Problem]) -> Resource | None:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(_problem(doc, (), "a manifest document must be a mapping with kind, name and spec"))
        return None
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(KINDS)
        what = f"unknown kind {kind!r}" if kind is not None else "missing field 'kind'"
        problems.append(
            _problem(doc, ("kind",) if kind is not None else (), f"{what}; expected one of {known}")
        )
        return None
    module = KINDS[kind]
    data = copy.deepcopy(data)
    if data.get("spec", {}) is None:  # `spec:` left empty in YAML means all defaults
        data["spec"] = {}
    found: list[Problem] = []
    address_hint = str(Address(module.ADDRESS_KIND, str(data.get("name", "?")), str(data.get("stream", "?"))))
    for path, unit in schema.unit_fields(module.SCHEMA).items():
        _convert_units(doc, data, path, (), unit, found, address_hint)
    found += [
        _problem(doc, path, f"expected an integer, got {value!r}", address_hint)
        for path, value in _whole_floats(data)
    ]
    converted = {p.field for p in found}  # a bad duration is not also "expected an integer"
    for path, message in schema.schema_problems(module.SCHEMA, data):
        if ".".join(map(str, path)) not in converted:
            found.append(_problem(doc, tuple(path), message, address_hint))
    if found:
        problems += found
        return None
    name = data["name"]
    spec = data.get("spec") or {}
    address = Address(module.ADDRESS_KIND, name, data.get("stream", ""))
    if spec.get("name") not in (None, name):
        problems.append(
            _problem(
                doc, ("spec", "name"), f"spec.name {spec['name']!r} differs from name {name!r}", str(address)
            )
        )
    config = module.to_config(name, spec)
    resource = Resource(address, config, doc, spec, module.keep_live(spec))
    problems += _check_fields(resource)
    return resource


def _whole_floats(value: Any, path: tuple = ()) -> Iterable[tuple[tuple, float]]:
    """Floats such as 5.0, which JSON Schema counts as integers but the server refuses (10025): no
    JetStream configuration field takes a float. Other floats fail the schema's type check."""
    if isinstance(value, float) and value.is_integer():
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _whole_floats(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _whole_floats(item, (*path, i))


def _convert_units(doc, data: Any, pattern: tuple, done: tuple, unit: str, found: list, hint: str) -> None:
    """Replace human durations/sizes at `pattern` ("*" = every list item) with integers."""
    if not pattern or not isinstance(data, (dict, list)):
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        keys: Iterable = range(len(data)) if isinstance(data, list) else ()
    else:
        keys = [head] if isinstance(data, dict) and head in data else []
    for key in keys:
        if rest:
            _convert_units(doc, data[key], rest, (*done, key), unit, found, hint)
            continue
        value = data[key]
        if isinstance(value, (dict, list)) or value is None:
            continue  # the schema says what is wrong with it
        try:
            data[key] = parse_duration(value) if unit == "duration" else parse_size(value)
        except ValueError as exc:
            found.append(_problem(doc, (*done, key), str(exc), hint))


def _check_fields(r: Resource) -> list[Problem]:
    """Rules inside one resource that a JSON schema cannot say (or says badly)."""
    out: list[Problem] = []
    c, a = r.config, str(r.address)

    def bad(path: tuple, message: str) -> None:
        out.append(_problem(r.document, ("spec", *path), message, a))

    if r.address.kind == "consumer":
        if r.spec.get("durable_name") not in (None, r.address.name):
            bad(
                ("durable_name",),
                f"durable_name {r.spec['durable_name']!r} must equal name {r.address.name!r}",
            )
        if c.get("filter_subject") and c.get("filter_subjects"):
            bad(("filter_subjects",), "set either filter_subject or filter_subjects, not both")
        out += _pairwise_overlaps(r, "filter_subjects", c.get("filter_subjects") or [], "filter subjects")
        for i, subject in enumerate(_filters(c)):
            if (problem := subject_problem(subject)) is not None:
                bad(("filter_subjects", i) if c.get("filter_subjects") else ("filter_subject",), problem)
        push = bool(c.get("deliver_subject"))
        if push:
            problem = subject_problem(c["deliver_subject"])
            if problem is None and not is_literal(c["deliver_subject"]):
                problem = "deliver_subject cannot have wildcards"
            if problem is not None:
                bad(("deliver_subject",), problem)
        for field in ("deliver_group", "idle_heartbeat", "flow_control", "rate_limit_bps"):
            if c.get(field) and not push:
                bad((field,), f"{field} needs deliver_subject (it is for push consumers)")
        for field in ("max_waiting", "max_batch", "max_expires", "max_bytes"):
            if c.get(field) and push:
                bad((field,), f"{field} is for pull consumers; this one has deliver_subject")
        if c.get("direct"):
            bad(("direct",), "direct consumers must be ephemeral; a manifest declares durable consumers")
        if c.get("ack_policy") == "flow_control":  # 2.14+: acks ride on flow control (10218-10221)
            if not push:
                bad(("ack_policy",), "ack_policy flow_control needs deliver_subject (a push consumer)")
            for field in ("ack_wait", "backoff"):
                if c.get(field):
                    bad((field,), f"ack_policy flow_control takes no {field}")
            if c.get("idle_heartbeat") not in (None, 1_000_000_000):
                bad(("idle_heartbeat",), "ack_policy flow_control needs idle_heartbeat 1s (or leave it out)")
        backoff = c.get("backoff") or []
        if backoff:
            if c.get("ack_policy", "none") == "none":
                bad(("backoff",), "backoff needs an ack_policy other than none")
            max_deliver = c.get("max_deliver", -1)
            if max_deliver not in (-1, 0) and max_deliver <= len(backoff):
                bad(("max_deliver",), f"max_deliver must be more than the {len(backoff)} backoff values")
            if c.get("ack_wait") and c["ack_wait"] != backoff[0]:
                bad(("ack_wait",), "ack_wait must equal the first backoff value (the server would change it)")
        return out
    if c.get("mirror"):
        for field in ("subjects", "sources"):
            if c.get(field):
                bad((field,), f"a mirror cannot have {field}")
    for i, subject in enumerate(c.get("subjects") or []):
        if (problem := subject_problem(subject)) is not None:
            bad(("subjects", i), problem)
    if r.address.kind == "stream":  # buckets get their subjects from the tool
        out += _pairwise_overlaps(r, "subjects", c.get("subjects") or [], "subjects")
    if c.get("deny_purge") and c.get("allow_rollup_hdrs"):
        bad(("allow_rollup_hdrs",), "roll-ups need the purge permission; deny_purge forbids it")
    if c.get("subject_delete_marker_ttl") and not c.get("allow_msg_ttl") and r.address.kind == "stream":
        bad(("subject_delete_marker_ttl",), "subject_delete_marker_ttl needs allow_msg_ttl: true")
    if c.get("subject_delete_marker_ttl") and not c.get("allow_rollup_hdrs") and r.address.kind == "stream":
        bad(("subject_delete_marker_ttl",), "subject_delete_marker_ttl needs allow_rollup_hdrs: true")
    window, age = c.get("duplicate_window", 0), c.get("max_age", 0)
    if window and age and window > age:
        bad(("duplicate_window",), "duplicate_window cannot be longer than max_age")
    if (c.get("placement") or {}).get("preferred"):
        bad(("placement", "preferred"), "placement.preferred is not allowed when a stream is created")
    if c.get("allow_msg_schedules") and c.get("discard") == "new":
        bad(("allow_msg_schedules",), "message schedules cannot be used with discard: new")
    if c.get("allow_msg_schedules") and not c.get("allow_rollup_hdrs"):
        bad(("allow_msg_schedules",), "message schedules need allow_rollup_hdrs: true")
    if c.get("allow_msg_counter"):
        for field, why in (("allow_msg_ttl", "message TTLs"), ("mirror", "a mirror")):
            if c.get(field):
                bad((field,), f"a counter stream (allow_msg_counter) cannot have {why}")
        if c.get("discard") == "new":
            bad(("discard",), "a counter stream (allow_msg_counter) cannot use discard: new")
    for i, source in enumerate(c.get("sources") or []):
        if isinstance(source, dict) and source.get("consumer") and source.get("filter_subject"):
            bad(
                ("sources", i, "filter_subject"), "a source with a consumer cannot also have a filter_subject"
            )
    return out


def _pairwise_overlaps(r: Resource, field: str, subjects: list, what: str) -> list[Problem]:
    """The server refuses a stream whose subjects overlap (10052), or a consumer whose filters do (10138)."""
    valid = [(i, s) for i, s in enumerate(subjects) if isinstance(s, str) and subject_problem(s) is None]
    out = []
    for _, a, j, b in overlapping_pairs(valid):
        path = ("spec", field, j)
        message = f"{b!r} overlaps {a!r}; {what} must not overlap"
        out.append(Problem(r.where(*path), message, str(r.address), ".".join(map(str, path))))
    return out


def _filters(config: dict) -> list[str]:
    if config.get("filter_subjects"):
        return list(config["filter_subjects"])
    return [config["filter_subject"]] if config.get("filter_subject") else []


def _check_set(resources: list[Resource]) -> list[Problem]:
    """Rules across resources: duplicates, consumers and their streams, work-queue filters, cycles."""
    out: list[Problem] = []
    by_stream: dict[str, Resource] = {}
    seen: dict[Address, Resource] = {}
    for r in resources:
        key = r.address if not r.address.is_stream else Address("stream", r.address.stream_name)
        if key in seen:
            first = seen[key].where("name")
            out.append(Problem(r.where("name"), f"declared twice; first at {first}", str(r.address), "name"))
            continue
        seen[key] = r
        if r.address.is_stream:
            by_stream[r.address.stream_name] = r
    for stream_name, group in _consumers_by_stream(resources).items():
        if stream_name in by_stream:  # otherwise it may exist on the server: check_against_server
            out += _check_consumers_of(stream_name, by_stream[stream_name].config, group)
    out += _check_cycles(by_stream)
    out += _check_streams_disjoint(list(by_stream.values()))
    return out


def _check_streams_disjoint(streams: list[Resource]) -> list[Problem]:
    """Two streams may not listen on overlapping subjects (10065 subjects overlap with an existing stream)."""
    items = [
        ((r, i), s)
        for r in streams
        if r.address.kind == "stream"
        for i, s in enumerate(r.config.get("subjects") or [])
        if isinstance(s, str) and not subject_problem(s)
    ]
    out = []
    for (a, _), theirs, (b, i), mine in overlapping_pairs(items, limit=50):
        if a is b:
            continue  # within one stream: _pairwise_overlaps says so
        path = ("spec", "subjects", i)
        where = a.where("spec", "subjects")
        message = f"{mine!r} overlaps {theirs!r} of {a.address} at {where}; streams cannot share subjects"
        out.append(Problem(b.where(*path), message, str(b.address), ".".join(map(str, path))))
    return out


def _consumers_by_stream(resources: list[Resource]) -> dict[str, list[Resource]]:
    consumers: dict[str, list[Resource]] = defaultdict(list)
    for r in resources:
        if r.address.kind == "consumer":
            consumers[r.address.stream].append(r)
    return consumers


def _filter_path(config: dict, index: int) -> tuple:
    return ("spec", "filter_subjects", index) if config.get("filter_subjects") else ("spec", "filter_subject")


def _check_consumers_of(
    stream_name: str, sc: dict, group: list[Resource], live: dict[str, dict] | None = None
) -> list[Problem]:
    """A stream's declared consumers against its subjects and, on a work queue, against each other and
    against the consumers already on the server that the manifests do not declare (`live`)."""
    out: list[Problem] = []
    subjects = sc.get("subjects") or []
    transformed = sc.get("subject_transform") or sc.get("sources") or sc.get("mirror")
    for r in group:
        for i, f in enumerate(_filters(r.config)):
            if subjects and not transformed and not any(overlaps(f, s) for s in subjects):
                path = _filter_path(r.config, i)
                out.append(
                    Problem(
                        r.where(*path),
                        f"filter {f!r} matches none of stream {stream_name}'s subjects {subjects}",
                        str(r.address),
                        ".".join(map(str, path)),
                    )
                )
    if (sc.get("consumer_limits") or {}).get("max_ack_pending"):
        for r in group:
            if r.config.get("ack_policy", "none") == "none" and r.config.get("deliver_subject"):
                # The server copies the limit into the consumer, then refuses it (10082), on every version.
                why = (
                    f"stream {stream_name} sets consumer_limits.max_ack_pending, which the server cannot "
                    "apply to a push consumer with ack_policy none"
                )
                out.append(Problem(r.where("spec", "ack_policy"), why, str(r.address), "spec.ack_policy"))
    if sc.get("retention") in ("workqueue", "interest"):
        replicas = sc.get("num_replicas") or 1
        for r in group:
            # 10134: on these streams a consumer keeps the stream's replica count (0 inherits it).
            if r.config.get("num_replicas") and r.config["num_replicas"] != replicas:
                kind = "work-queue" if sc["retention"] == "workqueue" else "interest"
                why = (
                    f"consumers of {kind} stream {stream_name} must have its replica count "
                    f"({replicas}) or leave num_replicas out"
                )
                out.append(Problem(r.where("spec", "num_replicas"), why, str(r.address), "spec.num_replicas"))
    if sc.get("retention") != "workqueue":
        return out
    where = f"work-queue stream {stream_name}"
    for r in group:
        for field, allowed, need in (
            ("ack_policy", ("explicit", "flow_control"), "ack_policy: explicit"),
            ("deliver_policy", ("all",), "deliver_policy: all"),
        ):
            if r.config.get(field, CONSUMER_DEFAULTS[field]) not in allowed:
                out.append(
                    Problem(
                        r.where("spec", field),
                        f"consumers of {where} need {need}",
                        str(r.address),
                        f"spec.{field}",
                    )
                )
    declared = {r.address.name for r in group}
    others = {name: config for name, config in (live or {}).items() if name not in declared}
    total = len(group) + len(others)
    for r in group:
        if not _filters(r.config) and total > 1:
            out.append(
                Problem(
                    r.where("name"),
                    f"{where} allows an unfiltered consumer only when it is the only consumer",
                    str(r.address),
                    "spec.filter_subject",
                )
            )
    # Each declared consumer against the live ones and the declared ones before it.
    items: list[tuple[tuple[Resource | None, str, int], str]] = [
        ((None, f"consumer {n} on the server", 0), f) for n, c in others.items() for f in _filters(c)
    ]
    items += [
        ((r, f"{r.address} at {r.where('spec')}", i), f)
        for r in group
        for i, f in enumerate(_filters(r.config))
    ]
    reported: set[int] = set()
    for (_, label, _), theirs, (r, _, i), mine in overlapping_pairs(items, limit=50):
        if r is None or id(r) in reported:
            continue
        reported.add(id(r))
        path = _filter_path(r.config, i)
        message = f"filter {mine!r} overlaps {theirs!r} of {label}; filters on {where} must not overlap"
        out.append(Problem(r.where(*path), message, str(r.address), ".".join(map(str, path))))
    unfiltered_live = [n for n, c in others.items() if not _filters(c)]
    for name in unfiltered_live:
        for r in group:
            out.append(
                Problem(
                    r.where("name"),
                    f"{where} already has the unfiltered consumer {name}; it allows no other consumer",
                    str(r.address),
                    "spec.filter_subject",
                )
            )
    return out


def _check_cycles(by_stream: dict[str, Resource]) -> list[Problem]:
    """Sources and mirrors must form no cycle. Iterative: a chain of thousands of streams is fine."""
    out: list[Problem] = []
    state: dict[str, str] = {}

    def link(r: Resource, dep: str) -> tuple:
        """The manifest path of the source or mirror of `r` that names stream `dep`."""
        if (r.config.get("mirror") or {}).get("name") == dep:
            return ("spec", "mirror")
        for i, source in enumerate(r.config.get("sources") or []):
            if source.get("name") == dep:
                return ("spec", "sources", i)
        return ("spec",)

    for root in sorted(by_stream):
        if root in state:
            continue
        trail: list[str] = [root]
        stack = [iter(by_stream[root].depends_on)]
        state[root] = "active"
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                state[trail.pop()] = "done"
                stack.pop()
                continue
            if dep not in by_stream or state.get(dep) == "done":
                continue
            if state.get(dep) == "active":
                cycle = [*trail[trail.index(dep) :], dep]
                r = by_stream[cycle[0]]  # report where the cycle starts: its link to the next stream
                path = link(r, cycle[1])
                message = "sources/mirror form a cycle: " + " -> ".join(cycle)
                out.append(Problem(r.where(*path), message, str(r.address), ".".join(map(str, path))))
                continue
            state[dep] = "active"
            trail.append(dep)
            stack.append(iter(by_stream[dep].depends_on))
    return out


def check_against_server(
    resources: list[Resource],
    live_streams: dict[str, dict],
    server: Server,
    live_consumers: dict[str, dict[str, dict]] | None = None,
) -> None:
    """Rules that need the live server: a consumer's stream exists, its work-queue rules hold against the
    consumers already there, and every field is one the server version knows."""
    out: list[Problem] = []
    declared = {r.address.stream_name for r in resources if r.address.is_stream}
    for stream_name, group in _consumers_by_stream(resources).items():
        if stream_name in declared:
            continue
        if stream_name not in live_streams:
            for r in group:
                out.append(
                    Problem(
                        r.where("stream"),
                        f"stream {stream_name!r} is neither declared in the manifests nor on the server",
                        str(r.address),
                        "stream",
                    )
                )
            continue
        live = (live_consumers or {}).get(stream_name, {})
        out += _check_consumers_of(stream_name, live_streams[stream_name], group, live)
    if not server.knows_every_field:
        for r in resources:
            out += _version_problems(r, "consumer" if r.address.kind == "consumer" else "stream", server)
    if out:
        raise ManifestError(out)


def _version_problems(r: Resource, kind: str, server: Server) -> list[Problem]:
    out = []
    config = canonical_stream(r.config, server) if kind == "stream" else r.config
    spec_field = _KV_SPEC_FIELDS if r.address.kind == "kv" else {}
    reported = set()
    for field, value in config.items():
        needed = server.field_since(kind, field) or server.value_since(kind, field, value)
        nested = server.field_since("stream", "sources.*.consumer")
        if field == "sources" and not needed and nested and any(s.get("consumer") for s in value):
            needed, field = nested, "sources.consumer"
        shown = spec_field.get(field, field)
        if needed and shown not in reported:
            reported.add(shown)
            what = f"{shown}: {value}" if field in ("priority_policy", "ack_policy") else shown
            out.append(
                Problem(
                    r.where("spec", shown.split(".")[0]),
                    f"{what} needs nats-server {show(needed)} or newer; the server is {server}",
                    str(r.address),
                    f"spec.{shown}",
                )
            )
    return out


# Wire fields of a KV bucket stream, by the spec field that sets them (for error messages).
_KV_SPEC_FIELDS = {"allow_msg_ttl": "limit_marker_ttl", "subject_delete_marker_ttl": "limit_marker_ttl"}
