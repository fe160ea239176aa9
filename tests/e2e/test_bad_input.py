"""Bad input against a real server: exit 1, every error at `file:line`, no traceback, server unchanged.

Each case first applies a valid baseline (a work-queue stream and one consumer), so "unchanged" means
something, then runs the real CLI (`plan` and `apply`) on the baseline plus one bad file. `validate`
must find the same problems without any server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import api
from reconciler.connection import ConnectOptions
from reconciler.devserver import free_port
from reconciler.lock import DEFAULT_BUCKET
from tests.helpers import request, run_cli, server_snapshot, stream_names, write

pytestmark = pytest.mark.e2e

LOCK_STREAM = f"KV_{DEFAULT_BUCKET}"
BASELINE_FILE = "00-baseline.yaml"
BASELINE = """
    kind: Stream
    name: JOBS
    spec:
      subjects: ["jobs.>"]
      retention: workqueue
      max_age: 24h
    ---
    kind: Consumer
    stream: JOBS
    name: workers
    spec:
      ack_policy: explicit
      ack_wait: 30s
      filter_subject: jobs.a
"""
PROBLEM_LINE = re.compile(r"^  \S+:\d+:\d+: ", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    text: str  # the bad file; line 1 is the first line after dedent
    lines: tuple[int, ...]  # lines of the bad file that must be reported; () = some line of it
    message: str  # a fragment of the error message
    file: str = "50-bad.yaml"
    problems: int | None = None  # the exact number of problems, when it matters
    offline: bool = True  # `validate` (no server) finds it too


CASES = {
    "malformed-yaml": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          description: retries: 3
        """,
        (5,),
        "invalid YAML",
    ),
    "malformed-json": Case(
        """
        {
          "kind": "Stream",
          "name": "ORDERS"
          "spec": {"subjects": ["orders.>"]}
        }
        """,
        (4,),
        "invalid JSON",
        file="50-bad.json",
    ),
    "unknown-field": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          max_agee: 1h
        """,
        (5,),
        "unknown field 'max_agee'",
    ),
    "wrong-type": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          max_msgs: lots
        """,
        (5,),
        "expected an integer, got 'lots'",
    ),
    "bad-enum": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          retention: forever
        """,
        (5,),
        "must be one of: limits, interest, workqueue",
    ),
    "unknown-kind": Case(
        """
        kind: Streem
        name: ORDERS
        """,
        (1,),
        "unknown kind 'Streem'",
    ),
    "missing-name": Case(
        """
        kind: Stream
        spec:
          subjects: [orders.>]
        """,
        (1,),
        "required field 'name' is missing",
    ),
    "bad-duration": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          max_age: 10 parsecs
        """,
        (5,),
        "'10 parsecs' is not a duration",
    ),
    "bad-size": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          max_bytes: 1 GiBs
        """,
        (5,),
        "'1 GiBs' is not a size",
    ),
    "unset-variable": Case(
        # run_cli drops every NATS_* variable from the environment, so this one is surely unset.
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          description: ${NATS_RECONCILE_TEST_UNSET}
        """,
        (5,),
        "environment variable NATS_RECONCILE_TEST_UNSET is not set",
    ),
    "consumer-of-missing-stream": Case(
        """
        kind: Consumer
        name: billing
        stream: NOWHERE
        spec:
          ack_policy: explicit
        """,
        (3,),
        "stream 'NOWHERE' is neither declared in the manifests nor on the server",
        offline=False,  # the stream might be on the server; only plan and apply can tell
    ),
    "workqueue-overlap": Case(
        """
        kind: Consumer
        stream: JOBS
        name: everything
        spec:
          ack_policy: explicit
          filter_subject: jobs.>
        """,
        (),  # the line itself: see workqueue-overlap-line
        "filter 'jobs.>' overlaps 'jobs.a' of consumer/JOBS/workers",
    ),
    "workqueue-two-unfiltered": Case(
        """
        kind: Stream
        name: TASKS
        spec:
          subjects: [tasks.>]
          retention: workqueue
        ---
        kind: Consumer
        stream: TASKS
        name: one
        spec:
          ack_policy: explicit
        ---
        kind: Consumer
        stream: TASKS
        name: two
        spec:
          ack_policy: explicit
        """,
        (9, 15),
        "allows an unfiltered consumer only when it is the only consumer",
        problems=2,
    ),
    "duplicate-resource": Case(
        """
        kind: Stream
        name: JOBS
        spec:
          subjects: ["jobs.>"]
          retention: workqueue
        """,
        (2,),
        f"declared twice; first at {{dir}}/{BASELINE_FILE}:2:",
    ),
    "filter-outside-stream-subjects": Case(
        """
        kind: Consumer
        stream: JOBS
        name: misrouted
        spec:
          ack_policy: explicit
          filter_subject: orders.new
        """,
        (6,),
        "filter 'orders.new' matches none of stream JOBS's subjects",
    ),
    "yaml-python-tag": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          description: !!python/object/apply:os.system ["touch {tmp}/pwned"]
        """,
        (4,),
        "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
    ),
    "alias-bomb": Case(
        """
        a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
        h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
        i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
        kind: Stream
        name: ORDERS
        """,
        (),
        "alias bomb",
    ),
    "stream-name-with-dot": Case(
        """
        kind: Stream
        name: ORDERS.V2
        spec:
          subjects: [orders.>]
        """,
        (2,),
        "must not contain '.'",
    ),
    "durable-name-differs": Case(
        """
        kind: Consumer
        stream: JOBS
        name: audit
        spec:
          durable_name: auditor
          ack_policy: explicit
          filter_subject: jobs.audit
        """,
        (5,),
        "durable_name 'auditor' must equal name 'audit'",
    ),
    "several-errors-in-one-file": Case(
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: [orders.>]
          max_agee: 1h
          max_msgs: lots
          retention: forever
          max_age: 10 parsecs
          max_bytes: 1 GiBs
        ---
        kind: Streem
        name: X
        ---
        kind: Stream
        spec: {}
        ---
        kind: Stream
        name: ORDERS.V2
        ---
        kind: Consumer
        stream: JOBS
        name: audit
        spec:
          durable_name: auditor
          ack_policy: explicit
          filter_subject: jobs.audit
        """,
        (5, 6, 7, 8, 9, 11, 14, 18, 24),
        "9 problems in the manifests",
        problems=9,
    ),
}

