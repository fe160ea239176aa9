"""validate.py: schema and semantic rules, each problem with its location, resource and field path."""

from __future__ import annotations

import textwrap

import pytest

from reconciler.api import load
from reconciler.errors import ManifestError
from reconciler.load import load_manifests, parse_text
from reconciler.validate import check_against_server, validate
from reconciler.versions import Server

S = 1_000_000_000
M = 60 * S
H = 60 * M
D = 24 * H
GiB = 1024**3
OLD = Server(version=(2, 10, 25))
NEW = Server(version=(2, 15, 1))

NAME_RULE = "must not contain '.', '*', '>', '/', '\\', whitespace or control characters"


def docs(text: str, name: str = "m.yaml"):
    documents, problems = parse_text(textwrap.dedent(text).lstrip("\n"), name, {})
    assert problems == []
    return documents


def resources(text: str):
    return validate(docs(text))


def problems(text: str) -> list[tuple[int, str, str, str]]:
    """(line, resource, field, message) of every problem, in the order they are reported."""
    with pytest.raises(ManifestError) as caught:
        validate(docs(text))
    return [(p.location.line, p.resource, p.field, p.message) for p in caught.value.problems]


def only(text: str) -> tuple[int, str, str, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def config(text: str, address: str) -> dict:
    return next(r.config for r in resources(text) if str(r.address) == address)


# --- documents and schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", (1, "", "", "a manifest document must be a mapping with kind, name and spec")),
        (
            "name: X\n",
            (1, "", "", "missing field 'kind'; expected one of Stream, Consumer, KeyValue, ObjectStore"),
        ),
        (
            "name: X\nkind: Streams\n",
            (
                2,
                "",
                "kind",
                "unknown kind 'Streams'; expected one of Stream, Consumer, KeyValue, ObjectStore",
            ),
        ),
        ("kind: Stream\nspec: {}\n", (1, "stream/?", "", "required field 'name' is missing")),
        ("kind: Consumer\nname: c\n", (1, "consumer/?/c", "", "required field 'stream' is missing")),
        ("kind: Stream\nname: X\nextra: 1\n", (3, "stream/X", "extra", "unknown field 'extra'")),
        ("kind: Stream\nname: X\nspec: [1]\n", (3, "stream/X", "spec", "expected an object, got a list")),
        ("kind: Stream\nname: 5\n", (2, "stream/5", "name", "expected a string, got 5")),
        ("kind: Stream\nname: ''\n", (2, "stream/", "name", "must not be empty")),
        (
            "kind: Stream\nname: A.B\n",
            (
                2,
                "stream/A.B",
                "name",
                NAME_RULE,
            ),
        ),
        (
            "kind: Stream\nname: A B\n",
            (
                2,
                "stream/A B",
                "name",
                NAME_RULE,
            ),
        ),
        (
            "kind: Consumer\nname: c>\nstream: S\n",
            (
                2,
                "consumer/S/c>",
                "name",
                NAME_RULE,
            ),
        ),
        (
            "kind: KeyValue\nname: a.b\n",
            (2, "kv/a.b", "name", "may only contain letters, digits, '_' and '-'"),
        ),
        (
            "kind: ObjectStore\nname: a b\n",
            (2, "objectstore/a b", "name", "may only contain letters, digits, '_' and '-'"),
        ),
    ],
)
def test_document_problems(text, expected):
    assert only(text) == expected


@pytest.mark.parametrize("kind", ["[Stream]", "{a: 1}"])
def test_kind_that_is_not_a_string(kind):
    line, _, field, message = only(f"kind: {kind}\nname: X\n")
    assert (line, field) == (1, "kind")
    assert "unknown kind" in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("max_agee: 1h", (4, "spec.max_agee", "unknown field 'max_agee'")),
        ("max_msgs: lots", (4, "spec.max_msgs", "expected an integer, got 'lots'")),
        ("retention: forever", (4, "spec.retention", "must be one of: limits, interest, workqueue")),
        (
            "max_age: 10 parsecs",
            (
                4,
                "spec.max_age",
                "'10 parsecs' is not a duration; write 30s, 500ms, 1h30m, 7d, or an integer of nanoseconds",
            ),
        ),
        (
            "max_bytes: 1 GiBs",
            (4, "spec.max_bytes", "'1 GiBs' is not a size; write 512KiB, 1GiB, 10MB, or an integer of bytes"),
        ),
        ("max_age: -5", (4, "spec.max_age", "a duration cannot be negative, got -5")),
        ("num_replicas: 7", (4, "spec.num_replicas", "must be at most 5")),
        ("subjects: jobs.>", (4, "spec.subjects", "expected a list, got 'jobs.>'")),
        ("subjects: [jobs, 5]", (4, "spec.subjects.1", "expected a string, got 5")),
        ("sources: [{name: 5}]", (4, "spec.sources.0.name", "expected a string, got 5")),
        ("metadata: {team: 1}", (4, "spec.metadata.team", "expected a string, got 1")),
        ("deny_delete: yes", (4, "spec.deny_delete", "expected true or false, got 'yes'")),
    ],
)
def test_schema_problems_have_field_path_and_line(spec, expected):
    line, resource, field, message = only(f"kind: Stream\nname: X\nspec:\n  {spec}\n")
    assert resource == "stream/X"
    assert (line, field, message) == expected


