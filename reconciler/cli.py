"""Command line: parse, dispatch, map errors to exit codes. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__, api
from .connection import DEFAULT_URL, ConnectOptions, connect
from .context import load_context
from .errors import ManifestError, ReconcileError
from .lock import DEFAULT_BUCKET, break_lock, read_lock
from .observe import observe
from .render import render, render_text
from .units import parse_duration

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Output:
    """stdout/stderr that never show a secret, whatever the message."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def clean(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text

    def out(self, text: str) -> None:
        sys.stdout.write(self.clean(text) + "\n")
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stderr.write(self.clean(text) + "\n")
        sys.stderr.flush()


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (2 means "changes pending"), and never echo what was typed: a mistyped
    flag may be followed by a password."""

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message:
            message = "unrecognized arguments (see --help)"
        raise UsageError(message)


def _duration_seconds(text: str) -> float:
    try:
        return parse_duration(text) / 1e9 if not text.replace(".", "").isdigit() else float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    conn = _Parser(add_help=False)
    g = conn.add_argument_group("connection (flags override env vars, which override the nats context)")
    g.add_argument("-s", "--server", help="NATS server URL(s), comma separated [$NATS_URL]")
    g.add_argument("--creds", help="user credentials file [$NATS_CREDS]")
    g.add_argument("--nkey", help="user NKey seed file [$NATS_NKEY]")
    g.add_argument("--user", help="user name [$NATS_USER]")
    g.add_argument("--password", help="password [$NATS_PASSWORD]")
    g.add_argument("--token", help="authentication token [$NATS_TOKEN]")
    g.add_argument("--tlscert", help="TLS client certificate [$NATS_CERT]")
    g.add_argument("--tlskey", help="TLS client key [$NATS_KEY]")
    g.add_argument("--tlsca", help="TLS certificate authority [$NATS_CA]")
    g.add_argument("--tlsfirst", action="store_true", default=None, help="TLS handshake before the INFO")
    g.add_argument("--context", help="nats CLI context to use [$NATS_CONTEXT]")
    g.add_argument("--js-domain", help="JetStream domain [$NATS_JS_DOMAIN]")
    g.add_argument("--js-api-prefix", help="JetStream API prefix [$NATS_JS_API_PREFIX]")
    g.add_argument("--timeout", type=_duration_seconds, help="time to wait for each answer (default 5s)")
    g.add_argument(
        "--set",
        dest="set_name",
        default=None,
        help="name of this manifest set, recorded on what it creates [$NATS_RECONCILE_SET, default]",
    )
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show a traceback on unexpected errors")

    parser = _Parser(prog="nats-reconcile", description="Declarative NATS JetStream topology.")
    parser.add_argument("--version", action="version", version=f"nats-reconcile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Connection flags are accepted (and ignored), so that CI can pass one set of flags to every command.
    v = sub.add_parser("validate", parents=[common, conn], help="check manifests offline")
    v.add_argument("paths", nargs="+", metavar="PATH")
    p = sub.add_parser("plan", parents=[common, conn], help="show what apply would change")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--output", "-o", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there are changes")
    p.add_argument("--prune", action="store_true", help="also plan deletes of managed resources not declared")
    a = sub.add_parser("apply", parents=[common, conn], help="change the server to match the manifests")
    a.add_argument("paths", nargs="+", metavar="PATH")
    a.add_argument(
        "--prune", action="store_true", help="delete managed resources that are no longer declared"
    )
    a.add_argument(
        "--allow-replace", action="store_true", help="allow delete+create of resources (data loss)"
    )
    a.add_argument("--lock-timeout", type=_duration_seconds, default=60.0, help="wait this long for the lock")
    a.add_argument("--lock-ttl", type=_duration_seconds, default=30.0, help="lease of the lock (renewed)")
    a.add_argument("--lock-bucket", default=DEFAULT_BUCKET, help=f"KV bucket for the lock ({DEFAULT_BUCKET})")
    e = sub.add_parser("export", parents=[common, conn], help="write manifests for live resources")
    e.add_argument("--stream", action="append", default=[], metavar="NAME")
    e.add_argument("--kv", action="append", default=[], metavar="NAME")
    e.add_argument("--object-store", action="append", default=[], metavar="NAME")
    lk = sub.add_parser("lock", parents=[common, conn], help="show or break the apply lock")
    lk.add_argument("action", choices=["show", "break"])
    lk.add_argument("--lock-bucket", default=DEFAULT_BUCKET)
    lk.add_argument("--yes", action="store_true", help="with break: really break a lock someone holds")
    return parser


# field, flag, environment variable
_CONNECTION = (
    ("servers", "server", "NATS_URL"),
    ("creds", "creds", "NATS_CREDS"),
    ("nkey", "nkey", "NATS_NKEY"),
    ("user", "user", "NATS_USER"),
    ("password", "password", "NATS_PASSWORD"),
    ("token", "token", "NATS_TOKEN"),
    ("tlscert", "tlscert", "NATS_CERT"),
    ("tlskey", "tlskey", "NATS_KEY"),
    ("tlsca", "tlsca", "NATS_CA"),
    ("js_domain", "js_domain", "NATS_JS_DOMAIN"),
    ("js_api_prefix", "js_api_prefix", "NATS_JS_API_PREFIX"),
)
# Kinds of credentials. The client sends one kind (creds > nkey > user+password > token), so a kind
# given at a higher layer must not lose to another kind left at a lower one.
_CREDENTIALS = {"creds": ("creds",), "nkey": ("nkey",), "userpass": ("user", "password"), "token": ("token",)}


def _credentials(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The credentials of the highest layer that gives any, merged field by field with lower layers
    of the same kind; a URL with user info in a layer wins over lower layers' credentials."""
    for i, layer in enumerate(layers):
        kinds = [k for k, fields in _CREDENTIALS.items() if any(layer.get(f) for f in fields)]
        in_url = any("@" in s for s in layer.get("servers") or [])
        if kinds or in_url:
            out: dict[str, Any] = {}
            for lower in reversed(layers[i:]):
                out.update({f: lower[f] for k in kinds for f in _CREDENTIALS[k] if lower.get(f)})
            return out
    return {}


