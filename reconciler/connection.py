"""Connecting to NATS and the one choke point for `$JS.API` requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout

from .errors import ApiError, ConnectError, TimeoutError_

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass
class ConnectOptions:
    """How to reach the server; mirrors the nats CLI's flags and context fields."""

    servers: list[str] = field(default_factory=lambda: [DEFAULT_URL])
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    nkey: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    tlsca: str | None = None
    tlsfirst: bool = False
    js_domain: str | None = None
    js_api_prefix: str | None = None
    inbox_prefix: str | None = None
    timeout: float = 5.0
    name: str = "nats-reconcile"

    def secrets(self) -> list[str]:
        """Every value that must never be shown, including credentials inside URLs."""
        found = [s for s in (self.password, self.token) if s]
        for url in self.servers:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            found += [s for s in (parts.username, parts.password) if s]
        return found

    @property
    def api_prefix(self) -> str:
        if self.js_api_prefix:
            return self.js_api_prefix.rstrip(".")
        if self.js_domain:
            return f"$JS.{self.js_domain}.API"
        return "$JS.API"


def redact_url(url: str) -> str:
    """nats://user:pass@host -> nats://***@host, so a URL can be shown."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class Connection:
    """A connected client plus the JetStream API prefix. `request` is the only way to the API."""

    def __init__(self, nc: Client, options: ConnectOptions):
        self.nc = nc
        self.options = options
        self.prefix = options.api_prefix
        self.timeout = options.timeout
        self.requests = 0  # API requests sent, for tests and benchmarks
        # Our own reply multiplexer: one wildcard subscription (made by `open`), a future per request
        # and one timer each. nats-py's request() wraps every call in asyncio.wait_for and a fresh NUID,
        # which was most of the client's time when a plan lists a thousand streams' consumers.
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._reply_prefix = nc.new_inbox()
        self._sent = 0

    @classmethod
    async def open(cls, nc: Client, options: ConnectOptions) -> Connection:
        conn = cls(nc, options)
        try:
            await nc.subscribe(f"{conn._reply_prefix}.*", cb=conn._on_reply)
        except ConnectionClosedError as exc:
            raise ConnectError("the connection to the server was closed") from exc
        return conn

    @property
    def server_version(self) -> str:
        return str(self.nc._server_info.get("version", "0.0.0"))

    @property
    def server_name(self) -> str:
        return str(self.nc._server_info.get("server_name", ""))

    async def request(
        self, api: str, body: dict[str, Any] | None = None, *, retries: int = 3
    ) -> dict[str, Any]:
        """Send `$JS.API.<api>` and return the decoded answer; raise ApiError for an error answer.

        Transient failures (no responders while a server restarts, timeouts, 503) are retried with
        jittered backoff. Every admin call we make is idempotent, so a retry cannot do harm.
        """
        subject = f"{self.prefix}.{api}"
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        delay = 0.25
        for attempt in range(retries + 1):
            try:
                return await self._request_once(subject, payload)
            except (ApiError, TimeoutError_, ConnectError) as exc:
                if not exc.retryable or attempt == retries:
                    raise
                log.debug("retrying %s after %s", subject, exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 3.0)
        raise AssertionError("unreachable")

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._replies.pop(msg.subject, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(msg)

    async def _exchange(self, subject: str, payload: bytes) -> Msg:
        """One request and its reply, through our multiplexer."""
        self._sent += 1
        inbox = f"{self._reply_prefix}.{self._sent}"
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[Msg] = loop.create_future()
        self._replies[inbox] = waiting
        timer = loop.call_later(self.timeout, _expire, waiting)
        try:
            await self.nc.publish(subject, payload, reply=inbox)
            msg = await waiting
        finally:
            timer.cancel()
            self._replies.pop(inbox, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise NoRespondersError
        return msg

    async def _request_once(self, subject: str, payload: bytes) -> dict[str, Any]:
        self.requests += 1
        try:
            msg = await self._exchange(subject, payload)
        except NoRespondersError as exc:
            raise ConnectError(
                f"no JetStream responded on {subject}: is JetStream enabled"
                + (f" in domain {self.options.js_domain!r}" if self.options.js_domain else "")
                + "?"
            ) from exc
        except NatsTimeout as exc:
            raise TimeoutError_(
                f"JetStream did not answer {subject} within {self.timeout:g}s (is the server or cluster "
                "available, with a JetStream meta leader?)"
            ) from exc
        except ConnectionClosedError as exc:
            raise ConnectError("the connection to the server was closed") from exc
        try:
            answer = json.loads(msg.data) if msg.data else {}
        except json.JSONDecodeError as exc:
            raise ApiError(subject, 500, 0, f"the server sent a reply that is not JSON: {exc}") from exc
        error = answer.get("error")
        if error:
            raise ApiError(
                subject,
                int(error.get("code", 0)),
                int(error.get("err_code", 0)),
                str(error.get("description", "")),
            )
        return answer

    async def close(self) -> None:
        if not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=2)
            except Exception:  # closing is best effort; the process is ending anyway
                await self.nc.close()


def _expire(waiting: asyncio.Future[Msg]) -> None:
    if not waiting.done():
        waiting.set_exception(NatsTimeout())


def _tls_context(options: ConnectOptions) -> ssl.SSLContext | None:
    if not (
        options.tlsca
        or options.tlscert
        or options.tlsfirst
        or any(s.startswith("tls://") for s in options.servers)
    ):
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options.tlsca or None)
        if options.tlscert:
            context.load_cert_chain(options.tlscert, options.tlskey or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(f"cannot load TLS files: {exc.strerror or exc}") from exc
    return context


async def connect(options: ConnectOptions) -> Connection:
    """Connect, retrying for up to `options.timeout` seconds, with errors that name no secret."""
    refused = asyncio.Event()  # the server said "Authorization Violation": retrying will not help

    async def on_error(exc: Exception) -> None:
        if "authorization" in str(exc).lower():
            refused.set()

    async def quiet(*_: object) -> None:
        return None

    kwargs: dict[str, Any] = {
        "servers": options.servers,
        "name": options.name,
        "connect_timeout": max(1.0, min(options.timeout, 5.0)),
        "allow_reconnect": True,
        "max_reconnect_attempts": 10,
        "reconnect_time_wait": 0.5,
        "error_cb": on_error,
        "disconnected_cb": quiet,
        "closed_cb": quiet,
        "reconnected_cb": quiet,
    }
    for key, value in (
        ("user", options.user),
        ("password", options.password),
        ("token", options.token),
        ("user_credentials", options.creds),
        ("nkeys_seed", options.nkey),
        ("inbox_prefix", options.inbox_prefix),
    ):
        if value:
            kwargs[key] = value
    tls = _tls_context(options)
    if tls is not None:
        kwargs["tls"] = tls
        kwargs["tls_handshake_first"] = options.tlsfirst
    shown = ", ".join(redact_url(s) for s in options.servers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    while True:
        # nats-py's first connect tries each URL ten times; the deadline bounds it to --timeout, and an
        # authorization error ends it at once.
        attempt = asyncio.ensure_future(nats.connect(**kwargs))
        watch = asyncio.ensure_future(refused.wait())
        await asyncio.wait(
            {attempt, watch}, timeout=max(0.1, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
        )
        watch.cancel()
        if refused.is_set() or not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            if refused.is_set():
                raise ConnectError(f"cannot connect to {shown}: {_reason(Exception('authorization'))}")
            raise ConnectError(f"cannot connect to {shown}: no server answered within {options.timeout:g}s")
        try:
            nc = attempt.result()
        except (NoServersError, OSError, asyncio.TimeoutError, NatsTimeout) as exc:
            if loop.time() >= deadline:
                raise ConnectError(f"cannot connect to {shown}: {_reason(exc)}") from None
            await asyncio.sleep(0.3)
        except Exception as exc:  # nats-py raises plain Exceptions for auth and protocol errors
            raise ConnectError(f"cannot connect to {shown}: {_reason(exc)}") from None
        else:
            return await Connection.open(nc, options)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "authorization" in text.lower():
        return "authorization failed (check user, password, token, creds or nkey)"
    if isinstance(exc, NoServersError):
        return "no server answered"
    return text