def test_schema_problem_in_a_flow_mapping_points_at_the_key():
    found = only("kind: Stream\nname: X\nspec: {subjects: [a], max_msgs: lots}\n")
    assert found[:3] == (3, "stream/X", "spec.max_msgs")
    doc = docs("kind: Stream\nname: X\nspec: {subjects: [a], max_msgs: lots}\n")[0]
    assert doc.where(("spec", "max_msgs")).column == 23


def test_all_problems_of_all_documents_at_once():
    found = problems(
        """
        kind: Stream
        name: A
        spec:
          max_agee: 1h
          max_msgs: lots
        ---
        kind: Consumer
        stream: A
        name: c
        spec:
          ack_wait: soon
          durable_name: d
        ---
        kind: Nope
        """
    )
    assert [(line, field) for line, _, field, _ in found] == [
        (4, "spec.max_agee"),
        (5, "spec.max_msgs"),
        (11, "spec.ack_wait"),
        (14, "kind"),
    ]


def test_units_are_converted_before_the_schema():
    c = config(
        """
        kind: Stream
        name: X
        spec:
          max_age: 24h
          duplicate_window: 2m
          max_bytes: 1GiB
          max_msg_size: 512KiB
          subject_delete_marker_ttl: 5m
          allow_msg_ttl: true
          allow_rollup_hdrs: true
          consumer_limits: {inactive_threshold: 1h}
        """,
        "stream/X",
    )
    assert c["max_age"] == D
    assert c["duplicate_window"] == 2 * M
    assert c["max_bytes"] == GiB
    assert c["max_msg_size"] == 512 * 1024
    assert c["subject_delete_marker_ttl"] == 5 * M
    assert c["consumer_limits"] == {"inactive_threshold": H}


def test_consumer_units_including_lists():
    c = config(
        """
        kind: Consumer
        stream: S
        name: c
        spec:
          ack_policy: explicit
          ack_wait: 10s
          backoff: [10s, 1m, 5m]
          max_deliver: 5
          inactive_threshold: 1h
          max_expires: 30s
        """,
        "consumer/S/c",
    )
    assert c["ack_wait"] == 10 * S
    assert c["backoff"] == [10 * S, M, 5 * M]
    assert c["inactive_threshold"] == H
    assert c["max_expires"] == 30 * S


def test_a_bad_list_item_is_reported_at_the_item():
    line, _, field, message = only(consumer("ack_policy: explicit\nbackoff: [1s, soon]"))
    assert (line, field) == (6, "spec.backoff.1")
    assert message == "'soon' is not a duration; write 30s, 500ms, 1h30m, 7d, or an integer of nanoseconds"


def test_schema_problems_of_a_consumer_name_its_stream():
    assert only(consumer("ack_wait: soon"))[1] == "consumer/S/c"


def test_empty_spec_means_all_defaults():
    (r,) = resources("kind: Stream\nname: X\nspec:\n")
    assert r.config == {"subjects": ["X"]}  # the server's default: a stream listens on its own name
    (r,) = resources("kind: Stream\nname: X\n")
    assert r.config == {"subjects": ["X"]}


def test_spec_name_and_durable_name_are_implied():
    rs = resources(
        """
        kind: Stream
        name: X
        spec: {name: X, subjects: [x]}
        ---
        kind: Consumer
        stream: X
        name: c
        spec: {name: c, durable_name: c, filter_subject: x}
        """
    )
    assert [r.config for r in rs] == [{"subjects": ["x"]}, {"filter_subject": "x"}]


def test_spec_name_that_differs():
    assert only("kind: Stream\nname: X\nspec:\n  name: Y\n") == (
        4,
        "stream/X",
        "spec.name",
        "spec.name 'Y' differs from name 'X'",
    )


def test_validate_does_not_change_the_documents():
    documents = docs("kind: Stream\nname: X\nspec:\n  max_age: 1h\n")
    validate(documents)
    assert documents[0].data["spec"]["max_age"] == "1h"


# --- rules inside one resource (_check_fields) ------------------------------------------------------

