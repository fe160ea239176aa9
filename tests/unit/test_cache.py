"""cache.py: `api.load` serves files that loaded before from a private pickle cache, and only then."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import reconciler.api as api
from reconciler import cache
from reconciler.api import load
from reconciler.cache import FORMAT, LoadCache
from reconciler.errors import ManifestError
from reconciler.load import read_sources
from reconciler.validate import check_against_server
from reconciler.versions import Server

ROOT = Path(__file__).resolve().parents[2]
H = 3600 * 10**9
STREAM = "kind: Stream\nname: S\nspec:\n  subjects: [s.>]\n  max_age: 1h\n"
CONSUMER = "kind: Consumer\nstream: S\nname: w\nspec: {ack_policy: explicit}\n"
MANIFESTS = {
    "a.yaml": STREAM + "---\n" + CONSUMER,
    "b.json": '[{"kind": "Stream", "name": "J", "spec": {"subjects": ["j.>", "k.>"]}}]',
    "sub/c.yaml": "kind: KeyValue\nname: jobs\nspec: {history: 5}\n",
}
WHERE = [
    *[(), ("kind",), ("name",), ("spec",), ("spec", "subjects", 0), ("spec", "subjects", 1)],
    *[("spec", "max_age"), ("spec", "ack_policy"), ("spec", "nope", 3), ("stream",)],
]
WHERE_A = ["1:1", "1:1", "2:1", "3:1", "4:14", "4:3"]  # a.yaml's stream; subjects[1] is absent: its parent's
PROBE = """
import json, sys, time
from reconciler.api import load, manifest_hash
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # a start time shared by racing processes
resources = load(sys.argv[2:])
where = [str(r.where("spec", "max_age")) for r in resources]
modules = sorted(m for m in ("yaml", "jsonschema", "referencing") if m in sys.modules)
print(json.dumps({"hash": manifest_hash(resources), "where": where, "modules": modules}))
"""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("NATS_RECONCILE_CACHE_DIR", str(directory))
    monkeypatch.delenv("NATS_RECONCILE_CACHE", raising=False)
    return directory


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per load that parsed its files (a cache miss)."""
    calls: list[int] = []
    real = api.parse_sources
    monkeypatch.setattr(api, "parse_sources", lambda *args: calls.append(1) or real(*args))
    return calls


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("load-*.pickle"))


def fresh(paths: list[Path], env: dict[str, str] | None = None):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NATS_RECONCILE_CACHE", "off")
        return load(paths, env)


def summary(resources) -> list[tuple]:
    return [
        (str(r.address), r.config, r.spec, r.keep_live, r.document.file, r.document.index) for r in resources
    ]


def where(resources) -> list[list[tuple]]:
    """The Location, and its text, of every path in WHERE, for each resource."""
    return [[(r.where(*path), str(r.where(*path))) for path in WHERE] for r in resources]


def subprocess_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_RECONCILE_CACHE")}
    return {**env, "NATS_RECONCILE_CACHE_DIR": str(cache_dir), **extra}


def probe(m: Path, cache_dir: Path, **extra: str) -> dict:
    """What a new process's load of `m` gave, and which of the slow modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "0", str(m)],
        cwd=ROOT,
        env=subprocess_env(cache_dir, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Payload:
    """Unpickling this creates `marker`: proof that a planted entry ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# --- hits are the same resources -------------------------------------------------------------------


def test_cached_load_equals_fresh_load(tmp_path: Path, cache_dir: Path, parses: list[int]) -> None:
    """Address, config, spec, keep_live and every location survive the round trip through an entry."""
    m = write(tmp_path / "m", MANIFESTS)
    first = load([m])
    second = load([m])
    assert len(parses) == 1  # the second load was served from the cache
    expected = fresh([m])
    assert summary(first) == summary(second) == summary(expected)
    assert where(second) == where(expected)
    assert [text for _, text in where(second)[0][:6]] == [f"{m}/a.yaml:{n}" for n in WHERE_A]
    assert len(entries(cache_dir)) == 1


def test_hit_imports_neither_yaml_nor_jsonschema(tmp_path: Path, cache_dir: Path) -> None:
    """A new process served from the cache never imports the parser or the validator."""
    m = write(tmp_path / "m", MANIFESTS)
    filled = probe(m, cache_dir)
    hit = probe(m, cache_dir)
    uncached = probe(m, cache_dir, NATS_RECONCILE_CACHE="off")
    assert hit["modules"] == []
    assert {"yaml", "jsonschema"} <= set(filled["modules"]) & set(uncached["modules"])
    assert filled["hash"] == hit["hash"] == uncached["hash"] == api.manifest_hash(fresh([m]))
    assert filled["where"] == hit["where"] == uncached["where"]