def connect_options(args: argparse.Namespace, env: dict[str, str]) -> ConnectOptions:
    """Flags, then env vars, then the nats context, then defaults (the nats CLI's order)."""
    context = load_context(getattr(args, "context", None) or env.get("NATS_CONTEXT") or None)
    flags = {field: getattr(args, flag, None) for field, flag, _ in _CONNECTION}
    variables = {field: env.get(var) for field, _, var in _CONNECTION}
    for layer in (flags, variables):
        if layer.get("servers"):
            layer["servers"] = [s.strip() for s in layer["servers"].split(",") if s.strip()]
    layers = [flags, variables, context]  # highest first
    credential_fields = {f for fields in _CREDENTIALS.values() for f in fields}
    values: dict[str, Any] = {}
    for layer in reversed(layers):
        values.update({k: v for k, v in layer.items() if v and k not in credential_fields})
    values.update(_credentials(layers))
    if getattr(args, "tlsfirst", None):
        values["tlsfirst"] = True
    timeout = getattr(args, "timeout", None) or (
        _duration_seconds(env["NATS_TIMEOUT"]) if env.get("NATS_TIMEOUT") else None
    )
    if timeout:
        values["timeout"] = timeout
    values.setdefault("servers", [DEFAULT_URL])
    return ConnectOptions(**values)


def set_name(args: argparse.Namespace, env: dict[str, str]) -> str:
    return args.set_name or env.get("NATS_RECONCILE_SET") or "default"


def cmd_validate(args: argparse.Namespace, out: Output) -> int:
    resources = api.load(args.paths)
    out.out(f"{len(resources)} resource(s) valid: " + ", ".join(str(r.address) for r in resources))
    return EXIT_OK