# Each rule: a spec whose line marked `# <-` is the one the problem must point at, its field, its message.
CONSUMER_RULES = {
    "durable_name": (
        "durable_name: other  # <-",
        "spec.durable_name",
        "durable_name 'other' must equal name 'c'",
    ),
    "filter-subject-and-subjects": (
        "filter_subject: a\nfilter_subjects: [b]  # <-",
        "spec.filter_subjects",
        "set either filter_subject or filter_subjects, not both",
    ),
    "bad-filter": ("filter_subject: a..b  # <-", "spec.filter_subject", "subject 'a..b' has an empty token"),
    "bad-filter-in-list": (
        "filter_subjects:\n  - a\n  - a.>.b  # <-",
        "spec.filter_subjects.1",
        "subject 'a.>.b': '>' must be a whole token at the end",
    ),
    "deliver_group-on-pull": (
        "deliver_group: g  # <-",
        "spec.deliver_group",
        "deliver_group needs deliver_subject (it is for push consumers)",
    ),
    "idle_heartbeat-on-pull": (
        "idle_heartbeat: 5s  # <-",
        "spec.idle_heartbeat",
        "idle_heartbeat needs deliver_subject (it is for push consumers)",
    ),
    "flow_control-on-pull": (
        "flow_control: true  # <-",
        "spec.flow_control",
        "flow_control needs deliver_subject (it is for push consumers)",
    ),
    "rate_limit-on-pull": (
        "rate_limit_bps: 1000  # <-",
        "spec.rate_limit_bps",
        "rate_limit_bps needs deliver_subject (it is for push consumers)",
    ),
    "max_waiting-on-push": (
        "deliver_subject: out\nmax_waiting: 5  # <-",
        "spec.max_waiting",
        "max_waiting is for pull consumers; this one has deliver_subject",
    ),
    "max_batch-on-push": (
        "deliver_subject: out\nmax_batch: 5  # <-",
        "spec.max_batch",
        "max_batch is for pull consumers; this one has deliver_subject",
    ),
    "max_expires-on-push": (
        "deliver_subject: out\nmax_expires: 5s  # <-",
        "spec.max_expires",
        "max_expires is for pull consumers; this one has deliver_subject",
    ),
    "max_bytes-on-push": (
        "deliver_subject: out\nmax_bytes: 1KiB  # <-",
        "spec.max_bytes",
        "max_bytes is for pull consumers; this one has deliver_subject",
    ),
    "direct": (
        "direct: true  # <-",
        "spec.direct",
        "direct consumers must be ephemeral; a manifest declares durable consumers",
    ),
    "backoff-without-acks": (
        "backoff: [1s, 5s]  # <-",
        "spec.backoff",
        "backoff needs an ack_policy other than none",
    ),
    "max_deliver-vs-backoff": (
        "ack_policy: explicit\nbackoff: [1s, 5s]\nmax_deliver: 2  # <-",
        "spec.max_deliver",
        "max_deliver must be more than the 2 backoff values",
    ),
    "ack_wait-vs-backoff": (
        "ack_policy: explicit\nbackoff: [1s, 5s]\nack_wait: 30s  # <-",
        "spec.ack_wait",
        "ack_wait must equal the first backoff value (the server would change it)",
    ),
}


def marked_line(text: str) -> int:
    (line,) = [i for i, text_line in enumerate(text.splitlines(), 1) if text_line.endswith("# <-")]
    return line


def consumer(spec: str) -> str:
    return "kind: Consumer\nstream: S\nname: c\nspec:\n" + textwrap.indent(spec, "  ") + "\n"


@pytest.mark.parametrize(("spec", "field", "message"), CONSUMER_RULES.values(), ids=CONSUMER_RULES)
def test_consumer_rules(spec, field, message):
    text = consumer(spec)
    assert only(text) == (marked_line(text), "consumer/S/c", field, message)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(
            "deliver_subject: out\ndeliver_group: g\nidle_heartbeat: 5s\nflow_control: true", id="push"
        ),
        pytest.param("max_waiting: 5\nmax_batch: 10\nmax_expires: 30s\nmax_bytes: 1MiB", id="pull"),
        pytest.param("ack_policy: explicit\nbackoff: [1s, 5s]\nack_wait: 1s\nmax_deliver: 3", id="backoff"),
        pytest.param("ack_policy: explicit\nbackoff: [1s, 5s]\nmax_deliver: -1", id="backoff-unlimited"),
        pytest.param("filter_subjects: [a, b.*, c.>]", id="filters"),
        pytest.param("durable_name: c", id="durable_name-same"),
    ],
)
def test_consumers_that_keep_the_rules(spec):
    (r,) = resources(consumer(spec))
    assert str(r.address) == "consumer/S/c"


STREAM_RULES = {
    "mirror-with-subjects": (
        "mirror: {name: O}\nsubjects: [a]  # <-",
        "spec.subjects",
        "a mirror cannot have subjects",
    ),
    "mirror-with-sources": (
        "mirror: {name: O}\nsources: [{name: P}]  # <-",
        "spec.sources",
        "a mirror cannot have sources",
    ),
    "bad-subject": (
        "subjects:\n  - a\n  - 'b c'  # <-",
        "spec.subjects.1",
        "subject 'b c' contains whitespace",
    ),
    "rollup-and-deny_purge": (
        "deny_purge: true\nallow_rollup_hdrs: true  # <-",
        "spec.allow_rollup_hdrs",
        "roll-ups need the purge permission; deny_purge forbids it",
    ),
    "marker-needs-ttl": (
        "subject_delete_marker_ttl: 5m  # <-\nallow_rollup_hdrs: true",
        "spec.subject_delete_marker_ttl",
        "subject_delete_marker_ttl needs allow_msg_ttl: true",
    ),
    "marker-needs-rollup": (
        "subject_delete_marker_ttl: 5m  # <-\nallow_msg_ttl: true",
        "spec.subject_delete_marker_ttl",
        "subject_delete_marker_ttl needs allow_rollup_hdrs: true",
    ),
    "duplicate_window-vs-max_age": (
        "max_age: 1h\nduplicate_window: 2h  # <-",
        "spec.duplicate_window",
        "duplicate_window cannot be longer than max_age",
    ),
    "placement-preferred": (
        "placement:\n  cluster: east\n  preferred: n1  # <-",
        "spec.placement.preferred",
        "placement.preferred is not allowed when a stream is created",
    ),
    "schedules-and-discard-new": (
        "allow_msg_schedules: true  # <-\nallow_rollup_hdrs: true\ndiscard: new",
        "spec.allow_msg_schedules",
        "message schedules cannot be used with discard: new",
    ),
}