# --- what selects an entry ---------------------------------------------------------------------------


def test_edited_renamed_and_added_files_are_read_anew(tmp_path: Path, cache_dir: Path) -> None:
    """The key is every file's name and bytes: an edit of the same size, a rename, a new file all miss."""
    m = write(tmp_path / "m", {"s.yaml": STREAM})
    assert load([m])[0].config["max_age"] == H
    (m / "s.yaml").write_text(STREAM.replace("1h", "2h"))  # same size, other bytes
    assert load([m])[0].config["max_age"] == 2 * H
    (m / "s.yaml").rename(m / "t.yaml")
    assert [str(r.where()) for r in load([m])] == [f"{m}/t.yaml:1:1"]
    write(m, {"c.yaml": CONSUMER})
    assert sorted(str(r.address) for r in load([m])) == ["consumer/S/w", "stream/S"]


def test_env_variables_select_the_variant(tmp_path: Path, cache_dir: Path, parses: list[int]) -> None:
    """`${LIMIT:-10}` follows the environment, set-but-empty is not unset, and a variable the files do
    not use changes nothing."""
    m = write(tmp_path / "m", {"s.yaml": STREAM + "  max_msgs: ${LIMIT:-10}\n  description: ${DESC:-none}\n"})
    cases = [({}, 10, "none"), ({"LIMIT": "20"}, 20, "none"), ({}, 10, "none"), ({"OTHER": "x"}, 10, "none")]
    cases += [
        ({"LIMIT": "20", "OTHER": "y"}, 20, "none"),
        ({"LIMIT": "30"}, 30, "none"),
        ({"DESC": ""}, 10, ""),
    ]
    for env, limit, description in cases:
        config = load([m], env)[0].config
        assert (config["max_msgs"], config["description"]) == (limit, description), env
    assert len(parses) == 4  # unset, 20, 30 and DESC="": the others were hits
    assert len(entries(cache_dir)) == 1


def test_up_to_max_variants_coexist(tmp_path: Path, cache_dir: Path, parses: list[int]) -> None:
    """MAX_VARIANTS environments are served side by side; one more pushes out the first written."""
    m = write(tmp_path / "m", {"s.yaml": STREAM + "  max_msgs: ${LIMIT}\n"})
    limits = [100 + i for i in range(cache.MAX_VARIANTS + 1)]
    for limit in limits[:-1]:
        load([m], {"LIMIT": str(limit)})
    for limit in reversed(limits[:-1]):
        assert load([m], {"LIMIT": str(limit)})[0].config["max_msgs"] == limit
    assert len(parses) == cache.MAX_VARIANTS  # every variant was kept
    load([m], {"LIMIT": str(limits[-1])})  # one more: the first written goes
    for limit in [*reversed(limits[1:]), limits[0]]:
        assert load([m], {"LIMIT": str(limit)})[0].config["max_msgs"] == limit
    assert len(parses) == cache.MAX_VARIANTS + 2


def test_entry_keeps_no_environment_values(tmp_path: Path, cache_dir: Path) -> None:
    """A used variable is kept as a digest (its value here reaches the resources only as nanoseconds),
    an unused one not at all."""
    m = write(tmp_path / "m", {"s.yaml": STREAM.replace("1h", "${AGE}")})
    assert load([m], {"AGE": "36h", "API_TOKEN": "tok-Zq9-unrelated"})[0].config["max_age"] == 36 * H
    data = entries(cache_dir)[0].read_bytes()
    for secret in (b"36h", b"API_TOKEN", b"tok-Zq9-unrelated"):
        assert secret not in data


