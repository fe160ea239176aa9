"""The one exception tree. Only cli.py turns these into exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a value came from: file, 1-based line and column, and the path inside the document."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


class ReconcileError(Exception):
    """Base of every error a user can cause or meet. `retryable` says whether trying again may help."""

    retryable = False


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests, with enough context to find and fix it."""

    location: Location
    message: str
    resource: str = ""  # an address such as "stream/JOBS"
    field: str = ""  # a field path such as "spec.max_age"

    def __str__(self) -> str:
        where = str(self.location)
        subject = " ".join(part for part in (self.resource, self.field) if part)
        return f"{where}: {subject}: {self.message}" if subject else f"{where}: {self.message}"


class ManifestError(ReconcileError):
    """One or more problems in the manifests. Nothing has been sent to the server."""

    MAX_MESSAGE = 300  # an alias-repeated 50KB value must not be quoted in full, thousands of times

    def __init__(self, problems: Iterable[Problem]):
        unique = {}
        for p in problems:
            if len(p.message) > self.MAX_MESSAGE:
                p = Problem(p.location, p.message[: self.MAX_MESSAGE] + "...", p.resource, p.field)
            unique.setdefault((p.location, p.message, p.resource, p.field), p)
        self.problems = sorted(
            unique.values(), key=lambda p: (p.location.file, p.location.line, p.location.column, p.message)
        )
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        count = len(self.problems)
        head = "1 problem in the manifests" if count == 1 else f"{count} problems in the manifests"
        return head + ":\n" + "\n".join(f"  {p}" for p in self.problems)


class ConnectError(ReconcileError):
    """The server could not be reached, or refused the credentials."""

    retryable = True


class ApiError(ReconcileError):
    """A `$JS.API` request answered with an error. Code branches on `err_code`, never on the text."""

    # Errors a leader election or a restarting server gives; worth a retry with backoff.
    TRANSIENT = frozenset(
        {10008, 10039, 10077}
    )  # cluster not available, jetstream not enabled/temp, no leader

    def __init__(self, subject: str, code: int, err_code: int, description: str):
        self.subject = subject
        self.code = code
        self.err_code = err_code
        self.description = description
        super().__init__(f"{description} (code {code}, err_code {err_code})")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.code == 503 or self.err_code in self.TRANSIENT


class TimeoutError_(ReconcileError):
    """A request got no answer in time."""

    retryable = True


class LockError(ReconcileError):
    """The apply lock could not be taken, or was lost while applying."""


class ApplyError(ReconcileError):
    """A change failed. `done` and `not_done` say how far the run got; running again converges."""

    def __init__(self, message: str, done: list[str], not_done: list[str], cause: Exception | None = None):
        self.done = done
        self.not_done = not_done
        self.cause = cause
        super().__init__(message)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return bool(self.cause is not None and getattr(self.cause, "retryable", False))

    def __str__(self) -> str:
        lines = [self.args[0]]
        if self.done:
            lines.append("Done before the failure:")
            lines += [f"  {d}" for d in self.done]
        if self.not_done:
            lines.append("Not done:")
            lines += [f"  {d}" for d in self.not_done]
        lines.append("Nothing was rolled back; fix the cause and run apply again to converge.")
        return "\n".join(lines)