def stream(spec: str, name: str = "X") -> str:
    return f"kind: Stream\nname: {name}\nspec:\n" + textwrap.indent(spec, "  ") + "\n"


@pytest.mark.parametrize(("spec", "field", "message"), STREAM_RULES.values(), ids=STREAM_RULES)
def test_stream_rules(spec, field, message):
    text = stream(spec)
    assert only(text) == (marked_line(text), "stream/X", field, message)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("mirror: {name: O}", id="mirror"),
        pytest.param(
            "subject_delete_marker_ttl: 5m\nallow_msg_ttl: true\nallow_rollup_hdrs: true", id="markers"
        ),
        pytest.param("max_age: 1h\nduplicate_window: 1h", id="window-equal-age"),
        pytest.param("duplicate_window: 2h", id="window-without-age"),
        pytest.param("placement: {cluster: east, tags: [ssd]}", id="placement"),
        pytest.param("allow_msg_schedules: true\nallow_rollup_hdrs: true", id="schedules"),
        pytest.param("deny_purge: true", id="deny_purge"),
    ],
)
def test_streams_that_keep_the_rules(spec):
    (r,) = resources(stream(spec))
    assert str(r.address) == "stream/X"


@pytest.mark.parametrize("subjects", ["[ev.>, ev.a]", "[ev.a, ev.a]"])
def test_overlapping_subjects_in_one_stream(subjects):
    line, _, field, message = only(stream(f"subjects: {subjects}"))
    assert (line, field) == (4, "spec.subjects.1")
    assert "overlap" in message


@pytest.mark.parametrize("filters", ["[ev.>, ev.a]", "[ev.a, ev.a]"])
def test_overlapping_filters_in_one_consumer(filters):
    line, _, field, message = only(consumer(f"filter_subjects: {filters}"))
    assert (line, field) == (5, "spec.filter_subjects.1")
    assert "overlap" in message


# --- rules across resources (_check_set) ------------------------------------------------------------