async def cmd_plan(args: argparse.Namespace, out: Output, env: dict[str, str]) -> int:
    plan = await api.plan(
        args.paths, connect_options(args, env), set_name=set_name(args, env), prune=args.prune
    )
    out.out(render(plan, args.output, color=_color(env)))
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK


def _color(env: dict[str, str]) -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in env and env.get("TERM") != "dumb"


async def cmd_apply(args: argparse.Namespace, out: Output, env: dict[str, str]) -> int:
    result = await api.apply(
        args.paths,
        connect_options(args, env),
        set_name=set_name(args, env),
        prune=args.prune,
        allow_replace=args.allow_replace,
        lock_timeout=args.lock_timeout,
        lock_ttl=args.lock_ttl,
        lock_bucket=args.lock_bucket,
        progress=lambda line: out.out(f"  {line}"),
    )
    if not result.steps:
        if result.applied_by:
            holder = result.applied_by
            out.out(f"No changes (applied by {holder.get('host')} pid {holder.get('pid')}).")
        else:
            out.out(render_text(result.plan, color=_color(env)))
        return EXIT_OK
    out.out(f"Applied: {result.plan.summary} in {result.timings.get('apply', 0):.2f}s.")
    if result.drift:
        out.err(
            "The server did not take these fields as asked:\n" + "\n".join(f"  {d}" for d in result.drift)
        )
        return EXIT_ERROR
    return EXIT_OK


async def cmd_export(args: argparse.Namespace, out: Output, env: dict[str, str]) -> int:
    from .export import dump_yaml, export_documents  # PyYAML's emitter: only export needs it

    conn = await connect(connect_options(args, env))
    try:
        live = await observe(conn)
    finally:
        await conn.close()
    try:
        documents = export_documents(live, args.stream, args.kv, args.object_store)
    except LookupError as exc:
        raise ReconcileError(str(exc.args[0])) from None
    sys.stdout.write(dump_yaml(documents))
    return EXIT_OK


async def cmd_lock(args: argparse.Namespace, out: Output, env: dict[str, str]) -> int:
    conn = await connect(connect_options(args, env))
    try:
        scope = set_name(args, env)
        current = await read_lock(conn, args.lock_bucket, scope)
        if args.action == "show" or current is None:
            out.out(
                f"The apply lock of set {scope!r} is free."
                if current is None
                else f"The apply lock of set {scope!r} is held by {_holder(current)}."
            )
            return EXIT_OK
        if not args.yes:
            raise ReconcileError(
                f"the apply lock is held by {_holder(current)}. Break it only if that process "
                "is gone (it would expire by itself); add --yes to break it"
            )
        removed = await break_lock(conn, args.lock_bucket, scope)
        out.out(f"Broke the apply lock held by {_holder(removed) if removed else 'nobody'}.")
        return EXIT_OK
    finally:
        await conn.close()


def _holder(entry: dict[str, Any]) -> str:
    h = entry.get("holder") or {}
    return f"{h.get('host')} pid {h.get('pid')} (id {h.get('id')}) for {entry.get('held_for', 0):.0f}s"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"nats-reconcile: error: {exc}\nRun nats-reconcile --help for usage.\n")
        return EXIT_ERROR
    env = dict(os.environ)
    out = Output()
    try:
        if args.command == "validate":  # offline: no context is read, no connection made
            return cmd_validate(args, out)
        out.secrets = connect_options(args, env).secrets()
        handler = {"plan": cmd_plan, "apply": cmd_apply, "export": cmd_export, "lock": cmd_lock}[args.command]
        return asyncio.run(handler(args, out, env))
    except ManifestError as exc:
        out.err(f"error: {exc}\nNothing was sent to the server.")
        return EXIT_ERROR
    except ReconcileError as exc:
        out.err(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        out.err("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so without a traceback unless asked
        if getattr(args, "debug", False):
            out.err(traceback.format_exc())
        out.err(
            f"unexpected error ({type(exc).__name__}); this is a bug in nats-reconcile. "
            "Run again with --debug for a traceback."
        )
        return EXIT_BUG
