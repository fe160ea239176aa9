"""The load cache: manifests that validated last time are not parsed and validated again.

A pre-start hook reads the same files on every start, and parsing them and running the JSON Schemas
is most of what a no-op run costs after Python itself (jsonschema's import alone is tens of ms). So
`api.load` keeps the resources it built, keyed by a SHA-256 of this tool (its code and schemas) and of
every manifest file's name and bytes. An entry also records which environment variables the manifests
used, as digests of their values (or as unset), and is served only while they are unchanged.

Only a load that succeeded is stored: a bad manifest is parsed and reported again on every run.

Where: $NATS_RECONCILE_CACHE_DIR, else $XDG_CACHE_HOME/nats-reconcile, else ~/.cache/nats-reconcile.
NATS_RECONCILE_CACHE=off turns it off. Entries are pickles, so the directory must belong to the user
and be writable by nobody else; a directory that is not, that cannot be written (a read-only image),
or an entry that is corrupt or stale is passed over without a word, and the run loads from the files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from .gcpause import paused_gc
from .load import Source
from .model import Resource

FORMAT = 1  # bump when the entry layout changes
MAX_ENTRIES = 64  # files kept; the oldest written go first
MAX_VARIANTS = 4  # environments kept per set of files (workers that differ by one variable)


class RecordingEnv(Mapping[str, str]):
    """The environment as the loader sees it, noting every variable it asks about."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.env[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self.env

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)

    def used(self) -> dict[str, str | None]:
        return _env_digests(self.asked, self.env)


class LoadCache:
    def __init__(self, directory: Path | None):
        self.directory = directory

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> LoadCache:
        if environ.get("NATS_RECONCILE_CACHE", "").lower() in ("off", "0", "false", "no"):
            return cls(None)
        explicit = environ.get("NATS_RECONCILE_CACHE_DIR")
        if explicit:
            return cls(Path(explicit))
        base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return cls(Path(base) / "nats-reconcile")

    def get(self, sources: list[Source], env: Mapping[str, str]) -> list[Resource] | None:
        """The resources these files loaded to last time, if the variables they used are unchanged."""
        path = self._path(sources)
        if path is None:
            return None
        for used, resources in self._variants(path):
            if _env_digests(used, env) == used:
                return resources
        return None

    def put(self, sources: list[Source], used: dict[str, str | None], resources: list[Resource]) -> None:
        path = self._path(sources)
        if path is None:
            return
        variants = [(u, r) for u, r in self._variants(path) if u != used][: MAX_VARIANTS - 1]
        entry = {"format": FORMAT, "variants": [(used, resources), *variants]}
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(self.directory)):
                return
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".write-")
            try:
                with os.fdopen(fd, "wb") as file:
                    pickle.dump(entry, file, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temporary, path)  # atomic: a concurrent reader sees the old entry or this one
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            self._prune()
        except (OSError, pickle.PicklingError):
            return

    def _path(self, sources: list[Source]) -> Path | None:
        if self.directory is None or any(s.problem is not None for s in sources):
            return None
        digest = hashlib.sha256(_tool_fingerprint())
        for source in sources:
            name = source.name.encode("utf-8", "surrogateescape")
            digest.update(len(name).to_bytes(8, "big") + name + len(source.raw).to_bytes(8, "big"))
            digest.update(source.raw)
        return self.directory / f"load-{digest.hexdigest()}.pickle"

    def _variants(self, path: Path) -> list[tuple[dict[str, str | None], list[Resource]]]:
        try:
            if not _private(os.stat(self.directory)):
                return []
            # Non-blocking and not through a symlink: a FIFO put there must not hang the run.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
            with open(fd, "rb") as file:
                info = os.fstat(fd)
                if not (stat.S_ISREG(info.st_mode) and _private(info)):
                    return []
                entry = _unpickle(file)
        except Exception:  # missing, unreadable, corrupt or stale, whatever unpickling raised: a miss
            return []
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            return []
        variants = entry.get("variants")
        if not isinstance(variants, list):
            return []
        return [v for v in variants if _is_variant(v)]

    def _prune(self) -> None:
        entries = sorted(self.directory.glob("load-*.pickle"), key=_mtime)
        # Also what a writer killed before its rename left behind.
        abandoned = [p for p in self.directory.glob(".write-*") if _mtime(p) < time.time() - 3600]
        for old in [*entries[: max(0, len(entries) - MAX_ENTRIES)], *abandoned]:
            with contextlib.suppress(OSError):
                old.unlink()


def _env_digests(names: set[str] | dict[str, str | None], env: Mapping[str, str]) -> dict[str, str | None]:
    # Digests, not values: the cache need not hold what the environment held.
    return {name: _digest(env[name]) if name in env else None for name in names}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _is_variant(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], dict)
        and isinstance(value[1], list)
        and all(isinstance(r, Resource) for r in value[1])
    )


def _unpickle(file: BinaryIO) -> object:
    with paused_gc():  # thousands of small containers and no cycles
        return pickle.load(file)


def _private(info: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (on systems that have owners)."""
    if not hasattr(os, "getuid"):
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@functools.cache
def _tool_fingerprint() -> bytes:
    """This tool's code, schemas and parsing libraries: a new version of any, or an edited checkout,
    never reads old entries."""
    from .schema import SCHEMA_DIR

    package = Path(__file__).parent
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{_dependency_versions()}\0".encode())
    for path in sorted([*package.rglob("*.py"), *SCHEMA_DIR.glob("*.json")]):
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def _dependency_versions() -> str:
    """The parsing libraries as installed: each package folder's files, sizes and times (an upgrade
    rewrites them; libyaml's extension is one of PyYAML's). Found without importing them, which would
    cost what the cache saves; reading their metadata would cost about as much."""
    from importlib.util import find_spec

    found = []
    for name in ("yaml", "jsonschema", "referencing"):
        spec = find_spec(name)
        if spec is None or not spec.origin:
            found.append(f"{name}:-")
            continue
        with os.scandir(os.path.dirname(spec.origin)) as entries:
            files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
        found.append(f"{name}:{spec.origin}:{files}")
    return "\n".join(found)