def test_same_stream_twice_in_two_files(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: Stream\nname: JOBS\n")
    (tmp_path / "b.yaml").write_text("# again\nkind: Stream\nname: JOBS\n")
    with pytest.raises(ManifestError) as caught:
        validate(load_manifests([tmp_path], env={}))
    (p,) = caught.value.problems
    assert (
        str(p) == f"{tmp_path}/b.yaml:3:1: stream/JOBS name: declared twice; first at {tmp_path}/a.yaml:2:1"
    )


@pytest.mark.parametrize(
    ("first", "second", "resource", "line", "first_line"),
    [
        ("kind: KeyValue\nname: jobs", "kind: Stream\nname: KV_jobs", "stream/KV_jobs", 5, 2),
        ("kind: ObjectStore\nname: art", "kind: Stream\nname: OBJ_art", "stream/OBJ_art", 5, 2),
        ("kind: KeyValue\nname: jobs", "kind: KeyValue\nname: jobs", "kv/jobs", 5, 2),
        ("kind: Consumer\nstream: S\nname: c", "kind: Consumer\nstream: S\nname: c", "consumer/S/c", 7, 3),
    ],
)
def test_duplicates_are_by_the_stream_behind_them(first, second, resource, line, first_line):
    assert only(f"{first}\n---\n{second}\n") == (
        line,
        resource,
        "name",
        f"declared twice; first at m.yaml:{first_line}:1",
    )


def test_same_consumer_name_on_two_streams_is_fine():
    rs = resources(
        """
        kind: Consumer
        stream: A
        name: c
        ---
        kind: Consumer
        stream: B
        name: c
        """
    )
    assert [str(r.address) for r in rs] == ["consumer/A/c", "consumer/B/c"]


def jobs(retention: str = "workqueue", extra: str = "") -> str:
    spec = f"  subjects: [jobs.>, tasks.*]\n  retention: {retention}\n{extra}"
    return f"kind: Stream\nname: JOBS\nspec:\n{spec}---\n"


def jobs_consumer(name: str, spec: str) -> str:
    return f"kind: Consumer\nstream: JOBS\nname: {name}\nspec:\n" + textwrap.indent(spec, "  ") + "\n---\n"


def test_filter_outside_the_stream_subjects():
    text = jobs("limits") + jobs_consumer("c", "filter_subject: orders.new")
    assert only(text) == (
        11,
        "consumer/JOBS/c",
        "spec.filter_subject",
        "filter 'orders.new' matches none of stream JOBS's subjects ['jobs.>', 'tasks.*']",
    )


def test_filter_outside_the_stream_subjects_in_a_list():
    text = jobs("limits") + jobs_consumer("c", "filter_subjects:\n  - jobs.a\n  - tasks.a.b")
    assert only(text)[:3] == (13, "consumer/JOBS/c", "spec.filter_subjects.1")


@pytest.mark.parametrize(
    "extra", ["  subject_transform: {src: 'jobs.>', dest: 'x.>'}\n", "  sources: [{name: OTHER}]\n"]
)
def test_filters_are_not_checked_on_transformed_streams(extra):
    text = jobs("limits", extra) + jobs_consumer("c", "filter_subject: x.a")
    assert [str(r.address) for r in resources(text)] == ["stream/JOBS", "consumer/JOBS/c"]


def test_filters_within_the_stream_subjects_are_fine():
    text = (
        jobs("limits")
        + jobs_consumer("a", "filter_subject: jobs.a.>")
        + jobs_consumer("b", "filter_subject: tasks.*")
    )
    assert len(resources(text)) == 3


@pytest.mark.parametrize(
    ("spec", "line", "field", "message"),
    [
        (
            "ack_policy: none\nfilter_subject: jobs.a",
            11,
            "spec.ack_policy",
            "consumers of work-queue stream JOBS need ack_policy: explicit",
        ),
        (
            "filter_subject: jobs.a",
            10,
            "spec.ack_policy",
            "consumers of work-queue stream JOBS need ack_policy: explicit",
        ),
        (
            "ack_policy: all\nfilter_subject: jobs.a",
            11,
            "spec.ack_policy",
            "consumers of work-queue stream JOBS need ack_policy: explicit",
        ),
        (
            "ack_policy: explicit\ndeliver_policy: new\nfilter_subject: jobs.a",
            12,
            "spec.deliver_policy",
            "consumers of work-queue stream JOBS need deliver_policy: all",
        ),
    ],
)
def test_workqueue_consumer_policies(spec, line, field, message):
    assert only(jobs() + jobs_consumer("c", spec)) == (line, "consumer/JOBS/c", field, message)


def test_workqueue_allows_one_unfiltered_consumer():
    assert len(resources(jobs() + jobs_consumer("all", "ack_policy: explicit"))) == 2


def test_workqueue_refuses_unfiltered_consumers_next_to_others():
    text = (
        jobs() + jobs_consumer("one", "ack_policy: explicit") + jobs_consumer("two", "ack_policy: explicit")
    )
    message = "work-queue stream JOBS allows an unfiltered consumer only when it is the only consumer"
    assert problems(text) == [
        (9, "consumer/JOBS/one", "spec.filter_subject", message),
        (15, "consumer/JOBS/two", "spec.filter_subject", message),
    ]


def test_workqueue_refuses_an_unfiltered_consumer_next_to_a_filtered_one():
    text = (
        jobs()
        + jobs_consumer("one", "ack_policy: explicit\nfilter_subject: jobs.a")
        + jobs_consumer("all", "ack_policy: explicit")
    )
    assert [(p[0], p[1]) for p in problems(text)] == [(16, "consumer/JOBS/all")]


def test_workqueue_refuses_overlapping_filters():
    text = (
        jobs()
        + jobs_consumer("a", "ack_policy: explicit\nfilter_subject: jobs.a")
        + jobs_consumer("everything", "ack_policy: explicit\nfilter_subject: jobs.>")
    )
    ((line, resource, field, message),) = problems(text)
    assert (resource, field) == ("consumer/JOBS/everything", "spec.filter_subject")
    assert message == (
        "filter 'jobs.>' overlaps 'jobs.a' of consumer/JOBS/a at m.yaml:10:1; "
        "filters on work-queue stream JOBS must not overlap"
    )
    assert 14 <= line <= 19  # within the second consumer's document; see the test below for the line


@pytest.mark.parametrize(
    ("spec", "line", "field"),
    [
        ("ack_policy: explicit\nfilter_subject: jobs.>", 19, "spec.filter_subject"),
        ("ack_policy: explicit\nfilter_subjects:\n  - tasks.x\n  - jobs.>", 21, "spec.filter_subjects.1"),
    ],
)
def test_workqueue_overlap_points_at_the_filter(spec, line, field):
    text = (
        jobs() + jobs_consumer("a", "ack_policy: explicit\nfilter_subject: jobs.a") + jobs_consumer("b", spec)
    )
    ((got_line, _, got_field, _),) = problems(text)
    assert (got_line, got_field) == (line, field)


def test_workqueue_overlap_with_wildcards_and_lists():
    text = (
        jobs()
        + jobs_consumer("a", "ack_policy: explicit\nfilter_subjects: [jobs.a.*, tasks.x]")
        + jobs_consumer("b", "ack_policy: explicit\nfilter_subjects: [jobs.b, tasks.*]")
    )
    ((_, resource, _, message),) = problems(text)
    assert resource == "consumer/JOBS/b"
    assert message.startswith("filter 'tasks.*' overlaps 'tasks.x' of consumer/JOBS/a")


def test_workqueue_disjoint_filters_are_fine():
    text = (
        jobs()
        + jobs_consumer("a", "ack_policy: explicit\nfilter_subject: jobs.a.>")
        + jobs_consumer("b", "ack_policy: explicit\nfilter_subjects: [jobs.b, jobs.c.*]")
        + jobs_consumer("c", "ack_policy: explicit\nfilter_subject: tasks.*")
    )
    assert len(resources(text)) == 4


def test_overlapping_filters_are_fine_on_a_limits_stream():
    text = (
        jobs("limits")
        + jobs_consumer("a", "filter_subject: jobs.a")
        + jobs_consumer("b", "filter_subject: jobs.>")
    )
    text += jobs_consumer("c", "deliver_policy: new")
    assert len(resources(text)) == 4


@pytest.mark.parametrize(("retention", "kind"), [("workqueue", "work-queue"), ("interest", "interest")])
def test_consumer_replicas_must_match_a_workqueue_or_interest_stream(retention, kind):
    # 10134 on every version: the stream would be created, then its consumer refused.
    text = jobs(retention, "  num_replicas: 3\n") + jobs_consumer(
        "c", "ack_policy: explicit\nfilter_subject: jobs.a\nnum_replicas: 1"
    )
    assert only(text) == (
        14,
        "consumer/JOBS/c",
        "spec.num_replicas",
        f"consumers of {kind} stream JOBS must have its replica count (3) or leave num_replicas out",
    )


@pytest.mark.parametrize(
    ("retention", "stream_replicas", "consumer_replicas"),
    [
        ("workqueue", "", ""),  # inherits
        ("workqueue", "  num_replicas: 3\n", "\nnum_replicas: 3"),
        ("workqueue", "", "\nnum_replicas: 1"),  # the stream's default, 1
        ("interest", "  num_replicas: 3\n", "\nnum_replicas: 0"),  # 0 inherits
        ("limits", "  num_replicas: 3\n", "\nnum_replicas: 1"),  # allowed on a limits stream
    ],
)
def test_consumer_replicas_the_server_takes(retention, stream_replicas, consumer_replicas):
    text = jobs(retention, stream_replicas) + jobs_consumer(
        "c", "ack_policy: explicit\nfilter_subject: jobs.a" + consumer_replicas
    )
    assert len(resources(text)) == 2


def test_consumer_replicas_against_a_workqueue_stream_on_the_server():
    live = {"JOBS": {"name": "JOBS", "subjects": ["jobs.>"], "retention": "workqueue", "num_replicas": 3}}
    rs = resources(jobs_consumer("c", "ack_policy: explicit\nnum_replicas: 1"))
    with pytest.raises(ManifestError) as caught:
        check_against_server(rs, live, NEW)
    assert [p.field for p in caught.value.problems] == ["spec.num_replicas"]


def test_consumers_of_an_undeclared_stream_are_left_to_the_server_check():
    text = jobs_consumer("a", "filter_subject: x") + jobs_consumer("b", "filter_subject: x")
    assert len(resources(text)) == 2


# --- cycles -----------------------------------------------------------------------------------------


def test_cycle_through_sources_and_mirror():
    text = """
    kind: Stream
    name: A
    spec:
      sources: [{name: B}]
    ---
    kind: Stream
    name: B
    spec:
      sources: [{name: C}]
    ---
    kind: Stream
    name: C
    spec:
      mirror: {name: A}
    """
    assert problems(text) == [
        (4, "stream/A", "spec.sources.0", "sources/mirror form a cycle: A -> B -> C -> A")
    ]


def test_a_stream_that_sources_itself():
    assert only(stream("sources: [{name: X}]")) == (
        4,
        "stream/X",
        "spec.sources.0",
        "sources/mirror form a cycle: X -> X",
    )


def test_two_separate_cycles_are_both_reported():
    text = (
        stream("sources: [{name: B}]", "A")
        + "---\n"
        + stream("sources: [{name: A}]", "B")
        + "---\n"
        + stream("mirror: {name: D}", "C")
        + "---\n"
        + stream("mirror: {name: C}", "D")
    )
    assert [p[3] for p in problems(text)] == [
        "sources/mirror form a cycle: A -> B -> A",
        "sources/mirror form a cycle: C -> D -> C",
    ]


def test_kv_buckets_cycle_by_their_streams():
    text = "kind: KeyValue\nname: a\nspec:\n  sources: [{name: b}]\n---\n"
    text += "kind: KeyValue\nname: b\nspec:\n  mirror: {name: a}\n"
    assert only(text) == (4, "kv/a", "spec.sources.0", "sources/mirror form a cycle: KV_a -> KV_b -> KV_a")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            stream("sources: [{name: B}]", "A") + "---\n" + stream("sources: [{name: C}]", "B"), id="chain"
        ),
        pytest.param(
            stream("sources: [{name: B}, {name: C}]", "A")
            + "---\n"
            + stream("sources: [{name: C}]", "B")
            + "---\n"
            + stream("subjects: [c]", "C"),
            id="diamond",
        ),
        pytest.param(
            stream("sources: [{name: B, external: {api: '$JS.hub.API'}}]", "A")
            + "---\n"
            + stream("sources: [{name: A}]", "B"),
            id="external-source",
        ),
    ],
)
def test_no_cycle(text):
    assert resources(text)


