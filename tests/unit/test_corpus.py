"""The hostile-manifest corpus (tests/corpus/): every file is refused with located problems, fast, in
bounded memory, and the CLI says so without a traceback and without connecting to anything.

A file that exposes a product bug stays here as a strict xfail (KNOWN_BUGS): it turns into an error
("XPASS(strict)") the moment the bug is fixed, so that the mark is then removed.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import api
from reconciler.errors import ManifestError
from reconciler.observe import LiveState
from reconciler.plan import Action, make_plan
from reconciler.versions import Server
from tests.helpers import run_cli

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
TIME_LIMIT = 5.0  # seconds per file; every file that is handled right takes well under 0.5s
MEMORY_LIMIT = 200 * 1024 * 1024  # bytes allocated at once, traced for the bomb cases
NO_SERVER = "nats://127.0.0.1:1"  # nothing listens there: a request would fail with a connect error

# Problems about the file as a whole, which have no line to point at.
WHOLE_FILE = {
    "binary-garbage.yaml",
    "binary-gzip-header.yaml",
    "latin1-description.yaml",
    "utf16-bom.yaml",
    "utf16-le-no-bom.yaml",  # decodes as UTF-8 full of NULs
    "utf32-bom.yaml",
    "utf8-encoded-surrogate.yaml",
    # declare no resource at all (see test_a_set_without_resources_is_an_error)
    "empty-file.yaml",
    "whitespace-only.yaml",
    "only-comments.yaml",
    "only-document-separators.yaml",
    "null-document.yaml",
    "null-document-explicit-tag.yaml",
    "json-empty-array.json",
    "json-null.json",
}


def _is_memory_case(name: str) -> bool:
    return name.startswith(("bomb-", "deep-nesting-")) or "huge" in name


# --- product bugs this corpus found (cause and fix in each reason) -----------------------------------

KNOWN_BUGS: dict[str, str] = {}


def _param(path: Path) -> pytest.param:
    reason = KNOWN_BUGS.get(path.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, id=path.name, marks=marks)


# --- running one file within a time and memory budget ------------------------------------------------


class OverBudget(BaseException):  # not an Exception: no `except Exception` in the product may swallow it
    pass


@dataclass
class Usage:
    peak: int = 0


@contextmanager
def bounded(seconds: float, max_bytes: int | None = None) -> Iterator[Usage]:
    """Interrupt the body (SIGALRM in the main thread) after `seconds`, or as soon as it has more than
    `max_bytes` allocated (a watcher thread polls tracemalloc)."""
    assert threading.current_thread() is threading.main_thread()
    usage = Usage()
    why: list[str] = []
    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        raise OverBudget(why[0] if why else f"took more than {seconds:.0f}s")

    def watch() -> None:
        while not stop.wait(0.005):
            if tracemalloc.get_traced_memory()[0] > max_bytes:
                why.append(f"allocated more than {max_bytes // 2**20} MiB")
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
                return

    previous = signal.signal(signal.SIGALRM, interrupt)
    watcher = threading.Thread(target=watch, daemon=True) if max_bytes else None
    if watcher:
        tracemalloc.start()
        watcher.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield usage
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        if watcher:
            watcher.join()
            usage.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        signal.signal(signal.SIGALRM, previous)


def load_error(path: Path) -> tuple[ManifestError, Usage]:
    """The ManifestError that loading `path` raises; fails the test on anything else."""
    memory = MEMORY_LIMIT if _is_memory_case(path.name) else None
    error: ManifestError | None = None
    try:
        with bounded(TIME_LIMIT, memory) as usage:
            try:
                resources = api.load([str(path)], env={})
            except ManifestError as exc:
                error = exc
            except Exception as exc:
                pytest.fail(f"{type(exc).__name__} instead of a ManifestError: {str(exc)[:300]}")
            else:
                pytest.fail(f"loaded {len(resources)} resource(s) instead of refusing the file")
    except OverBudget as exc:
        pytest.fail(f"loading {path.name} {exc}")
    assert error is not None
    return error, usage


# --- the corpus itself -------------------------------------------------------------------------------


def test_the_corpus_is_big_enough_and_small_enough():
    assert len(FILES) >= 120
    assert sum(p.stat().st_size for p in CORPUS.iterdir() if p.is_file()) < 2_000_000
    other = [p.name for p in CORPUS.iterdir() if p.is_file() and p.suffix not in (".yaml", ".yml", ".json")]
    assert sorted(other) == ["README.md", "generate.py"]
    assert set(KNOWN_BUGS) <= {p.name for p in FILES}
    assert {p.name for p in FILES} >= WHOLE_FILE


def test_the_generated_files_are_up_to_date():
    spec = importlib.util.spec_from_file_location("corpus_generate", CORPUS / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    stale = [name for name, make in generate.GENERATED.items() if (CORPUS / name).read_bytes() != make()]
    assert not stale, "run tests/corpus/generate.py: " + ", ".join(stale)


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_every_corpus_file_is_refused_with_located_problems(path: Path):
    error, usage = load_error(path)
    name = str(path)
    assert error.problems, "a ManifestError without problems"
    for problem in error.problems:
        assert problem.location.file == name, f"problem located in another file: {problem}"
        if path.name not in WHOLE_FILE:
            assert problem.location.line >= 1 and problem.location.column >= 1, f"no line: {problem}"
    assert name in str(error)
    assert usage.peak < MEMORY_LIMIT


# --- what the corpus cannot hold: sets of files, file-system cases -----------------------------------


def test_an_empty_file_beside_manifests_adds_nothing(tmp_path: Path):
    (tmp_path / "00-empty.yaml").write_text("")
    (tmp_path / "10-only-comments.yaml").write_text("# nothing yet\n")
    (tmp_path / "20-stream.yaml").write_text("kind: Stream\nname: JOBS\nspec: {subjects: [jobs.>]}\n")
    assert [str(r.address) for r in api.load([tmp_path], env={})] == ["stream/JOBS"]


def test_a_set_without_resources_is_an_error(tmp_path: Path):
    # Decision: an empty file is a file without documents, fine beside others; a set of manifests that
    # declares no resource at all is a mistake (a wrong path, a template that rendered nothing) and
    # must not plan or apply as "nothing declared".
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "b.yaml").write_text("---\n# nothing\n")
    (tmp_path / "c.json").write_text("[]")
    with pytest.raises(ManifestError) as caught:
        api.load([tmp_path], env={})
    assert str(tmp_path) in str(caught.value)


def test_a_directory_without_manifest_files_is_an_error(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("kind: Stream\n")
    (tmp_path / "dir.yaml").mkdir()  # a directory with a manifest's name is not a manifest
    with pytest.raises(ManifestError, match="no manifest files found"):
        api.load([tmp_path], env={})


def test_a_missing_path_is_an_error(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ManifestError) as caught:
        api.load([missing], env={})
    assert [p.location.file for p in caught.value.problems] == [str(missing)]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(11 * 1024 * 1024)  # sparse: nothing is written, and nothing may be read
    with bounded(TIME_LIMIT), pytest.raises(ManifestError, match="larger than"):
        api.load([big], env={})


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused(tmp_path: Path):
    path = tmp_path / "secret.yaml"
    path.write_text("kind: Stream\nname: JOBS\n")
    path.chmod(0)
    with pytest.raises(ManifestError, match="cannot read"):
        api.load([path], env={})


def test_a_long_valid_mirror_chain_loads_and_plans(tmp_path: Path):
    n = 1500  # M0 mirrors M1 ... mirrors M1499, which has the subjects
    docs = [f"kind: Stream\nname: M{i}\nspec: {{mirror: {{name: M{i + 1}}}}}\n" for i in range(n - 1)]
    docs.append(f"kind: Stream\nname: M{n - 1}\nspec: {{subjects: [x.>]}}\n")
    path = tmp_path / "chain.yaml"
    path.write_text("---\n".join(docs))
    with bounded(TIME_LIMIT):
        plan = make_plan(api.load([path], env={}), LiveState(Server()))
    assert [c.address.name for c in plan.changes] == [f"M{i}" for i in reversed(range(n))]
    assert all(c.action is Action.CREATE for c in plan.changes)


def test_problems_of_every_file_are_reported_together():
    names = ["yaml-tab-indent.yaml", "unknown-kind.yaml", "json-trailing-comma.json", "env-unset.yaml"]
    with pytest.raises(ManifestError) as caught:
        api.load([str(CORPUS / n) for n in names], env={})
    assert {Path(p.location.file).name for p in caught.value.problems} == set(names)


# --- the real CLI on a sample: exit 1, the file named, no traceback, no connection ------------------

CLI_SAMPLE = [
    "yaml-tab-indent.yaml",
    "yaml-duplicate-key.yaml",
    "json-trailing-comma.json",
    "json-tabs-unknown-kind.json",
    "utf16-bom.yaml",
    "binary-garbage.yaml",
    "kind-as-list.yaml",
    "spec-as-string.yaml",
    "huge-int-max-age.yaml",
    "max-bytes-overflow.yaml",
    "deep-nesting-200.yaml",
    "tag-python-object.yaml",
    "bomb-billion-laughs.yaml",
    "merge-key.yaml",
    "unknown-kind.yaml",
    "stream-name-with-dot.yaml",
    "conflict-two-unfiltered-wq.yaml",
    "conflict-source-cycle.yaml",
    "negative-max-age.yaml",
    "subject-gt-not-last.yaml",
    "env-unset.yaml",
    "sources-chain-cycle-1500.yaml",  # a known crash: exit 3 "this is a bug"
    "json-huge-int-digits.json",  # a known crash
]
COMMANDS = ("validate", "plan")


@pytest.fixture(scope="module")
def cli_results() -> dict[tuple[str, str], object]:
    """Every sample run of the CLI, started a few at a time (each is a fresh interpreter)."""
    runs = [(command, name) for name in CLI_SAMPLE for command in COMMANDS]

    def run(run: tuple[str, str]):
        command, name = run
        return run_cli(command, str(CORPUS / name), url=NO_SERVER, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(runs, pool.map(run, runs), strict=True))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", [_param(CORPUS / n) for n in CLI_SAMPLE])
def test_the_cli_refuses_the_file_before_connecting(cli_results, command: str, name: Path):
    result = cli_results[(command, name.name)]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == 1, output[-2000:]
    assert str(name) in output
    assert "Nothing was sent to the server" in result.stderr
    assert "connect" not in output.lower()  # no attempt to reach 127.0.0.1:1