def test_other_tool_version_does_not_read_old_entries(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are keyed by the tool too: another version (fingerprint) never reads this one's."""
    a = write(tmp_path / "a", {"s.yaml": STREAM})
    b = write(tmp_path / "b", {"s.yaml": STREAM.replace("name: S", "name: B")})
    load([a]), load([b])
    old_a, old_b = (LoadCache(cache_dir)._path(read_sources([p])) for p in (a, b))
    os.replace(old_b, old_a)  # a's entry now holds b's resources
    assert [str(r.address) for r in load([a])] == ["stream/B"]  # so a hit on it shows
    monkeypatch.setattr(cache, "_tool_fingerprint", lambda: b"another version")
    assert summary(load([a])) == summary(fresh([a]))
    assert len(entries(cache_dir)) == 2


# --- what is not stored ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [STREAM.replace("1h", "banana"), "kind: Stream\nname: [S\n", STREAM.replace("1h", "${NO_SUCH_VARIABLE}")],
    ids=["schema", "yaml", "unset-variable"],
)
def test_bad_manifest_is_never_cached(tmp_path: Path, cache_dir: Path, bad: str) -> None:
    """A failed load stores nothing and fails alike every time; the fixed file then loads."""
    m = write(tmp_path / "m", {"s.yaml": bad})
    errors = []
    for _ in range(2):
        with pytest.raises(ManifestError) as caught:
            load([m], {})
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "s.yaml:" in errors[0]
    assert entries(cache_dir) == []
    write(m, {"s.yaml": STREAM})
    assert load([m], {})[0].config["max_age"] == H
    assert len(entries(cache_dir)) == 1


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_cache_off_writes_nothing(tmp_path: Path, cache_dir: Path, monkeypatch, value: str) -> None:
    """NATS_RECONCILE_CACHE=off (or 0, false, no) loads without reading or making the directory."""
    monkeypatch.setenv("NATS_RECONCILE_CACHE", value)
    m = write(tmp_path / "m", MANIFESTS)
    assert summary(load([m])) == summary(load([m]))
    assert not cache_dir.exists()