def test_cycle_through_a_mirror_names_the_mirror():
    text = stream("mirror: {name: B}", "A") + "---\n" + stream("sources: [{name: A}]", "B")
    assert only(text)[:3] == (4, "stream/A", "spec.mirror")


# --- all at once ------------------------------------------------------------------------------------


def test_load_problems_and_schema_problems_are_reported_together(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: Stream\nname: A\nspec:\n  description: ${NATS_RECONCILE_UNSET}\n")
    (tmp_path / "b.yaml").write_text("kind: Stream\nname: B\nspec:\n  max_agee: 1h\n")
    with pytest.raises(ManifestError) as caught:
        load([tmp_path], env={})
    assert sorted(p.location.file.rsplit("/", 1)[-1] for p in caught.value.problems) == ["a.yaml", "b.yaml"]


def test_document_problems_and_set_problems_are_reported_together():
    text = (
        stream("max_agee: 1h", "A")
        + "---\n"
        + stream("subjects: [b]", "B")
        + "---\n"
        + stream("subjects: [b]", "B")
    )
    assert [p[2] for p in problems(text)] == ["spec.max_agee", "name"]


# --- KeyValue and ObjectStore: the stream nats.go creates (ADR-8) -----------------------------------

KV_DEFAULTS = {
    "subjects": ["$KV.jobs.>"],
    "max_msgs_per_subject": 1,
    "max_bytes": -1,
    "max_age": 0,
    "max_msg_size": -1,
    "storage": "file",
    "num_replicas": 1,
    "allow_rollup_hdrs": True,
    "deny_delete": True,
    "duplicate_window": 2 * M,
    "max_msgs": -1,
    "max_consumers": -1,
    "allow_direct": True,
    "discard": "new",
}


def kv(spec: str = "{}", name: str = "jobs") -> dict:
    (r,) = resources(f"kind: KeyValue\nname: {name}\nspec: {spec}\n")
    assert str(r.address) == f"kv/{name}"
    assert r.address.stream_name == f"KV_{name}"
    return r.config


def test_kv_defaults():
    assert kv() == KV_DEFAULTS


def test_kv_settings():
    assert kv(
        "{history: 5, ttl: 7d, max_value_size: 1KiB, max_bytes: 1GiB, storage: memory, replicas: 3,"
        " compression: true, description: d, metadata: {team: ops}, placement: {cluster: east},"
        " republish: {src: '>', dest: 'repub.>'}}"
    ) == {
        **KV_DEFAULTS,
        "max_msgs_per_subject": 5,
        "max_age": 7 * D,
        "max_msg_size": 1024,
        "max_bytes": GiB,
        "storage": "memory",
        "num_replicas": 3,
        "compression": "s2",
        "description": "d",
        "metadata": {"team": "ops"},
        "placement": {"cluster": "east"},
        "republish": {"src": ">", "dest": "repub.>"},
    }


@pytest.mark.parametrize(("ttl", "window"), [("0s", 2 * M), ("30s", 30 * S), ("2m", 2 * M), ("1h", 2 * M)])
def test_kv_duplicate_window_is_the_ttl_below_two_minutes(ttl, window):
    c = kv(f"{{ttl: {ttl}}}")
    assert c["duplicate_window"] == window


def test_kv_limit_marker_ttl_turns_on_per_message_ttl():
    c = kv("{limit_marker_ttl: 5m}")
    assert c["allow_msg_ttl"] is True
    assert c["subject_delete_marker_ttl"] == 5 * M
    assert "allow_msg_ttl" not in kv() and "subject_delete_marker_ttl" not in kv()


def test_kv_keeps_the_live_allow_msg_ttl_unless_markers_are_declared():
    (plain,) = resources("kind: KeyValue\nname: a\n")
    (marked,) = resources("kind: KeyValue\nname: a\nspec: {limit_marker_ttl: 5m}\n")
    assert plain.keep_live == frozenset({"allow_msg_ttl"})
    assert marked.keep_live == frozenset()


def test_kv_mirror():
    c = kv("{mirror: {name: origin}}", name="copy")
    assert c["mirror"] == {"name": "KV_origin"}
    assert c["mirror_direct"] is True
    assert "subjects" not in c


def test_kv_sources_get_subject_transforms():
    c = kv("{sources: [{name: a}, {name: b, filter_subject: '$KV.b.x'}]}", name="all")
    assert c["subjects"] == ["$KV.all.>"]
    assert c["sources"] == [
        {"name": "KV_a", "subject_transforms": [{"src": "$KV.a.>", "dest": "$KV.all.>"}]},
        {"name": "KV_b", "filter_subject": "$KV.b.x"},
    ]


def test_kv_source_of_the_same_name_in_another_domain_needs_no_transform():
    c = kv("{sources: [{name: jobs, external: {api: '$JS.hub.API'}}]}")
    assert c["sources"] == [{"name": "KV_jobs", "external": {"api": "$JS.hub.API"}}]


def test_kv_mirror_keeps_declared_subject_transforms():
    c = kv("{mirror: {name: origin, subject_transforms: [{src: '$KV.origin.a.>', dest: '$KV.origin.a.>'}]}}")
    assert c["mirror"]["subject_transforms"] == [{"src": "$KV.origin.a.>", "dest": "$KV.origin.a.>"}]


def test_kv_spec_is_checked_with_bucket_names():
    assert problems("kind: KeyValue\nname: jobs\nspec:\n  history: 65\n  max_age: 1h\n") == [
        (4, "kv/jobs", "spec.history", "must be at most 64"),
        (5, "kv/jobs", "spec.max_age", "unknown field 'max_age'"),
    ]


def test_object_store():
    (r,) = resources(
        "kind: ObjectStore\nname: artifacts\nspec: {max_bytes: 10GiB, storage: file, ttl: 1h, replicas: 3,"
        " compression: true, description: d}\n"
    )
    assert r.address.stream_name == "OBJ_artifacts"
    assert r.config == {
        "subjects": ["$O.artifacts.C.>", "$O.artifacts.M.>"],
        "max_age": H,
        "max_bytes": 10 * GiB,
        "storage": "file",
        "num_replicas": 3,
        "discard": "new",
        "allow_rollup_hdrs": True,
        "allow_direct": True,
        "compression": "s2",
        "description": "d",
    }


def test_object_store_defaults():
    (r,) = resources("kind: ObjectStore\nname: a\n")
    assert r.config == {
        "subjects": ["$O.a.C.>", "$O.a.M.>"],
        "max_age": 0,
        "max_bytes": -1,
        "storage": "file",
        "num_replicas": 1,
        "discard": "new",
        "allow_rollup_hdrs": True,
        "allow_direct": True,
    }


KV_JOBS = "kind: KeyValue\nname: jobs\n---\n"


def test_consumer_on_a_kv_stream():
    text = KV_JOBS + "kind: Consumer\nstream: KV_jobs\nname: watcher\nspec:\n  filter_subject: $KV.jobs.a.>\n"
    assert [str(r.address) for r in resources(text)] == ["kv/jobs", "consumer/KV_jobs/watcher"]


def test_consumer_on_a_kv_stream_with_a_foreign_filter():
    text = KV_JOBS + "kind: Consumer\nstream: KV_jobs\nname: watcher\nspec:\n  filter_subject: jobs.>\n"
    assert only(text)[:3] == (8, "consumer/KV_jobs/watcher", "spec.filter_subject")


# --- against the server: streams that exist, fields the version knows -------------------------------


def server_problems(text: str, server: Server, live: dict | None = None) -> list[tuple[int, str, str, str]]:
    rs = resources(text)
    with pytest.raises(ManifestError) as caught:
        check_against_server(rs, live or {}, server)
    return [(p.location.line, p.resource, p.field, p.message) for p in caught.value.problems]


def test_allow_msg_ttl_needs_2_11():
    text = stream("subjects: [x]\nallow_msg_ttl: true")
    assert server_problems(text, OLD) == [
        (
            5,
            "stream/X",
            "spec.allow_msg_ttl",
            "allow_msg_ttl needs nats-server 2.11.0 or newer; the server is 2.10.25",
        )
    ]
    check_against_server(resources(text), {}, Server(version=(2, 11, 0)))


def test_version_problems_of_every_resource_at_once():
    text = (
        stream("subjects: [x]\nallow_msg_ttl: true\nsubject_delete_marker_ttl: 5m\nallow_rollup_hdrs: true")
        + "---\n"
        + "kind: Consumer\nstream: X\nname: c\nspec:\n  priority_groups: [g]\n  priority_policy: overflow\n"
    )
    found = server_problems(text, OLD)
    assert [(line, field) for line, _, field, _ in found] == [
        (5, "spec.allow_msg_ttl"),
        (6, "spec.subject_delete_marker_ttl"),
        (13, "spec.priority_groups"),
        (14, "spec.priority_policy"),
    ]
    assert all("2.11.0 or newer; the server is 2.10.25" in message for *_, message in found)


def test_kv_limit_marker_ttl_is_named_by_its_spec_field():
    found = server_problems("kind: KeyValue\nname: jobs\nspec:\n  limit_marker_ttl: 5m\n", OLD)
    assert found == [
        (
            4,
            "kv/jobs",
            "spec.limit_marker_ttl",
            "limit_marker_ttl needs nats-server 2.11.0 or newer; the server is 2.10.25",
        )
    ]


def test_enum_values_newer_than_the_field():
    text = consumer("ack_policy: flow_control\ndeliver_subject: out")
    found = server_problems(text, Server(version=(2, 12, 0)), live={"S": {"config": {"name": "S"}}})
    assert found == [
        (
            5,
            "consumer/S/c",
            "spec.ack_policy",
            "ack_policy: flow_control needs nats-server 2.14.0 or newer; the server is 2.12.0",
        )
    ]


def test_a_new_server_takes_everything():
    text = (
        stream("subjects: [x]\nallow_msg_ttl: true\nallow_msg_schedules: true\nallow_rollup_hdrs: true")
        + "---\nkind: KeyValue\nname: jobs\nspec: {limit_marker_ttl: 5m}\n"
    )
    check_against_server(resources(text), {}, NEW)


def test_consumer_of_a_stream_neither_declared_nor_on_the_server():
    text = "kind: Consumer\nname: billing\nstream: NOWHERE\nspec:\n  ack_policy: explicit\n"
    assert server_problems(text, NEW) == [
        (
            3,
            "consumer/NOWHERE/billing",
            "stream",
            "stream 'NOWHERE' is neither declared in the manifests nor on the server",
        )
    ]


def test_consumer_of_a_stream_on_the_server_or_declared():
    check_against_server(resources(consumer("ack_policy: explicit")), {"S": {"config": {"name": "S"}}}, NEW)
    check_against_server(
        resources("kind: Stream\nname: S\n---\n" + consumer("ack_policy: explicit")), {}, NEW
    )
    check_against_server(
        resources("kind: KeyValue\nname: s\n---\nkind: Consumer\nstream: KV_s\nname: c\n"), {}, NEW
    )