OVERLAP_LINE = Case(
    CASES["workqueue-overlap"].text,
    (6,),  # the `filter_subject: jobs.>` line, not the `spec:` line above it
    "overlaps",
)
KIND_NOT_A_STRING = Case(
    """
    kind: [Stream]
    name: ORDERS
    """,
    (1,),
    "kind",
)


def params(offline_only: bool = False) -> list:
    out = [pytest.param(case, id=name) for name, case in CASES.items() if case.offline or not offline_only]
    out.append(pytest.param(OVERLAP_LINE, id="workqueue-overlap-line"))
    out.append(pytest.param(KIND_NOT_A_STRING, id="kind-not-a-string"))
    return out


def write_case(case: Case, directory: Path, tmp: Path) -> Path:
    write(directory, BASELINE_FILE, BASELINE)
    return write(directory, case.file, case.text.replace("{tmp}", str(tmp)))


def assert_reported(result, case: Case, bad: Path) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert result.stdout.strip() == "", "nothing but the error may be printed"
    stderr = result.stderr
    assert case.message.replace("{dir}", str(bad.parent)) in stderr, stderr
    if case.lines:
        for line in case.lines:
            assert f"{bad}:{line}:" in stderr, f"no problem at line {line}:\n{stderr}"
    else:
        assert re.search(rf"{re.escape(str(bad))}:\d+:\d+: ", stderr), stderr
    reported = PROBLEM_LINE.findall(stderr)
    assert reported, stderr
    if case.problems is not None:
        assert len(reported) == case.problems, stderr


@pytest.fixture
def baseline(nats_server, tmp_path) -> dict:
    """The baseline applied, the lock bucket that apply made removed again: the server as it is now."""
    directory = tmp_path / "manifests"
    write(directory, BASELINE_FILE, BASELINE)
    result = api.apply_sync([directory], ConnectOptions(servers=[nats_server.url]))
    assert result.changed
    assert "error" not in request(nats_server.url, f"$JS.API.STREAM.DELETE.{LOCK_STREAM}")
    snapshot = server_snapshot(nats_server.url)
    assert set(snapshot) == {"JOBS"}
    assert set(snapshot["JOBS"]["consumers"]) == {"workers"}
    return snapshot


@pytest.mark.parametrize("case", params())
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_bad_input_changes_nothing(command, case, nats_server, baseline, tmp_path):
    directory = tmp_path / "manifests"
    bad = write_case(case, directory, tmp_path)

    result = run_cli(command, str(directory), url=nats_server.url, timeout=60)

    assert_reported(result, case, bad)
    assert "Nothing was sent to the server." in result.stderr
    assert server_snapshot(nats_server.url) == baseline
    assert LOCK_STREAM not in stream_names(nats_server.url), "the lock bucket was created"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", params(offline_only=True))
def test_validate_finds_it_without_a_server(case, tmp_path):
    directory = tmp_path / "manifests"
    bad = write_case(case, directory, tmp_path)

    # Nothing listens on this port: validate must not need it.
    result = run_cli("validate", str(directory), url=f"nats://127.0.0.1:{free_port()}", timeout=60)

    assert_reported(result, case, bad)
    assert not (tmp_path / "pwned").exists()


def test_validate_accepts_a_consumer_whose_stream_only_the_server_can_know(tmp_path):
    """Offline, a consumer of an undeclared stream may be fine: that is for plan and apply to decide."""
    case = CASES["consumer-of-missing-stream"]
    write_case(case, tmp_path / "manifests", tmp_path)
    result = run_cli("validate", str(tmp_path / "manifests"), url=f"nats://127.0.0.1:{free_port()}")
    assert result.returncode == 0, result.stderr
    assert "consumer/NOWHERE/billing" in result.stdout


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_overlap_on_a_live_only_workqueue_stream(command, nats_server, baseline, tmp_path):
    directory = tmp_path / "live-only"  # JOBS is not declared here, only on the server
    bad = write(
        directory,
        "consumers.yaml",
        """
        kind: Consumer
        stream: JOBS
        name: b-jobs
        spec:
          ack_policy: explicit
          filter_subject: jobs.b.>
        ---
        kind: Consumer
        stream: JOBS
        name: all-jobs
        spec:
          ack_policy: explicit
          filter_subject: jobs.>
        """,
    )
    result = run_cli(command, str(directory), url=nats_server.url, timeout=60)

    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert server_snapshot(nats_server.url) == baseline
    assert result.returncode == 1, output
    assert f"{bad}:13:" in result.stderr, output