def test_directory_that_cannot_be_made_is_passed_over(tmp_path: Path, monkeypatch) -> None:
    """A cache directory below a regular file: every load still works, from the files."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NATS_RECONCILE_CACHE_DIR", str(tmp_path / "file" / "cache"))
    m = write(tmp_path / "m", MANIFESTS)
    assert summary(load([m])) == summary(load([m])) == summary(fresh([m]))


# --- bad entries -------------------------------------------------------------------------------------


def variants(value: object):
    return lambda good, other: pickle.dumps({"format": FORMAT, "variants": value})


CORRUPT = {  # (this entry, a good entry of other files) -> what is put in its place
    "garbage": lambda good, other: b"\x00 garbage \xff" * 10,
    "empty": lambda good, other: b"",
    "truncated": lambda good, other: good[: len(good) // 2],
    "unknown-class": lambda good, other: b"cno_such_module_zz\nThing\n)R.",
    "not-a-dict": lambda good, other: pickle.dumps(["variants"]),
    "no-format": lambda good, other: other.replace(b"format", b"FORMAT"),
    "other-format": lambda good, other: pickle.dumps(pickle.loads(other) | {"format": FORMAT + 1}),
    "no-variants": lambda good, other: pickle.dumps({"format": FORMAT}),
    "not-a-pair": variants([0]),
    "not-a-list": variants([({}, 0)]),
    "not-resources": variants([({}, ["junk"])]),
}


@pytest.mark.parametrize("corrupt", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_entry_is_ignored_and_replaced(tmp_path: Path, cache_dir: Path, parses, corrupt) -> None:
    """A bad entry is a miss and is overwritten; `other` shows that the format is checked, as those
    resources would otherwise come back."""
    m = write(tmp_path / "m", MANIFESTS)
    o = write(tmp_path / "o", {"s.yaml": STREAM.replace("name: S", "name: O")})
    expected = summary(fresh([m]))
    load([m]), load([o])
    path, other_path = (LoadCache(cache_dir)._path(read_sources([p])) for p in (m, o))
    path.write_bytes(corrupt(path.read_bytes(), other_path.read_bytes()))
    assert summary(load([m])) == expected
    assert len(parses) == 4  # fresh, m, o, then m again past the bad entry
    assert summary(load([m])) == expected
    assert len(parses) == 4  # the good entry that replaced the bad one was served
    assert len(entries(cache_dir)) == 2


# --- a cache that is not private is not used ---------------------------------------------------------


@pytest.mark.parametrize(
    ("dir_mode", "file_mode", "other_owner", "trusted"),
    [
        *[(0o700, 0o600, "", True), (0o755, 0o644, "", True), (0o777, 0o600, "", False)],
        *[(0o1777, 0o600, "", False), (0o770, 0o600, "", False), (0o700, 0o660, "", False)],
        *[(0o700, 0o666, "", False), (0o700, 0o600, "entry", False), (0o700, 0o600, "directory", False)],
    ],
)
def test_planted_entry_runs_only_when_private(
    tmp_path: Path, cache_dir, dir_mode, file_mode, other_owner, trusted
):
    """A pickle in a directory or file that others own or can write is never loaded; the first cases
    show that the payload does run when it is trusted."""
    if other_owner and os.geteuid() != 0:
        pytest.skip("chown needs root")
    m = write(tmp_path / "m", MANIFESTS)
    marker = tmp_path / "pwned"
    cache_dir.mkdir()
    planted = LoadCache(cache_dir)._path(read_sources([m]))
    planted.write_bytes(pickle.dumps(Payload(marker)))
    os.chmod(planted, file_mode)
    os.chmod(cache_dir, dir_mode)
    if other_owner:
        os.chown(planted if other_owner == "entry" else cache_dir, 54321, -1)
    assert summary(load([m])) == summary(fresh([m]))
    assert marker.exists() is trusted
    if dir_mode & 0o022 or other_owner == "directory":  # nothing is written into a directory not ours
        assert os.listdir(cache_dir) == [planted.name]
        assert planted.read_bytes() == pickle.dumps(Payload(marker))


@pytest.mark.parametrize("dir_mode", [0o777, 0o700])
def test_fifo_at_the_entry_does_not_block_the_load(tmp_path: Path, cache_dir: Path, dir_mode: int) -> None:
    """Anyone can put a FIFO at the entry's name in a world-writable directory; opening it to read
    would block until someone writes."""
    m = write(tmp_path / "m", MANIFESTS)
    cache_dir.mkdir()
    fifo = LoadCache(cache_dir)._path(read_sources([m]))
    os.mkfifo(fifo)
    os.chmod(cache_dir, dir_mode)
    results = []
    thread = threading.Thread(target=lambda: results.append(summary(load([m]))), daemon=True)
    thread.start()
    thread.join(timeout=3)
    blocked = thread.is_alive()
    if blocked:  # let it go: a writer that closes at once gives the blocked reader end-of-file
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=10)
    assert not blocked
    assert results == [summary(fresh([m]))]


# --- pruning, concurrency, locations -----------------------------------------------------------------


def test_oldest_entries_are_pruned(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    """Past MAX_ENTRIES, the entries with the oldest mtimes go."""
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    sets = [write(tmp_path / f"m{i}", {"s.yaml": STREAM.replace("name: S", f"name: S{i}")}) for i in range(5)]
    paths = [LoadCache(cache_dir)._path(read_sources([m])) for m in sets]
    for i, m in enumerate(sets):
        load([m])
        os.utime(paths[i], (1_000_000 + i, 1_000_000 + i))  # distinct mtimes, in load order
    assert entries(cache_dir) == sorted(paths[2:])


def test_concurrent_first_loads_agree(tmp_path: Path, cache_dir: Path) -> None:
    """Eight processes fill the same entry at once: all succeed alike, one entry is left, no temp files."""
    m = write(tmp_path / "m", MANIFESTS)
    start, env = str(time.time() + 3), subprocess_env(cache_dir)
    command = [sys.executable, "-c", PROBE, start, str(m)]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(8)
    ]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8
    resources = fresh([m])
    expected = {
        "hash": api.manifest_hash(resources),
        "where": [str(r.where("spec", "max_age")) for r in resources],
    }
    assert [{k: out[k] for k in expected} for out in outputs] == [expected] * 8
    assert [name.startswith("load-") for name in os.listdir(cache_dir)] == [True]
    assert probe(m, cache_dir) == {**expected, "modules": []}  # a process of the same code as the eight


def test_server_check_errors_point_at_the_same_places(tmp_path: Path, cache_dir: Path, parses) -> None:
    """Problems found after a cached load name the same file:line:column as after a fresh one."""
    text = STREAM + "  allow_msg_ttl: true\n---\n" + CONSUMER.replace("stream: S", "stream: X")
    m = write(tmp_path / "m", {"s.yaml": text})
    errors = []
    for resources in (fresh([m]), load([m]), load([m])):
        with pytest.raises(ManifestError) as caught:
            check_against_server(resources, {}, Server(version=(2, 10, 25)))
        errors.append(str(caught.value))
        assert str(resources[0].where("spec", "max_age")) == f"{m}/s.yaml:5:3"
    assert len(parses) == 2  # fresh, then the filling load; the third was a hit
    assert errors[0] == errors[1] == errors[2]
    assert f"{m}/s.yaml:6:3:" in errors[0] and f"{m}/s.yaml:9:1:" in errors[0]
