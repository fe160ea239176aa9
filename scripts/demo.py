"""The README's first command: reconcile manifests/ on a local nats-server started for the purpose.

Runs the real CLI: plan, apply, then plan again (which must say "No changes"), and stops the server.
"""

from __future__ import annotations

import os
import subprocess
import sys

from reconciler.devserver import LocalServer


def run(*args: str, env: dict[str, str]) -> int:
    print(f"\n$ nats-reconcile {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "reconciler", *args], env=env).returncode


def main(paths: list[str]) -> int:
    paths = paths or ["manifests/"]
    with LocalServer() as server:
        print(f"Started nats-server {server.version} on {server.url}")
        print(f"(pid {server.pid}, storage {server.store_dir})")
        env = {**os.environ, "NATS_URL": server.url}
        code = run("plan", *paths, env=env)
        code = code or run("apply", *paths, env=env)
        code = code or run("plan", *paths, "--detailed-exitcode", env=env)
        print(f"\nStopping nats-server (pid {server.pid}).")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
