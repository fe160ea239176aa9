"""Connecting through flags, env vars and nats CLI contexts, against real servers that want a password,
a token or an nkey; and the promise that no output ever shows a secret.

Every case runs the real CLI as a subprocess with XDG_CONFIG_HOME (and HOME) pointed at a fresh directory
under tmp_path, so no context of the machine is ever read. Precedence is proven by which server or which
credentials actually worked: the losing value always points at a server that refuses, or is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.devserver import LocalServer
from tests.helpers import run_cli, write

pytestmark = pytest.mark.e2e

USER = "alice"
PASSWORD = "s3cr3t-Pa55-XYZ"
WRONG_PASSWORD = "wr0ng-Pa55-QRS"
OTHER_WRONG_PASSWORD = "wr0ng-Pa55-TUV"
TOKEN = "t0k3n-S3cr3t-777"
WRONG_TOKEN = "t0k3n-Wr0ng-888"

USERPASS_CONFIG = f'authorization {{ user: {USER}, password: "{PASSWORD}" }}\n'
TOKEN_CONFIG = f'authorization {{ token: "{TOKEN}" }}\n'


# --- nkeys without the nkeys package (it is not installed): ed25519 public key from a seed -------------
# Only key generation, so the server can be configured for a user nkey; the signing is the client's job.

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _inv(x: int) -> int:
    return pow(x, _P - 2, _P)


def _xrecover(y: int) -> int:
    xx = (y * y - 1) * _inv(_D * y * y + 1)
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return _P - x if x % 2 else x


_BY = 4 * _inv(5) % _P
_BASE = (_xrecover(_BY), _BY)


def _add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p, q
    t = _D * x1 * x2 * y1 * y2
    return (x1 * y2 + x2 * y1) * _inv(1 + t) % _P, (y1 * y2 + x1 * x2) * _inv(1 - t) % _P


def _ed25519_public(raw_seed: bytes) -> bytes:
    digest = hashlib.sha512(raw_seed).digest()
    scalar = (int.from_bytes(digest[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    point, result = _BASE, (0, 1)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return (result[1] | ((result[0] & 1) << 255)).to_bytes(32, "little")


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw + _crc16(raw).to_bytes(2, "little")).decode().rstrip("=")


def user_nkey(label: str) -> tuple[str, str]:
    """(seed "SU...", public key "U...") of a user nkey, derived from `label` so runs are repeatable."""
    raw = hashlib.sha256(label.encode()).digest()
    user, seed = 20 << 3, 18 << 3
    public = _b32(bytes([user]) + _ed25519_public(raw))
    return _b32(bytes([seed | (user >> 5), (user & 31) << 3]) + raw), public


SEED, PUBLIC_NKEY = user_nkey("nats-reconcile test user")
WRONG_SEED, _ = user_nkey("nats-reconcile someone else")
NKEY_CONFIG = f'authorization {{ users = [ {{ nkey: "{PUBLIC_NKEY}" }} ] }}\n'

CREDS_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ."
    "eyJqdGkiOiJDUkVEUy1TRUNSRVQtSldULVBBWUxPQUQtOTk5In0.c2lnbmF0dXJlLXNlY3JldC1jcmVkcw"
)
CREDS = f"""-----BEGIN NATS USER JWT-----
{CREDS_JWT}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{SEED}
------END USER NKEY SEED------

*************************************************************
"""

# Every string that must never appear in any output. The user name is not a secret.
SECRETS = [
    PASSWORD,
    WRONG_PASSWORD,
    OTHER_WRONG_PASSWORD,
    TOKEN,
    WRONG_TOKEN,
    SEED,
    WRONG_SEED,
    SEED[:20],  # a prefix of the seed is as bad as the seed
    CREDS_JWT,
    CREDS_JWT.split(".")[1],
    "BEGIN USER NKEY SEED",
    "BEGIN NATS USER JWT",
    f"{USER}:{PASSWORD}",
]


# --- running the CLI ----------------------------------------------------------------------------------


class Home:
    """A config home for one run: XDG_CONFIG_HOME/nats/context/<name>.json and context.txt."""

    def __init__(self, root: Path):
        self.root = root
        (root / "nats" / "context").mkdir(parents=True, exist_ok=True)

    def context(self, name: str, **fields: Any) -> str:
        (self.root / "nats" / "context" / f"{name}.json").write_text(json.dumps(fields, indent=2))
        return name

    def context_text(self, name: str, text: str) -> str:
        (self.root / "nats" / "context" / f"{name}.json").write_text(text)
        return name

    def select(self, name: str) -> None:
        (self.root / "nats" / "context.txt").write_text(name)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={"XDG_CONFIG_HOME": str(self.root), "HOME": str(self.root), **(env or {})})


@pytest.fixture
def homes(tmp_path: Path) -> Callable[[], Home]:
    """A factory of fresh config homes, so concurrent runs never share a context.txt."""
    numbers = itertools.count(1)  # next() on it is atomic: homes are made from several threads

    def make() -> Home:
        return Home(tmp_path / f"home{next(numbers)}")

    return make


@pytest.fixture
def manifests(tmp_path: Path) -> str:
    write(
        tmp_path / "manifests",
        "orders.yaml",
        """
        kind: Stream
        name: ORDERS
        spec:
          subjects: ["orders.>"]
          max_age: 1h
        """,
    )
    return str(tmp_path / "manifests")


def run_all(jobs: Iterable[Callable[[], Any]], workers: int = 16) -> list[Any]:
    """Run independent CLI invocations at once; a failing connection takes seconds, most of it waiting."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def problems_of(result: subprocess.CompletedProcess[str], secrets: Iterable[str] = SECRETS) -> list[str]:
    found = []
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        found += [f"{stream} shows secret {s!r}" for s in secrets if s in text]
        if "Traceback" in text:
            found.append(f"{stream} has a traceback")
    if result.returncode == 3 or "a bug in nats-reconcile" in result.stderr:
        found.append("exit 3: an unexpected error")
    return found


def assert_clean(result: subprocess.CompletedProcess[str], *, code: int | None = None) -> None:
    problems = problems_of(result)
    if code is not None and result.returncode != code:
        problems.append(f"exit {result.returncode}, expected {code}")
    assert not problems, f"{problems}\n--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    assert_clean(result, code=1)
    assert result.stderr.startswith("error: cannot connect to "), result.stderr
    assert result.stdout == "", result.stdout


@dataclass
class Servers:
    userpass: LocalServer  # accepts alice / PASSWORD only
    token: LocalServer  # accepts TOKEN only
    dead: str  # a port nothing listens on

    @property
    def up(self) -> str:
        return self.userpass.url

    @property
    def tok(self) -> str:
        return self.token.url


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A port that refuses connections: bound (so no server started meanwhile takes it), never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"nats://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def servers(server_factory, dead_url) -> Servers:
    return Servers(server_factory(config=USERPASS_CONFIG), server_factory(config=TOKEN_CONFIG), dead_url)


def with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("nats://", f"nats://{userinfo}@", 1)


# --- 1. connecting through a context ------------------------------------------------------------------

KINDS = {
    "userpass": (
        USERPASS_CONFIG,
        {"user": USER, "password": PASSWORD},
        {"user": USER, "password": WRONG_PASSWORD},
    ),
    "token": (TOKEN_CONFIG, {"token": TOKEN}, {"token": WRONG_TOKEN}),
}


def selected(home: Home, how: str, name: str) -> tuple[list[str], dict[str, str]]:
    """Arguments and env that select context `name` by --context, by NATS_CONTEXT or by context.txt."""
    if how == "flag":
        return ["--context", name], {}
    if how == "env":
        return [], {"NATS_CONTEXT": name}
    home.select(name)
    return [], {}


@pytest.mark.parametrize("how", ["flag", "context.txt", "env"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_plan_and_apply_through_a_context(server_factory, homes, manifests, kind, how):
    config, good, _ = KINDS[kind]
    server = server_factory(config=config)
    home = homes()
    args, env = selected(home, how, home.context("prod", description="test", url=server.url, **good))

    plan = home.run("plan", manifests, *args, env=env)
    assert_clean(plan, code=0)
    assert "+ create stream/ORDERS" in plan.stdout
    assert_clean(home.run("plan", manifests, "--detailed-exitcode", *args, env=env), code=2)
    apply = home.run("apply", manifests, *args, env=env)
    assert_clean(apply, code=0)
    assert "created stream/ORDERS" in apply.stdout
    assert_clean(home.run("plan", manifests, "--detailed-exitcode", *args, env=env), code=0)
    assert "kind: Stream\nname: ORDERS\n" in home.run("export", *args, env=env).stdout


@pytest.mark.parametrize("kind", list(KINDS))
def test_wrong_credentials_in_a_context_fail_cleanly(server_factory, homes, manifests, kind):
    config, _, bad = KINDS[kind]
    server = server_factory(config=config)

    def attempt(how: str) -> subprocess.CompletedProcess[str]:
        home = homes()
        args, env = selected(home, how, home.context("prod", url=server.url, **bad))
        return home.run("plan", manifests, "--detailed-exitcode", *args, env=env)

    def without_credentials() -> subprocess.CompletedProcess[str]:
        return homes().run("plan", manifests, "-s", server.url)  # control: the server wants credentials

    jobs = [lambda how=how: attempt(how) for how in ("flag", "context.txt", "env")]
    for result in run_all([*jobs, without_credentials]):
        assert_refused(result)
        assert server.url in result.stderr


def test_wrong_credentials_say_authorization(server_factory, homes, manifests):
    def attempt(kind: str) -> subprocess.CompletedProcess[str]:
        config, _, bad = KINDS[kind]
        server = server_factory(config=config)
        home = homes()
        return home.run("plan", manifests, "--context", home.context("prod", url=server.url, **bad))

    for result in run_all([lambda kind=kind: attempt(kind) for kind in KINDS]):
        assert_refused(result)
        assert "authorization" in result.stderr.lower(), result.stderr


def test_timeout_bounds_a_failing_connection(servers, homes, manifests):
    home = homes()

    def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        start = time.monotonic()
        result = home.run(*args)
        return time.monotonic() - start, result

    startup, _ = timed("validate", manifests)  # what a run costs on this machine without any connection
    for seconds, result in run_all(
        [
            lambda: timed("plan", manifests, "--timeout", "1s", "-s", servers.dead),
            lambda: timed(
                "plan",
                manifests,
                "--timeout",
                "1s",
                "-s",
                servers.up,
                "--user",
                USER,
                "--password",
                WRONG_PASSWORD,
            ),
        ]
    ):
        assert_refused(result)
        assert seconds - startup < 3.0, f"took {seconds:.1f}s with --timeout 1s (startup {startup:.1f}s)"


def test_which_context_is_used(servers, homes, manifests):
    """--context beats NATS_CONTEXT beats context.txt; "bad" points at a server that refuses alice."""

    def case(file: str | None, env: str | None, flag: str | None) -> Callable[[], Any]:
        def run() -> subprocess.CompletedProcess[str]:
            home = homes()
            home.context("good", url=servers.up, user=USER, password=PASSWORD)
            home.context("bad", url=servers.tok, user=USER, password=PASSWORD)
            if file:
                home.select(file)
            return home.run(
                "plan",
                manifests,
                *(["--context", flag] if flag else []),
                env={"NATS_CONTEXT": env} if env else {},
            )

        return run

    cases = {
        ("good", None, None): 0,  # control: context.txt is read
        ("bad", None, None): 1,  # control: and its server really refuses
        ("bad", "good", None): 0,  # NATS_CONTEXT beats context.txt
        ("good", "bad", None): 1,
        ("bad", None, "good"): 0,  # --context beats context.txt
        ("good", None, "bad"): 1,
        ("bad", "bad", "good"): 0,  # --context beats NATS_CONTEXT
        ("good", "good", "bad"): 1,
    }
    results = run_all([case(*key) for key in cases])
    for (key, code), result in zip(cases.items(), results, strict=True):
        assert result.returncode == code, (key, result.stderr)
        assert_clean(result, code=code)


def test_missing_context_is_an_error_naming_it(homes, manifests):
    home = homes()
    home.context("prod", url="nats://127.0.0.1:1")
    for args, env in ((["--context", "staging"], {}), ([], {"NATS_CONTEXT": "staging"})):
        result = home.run("plan", manifests, *args, env=env)
        assert_clean(result, code=1)
        assert "nats context 'staging' not found" in result.stderr, result.stderr
        assert str(home.root / "nats" / "context" / "staging.json") in result.stderr


def test_malformed_context_is_a_clear_error_without_its_content(homes, manifests):
    home = homes()
    home.context_text("broken", f'{{\n  "url": "nats://127.0.0.1:4222",\n  "password": "{PASSWORD}",\n')
    home.select("broken")
    for command in (["plan", manifests], ["apply", manifests], ["export"], ["lock", "show"]):
        result = home.run(*command)
        assert_clean(result, code=1)
        assert "cannot read nats context 'broken'" in result.stderr, result.stderr
        assert '"url"' not in result.stderr and "password" not in result.stderr
    assert_clean(home.run("validate", manifests), code=0)  # offline: the context is not needed


def test_context_that_is_not_a_json_object_is_a_clear_error(homes, manifests):
    home = homes()
    result = home.run("plan", manifests, "--context", home.context_text("odd", f'["{PASSWORD}"]'))
    assert_clean(result, code=1)
    assert "'odd'" in result.stderr


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"nsc": "nsc://op/acc/user"}, "'nsc'"),
        ({"user_jwt": CREDS_JWT}, "'user_jwt'"),
        ({"socks_proxy": f"socks5://{USER}:{PASSWORD}@127.0.0.1:1080"}, "'socks_proxy'"),
        ({"creds": "op://vault/nats/creds"}, "'creds' as a URI"),
        ({"nkey": f"env://NKEY_{TOKEN}"}, "'nkey' as a URI"),
    ],
)
def test_unsupported_context_settings_are_refused_by_name(homes, manifests, fields, named):
    # Ignored, they would connect another way than `nats` does: without the proxy, or as nobody.
    home = homes()
    home.select(home.context("odd", url="nats://127.0.0.1:1", **fields))
    result = home.run("plan", manifests)
    assert_clean(result, code=1)
    assert "nats context 'odd'" in result.stderr and named in result.stderr, result.stderr
    assert "127.0.0.1:1080" not in result.stderr and "vault" not in result.stderr


def test_empty_unsupported_settings_are_fine(server_factory, homes, manifests):
    # `nats context save` writes every setting, the ones not in use as empty strings.
    server = server_factory()
    home = homes()
    empty = {"nsc": "", "user_jwt": "", "socks_proxy": "", "creds": "", "nkey": "", "description": ""}
    home.select(home.context("plain", url=server.url, **empty))
    result = home.run("plan", manifests)
    assert_clean(result, code=0)
    assert "to create" in result.stdout, result.stdout


def test_server_url_precedence(servers, homes, manifests):
    """-s beats NATS_URL beats the context's url; the loser always points at the server that refuses."""

    def case(context: str, env_url: str | None, flag_url: str | None) -> Callable[[], Any]:
        def run() -> subprocess.CompletedProcess[str]:
            home = homes()
            url = {
                "to-refusing": servers.tok,
                "to-accepting": servers.up,
                "comma": f"{servers.dead}, {servers.up}",
            }[context]
            home.select(home.context("ctx", url=url, user=USER, password=PASSWORD))
            return home.run(
                "plan",
                manifests,
                *(["-s", flag_url] if flag_url else []),
                env={"NATS_URL": env_url} if env_url else {},
            )

        return run

    up, tok, dead = servers.up, servers.tok, servers.dead
    cases = {
        ("to-refusing", None, None): 1,  # control: the context's url is used
        ("to-accepting", None, None): 0,  # control
        ("comma", None, None): 0,  # comma-separated urls: the one that listens is found
        ("to-refusing", None, up): 0,  # -s beats the context
        ("to-accepting", None, tok): 1,
        ("to-refusing", up, None): 0,  # NATS_URL beats the context
        ("to-accepting", tok, None): 1,
        ("to-refusing", tok, up): 0,  # -s beats NATS_URL
        ("to-accepting", up, tok): 1,
        ("to-accepting", up, dead): 1,
    }
    results = run_all([case(*key) for key in cases])
    for (key, code), result in zip(cases.items(), results, strict=True):
        assert result.returncode == code, (key, result.stderr)
        assert_clean(result, code=code)


def plan_through_context(homes, manifests, url: str) -> Callable[..., Callable[[], Any]]:
    """case(context fields, env, flags) -> a run of `plan` through a fresh context pointing at `url`."""

    def case(context: dict[str, str], env: dict[str, str], flags: tuple[str, ...]) -> Callable[[], Any]:
        def run() -> subprocess.CompletedProcess[str]:
            home = homes()
            ctx = home.context("ctx", url=url, **context)
            return home.run("plan", manifests, "--context", ctx, *flags, env=env)

        return run

    return case


def test_user_and_password_precedence(servers, homes, manifests):
    """--user/--password beat NATS_USER/NATS_PASSWORD beat the context's; field by field."""

    case = plan_through_context(homes, manifests, servers.up)

    wrong = {"user": USER, "password": WRONG_PASSWORD}
    right = {"user": USER, "password": PASSWORD}
    bob = {"user": "bob", "password": PASSWORD}
    cases = [
        (wrong, {}, (), 1),  # control: the context's password is used
        (right, {}, (), 0),  # control
        (wrong, {}, ("--user", USER, "--password", PASSWORD), 0),
        (wrong, {}, ("--password", PASSWORD), 0),  # user from the context, password from the flag
        (wrong, {"NATS_PASSWORD": PASSWORD}, (), 0),  # env beats the context
        (right, {"NATS_PASSWORD": OTHER_WRONG_PASSWORD}, (), 1),
        (wrong, {"NATS_PASSWORD": OTHER_WRONG_PASSWORD}, ("--password", PASSWORD), 0),  # flag beats env
        (wrong, {"NATS_PASSWORD": PASSWORD}, ("--password", OTHER_WRONG_PASSWORD), 1),
        (right, {}, ("--password", OTHER_WRONG_PASSWORD), 1),  # a flag beats even a correct context
        (bob, {}, (), 1),  # control: the server knows no bob
        (bob, {}, ("--user", USER), 0),
        (bob, {"NATS_USER": USER}, (), 0),
        (bob, {"NATS_USER": USER}, ("--user", "bob"), 1),
    ]
    results = run_all([case(c, e, f) for c, e, f, _ in cases])
    for (context, env, flags, code), result in zip(cases, results, strict=True):
        assert result.returncode == code, (context, env, flags, result.stderr)
        assert_clean(result, code=code)


def test_token_precedence(servers, homes, manifests):
    def case(token: str, env: dict[str, str], flags: tuple[str, ...]) -> Callable[[], Any]:
        def run() -> subprocess.CompletedProcess[str]:
            home = homes()
            home.select(home.context("ctx", url=servers.tok, token=token))
            return home.run("plan", manifests, *flags, env=env)

        return run

    cases = [
        (WRONG_TOKEN, {}, (), 1),  # control
        (TOKEN, {}, (), 0),  # control
        (WRONG_TOKEN, {}, ("--token", TOKEN), 0),
        (WRONG_TOKEN, {"NATS_TOKEN": TOKEN}, (), 0),
        (TOKEN, {"NATS_TOKEN": WRONG_TOKEN}, (), 1),
        (WRONG_TOKEN, {"NATS_TOKEN": WRONG_TOKEN}, ("--token", TOKEN), 0),
        (WRONG_TOKEN, {"NATS_TOKEN": TOKEN}, ("--token", WRONG_TOKEN), 1),
    ]
    results = run_all([case(t, e, f) for t, e, f, _ in cases])
    for (token, env, flags, code), result in zip(cases, results, strict=True):
        assert result.returncode == code, (token, env, flags, result.stderr)
        assert_clean(result, code=code)


CROSS_KIND = (
    "BUG: cli.py connect_options (the field-by-field loop) keeps the lower layer's credential of another "
    "kind, and nats-py sends creds > nkey > user+password > token > URL userinfo, so the flag's is not used"
)


@pytest.mark.parametrize(
    ("server", "context", "flags", "env"),
    [
        pytest.param(
            "up",
            {"token": WRONG_TOKEN},
            ("--user", USER, "--password", PASSWORD),
            {},
            id="flag-userpass-over-context-token",
        ),
        pytest.param(
            "tok",
            {"user": USER, "password": WRONG_PASSWORD},
            ("--token", TOKEN),
            {},
            id="flag-token-over-context-userpass",
        ),
        pytest.param(
            "tok",
            {},
            ("--token", TOKEN),
            {"NATS_USER": USER, "NATS_PASSWORD": WRONG_PASSWORD},
            id="flag-token-over-env-userpass",
        ),
        pytest.param(
            "up",
            {"creds": "CREDS_FILE"},
            ("--user", USER, "--password", PASSWORD),
            {},
            id="flag-userpass-over-context-creds",
        ),
        pytest.param(
            "up",
            {"user": USER, "password": WRONG_PASSWORD},
            ("-s", "URL_WITH_PASSWORD"),
            {},
            id="flag-url-userinfo-over-context-password",
        ),
    ],
)
def test_flag_credentials_of_another_kind_win(
    servers, homes, manifests, tmp_path, server, context, flags, env
):
    url = servers.up if server == "up" else servers.tok
    creds = tmp_path / "user.creds"
    creds.write_text(CREDS)
    context = {k: str(creds) if v == "CREDS_FILE" else v for k, v in context.items()}
    flags = tuple(with_userinfo(url, f"{USER}:{PASSWORD}") if f == "URL_WITH_PASSWORD" else f for f in flags)
    home = homes()
    result = home.run(
        "plan", manifests, "--context", home.context("ctx", url=url, **context), *flags, env=env
    )
    assert_clean(result, code=0)


def test_js_domain_from_context_and_its_overrides(server_factory, homes, manifests):
    server = server_factory(config="jetstream { domain: hub }\n")

    case = plan_through_context(homes, manifests, server.url)

    cases = [
        ({"jetstream_domain": "elsewhere"}, {}, (), 1),  # control: the context's domain is used
        ({"jetstream_domain": "hub"}, {}, (), 0),
        ({"jetstream_api_prefix": "$JS.hub.API"}, {}, (), 0),
        ({"jetstream_api_prefix": "$JS.elsewhere.API"}, {}, (), 1),
        ({"jetstream_domain": "elsewhere"}, {}, ("--js-domain", "hub"), 0),
        ({"jetstream_domain": "elsewhere"}, {"NATS_JS_DOMAIN": "hub"}, (), 0),
        ({"jetstream_domain": "hub"}, {"NATS_JS_DOMAIN": "elsewhere"}, (), 1),
        ({"jetstream_domain": "hub"}, {"NATS_JS_DOMAIN": "hub"}, ("--js-domain", "elsewhere"), 1),
    ]
    results = run_all([case(c, e, f) for c, e, f, _ in cases])
    for (*_, code), result in zip(cases, results, strict=True):
        assert_clean(result, code=code)
        if code:
            assert "is JetStream enabled in domain 'elsewhere'" in result.stderr or (
                "$JS.elsewhere.API" in result.stderr
            ), result.stderr


@pytest.mark.parametrize("how", ["flag", "env", "context"])
def test_nkey_seed_file_connects(server_factory, homes, manifests, tmp_path, how):
    server = server_factory(config=NKEY_CONFIG)
    seed = tmp_path / "user.nk"
    seed.write_text(SEED + "\n")
    home = homes()
    if how == "flag":
        result = home.run("plan", manifests, "-s", server.url, "--nkey", str(seed))
    elif how == "env":
        result = home.run("plan", manifests, env={"NATS_URL": server.url, "NATS_NKEY": str(seed)})
    else:
        result = home.run("plan", manifests, "--context", home.context("nk", url=server.url, nkey=str(seed)))
    assert_clean(result, code=0)


# --- 2. no secret in any output -----------------------------------------------------------------------

COMMANDS: list[tuple[str, ...]] = [
    ("validate", "MANIFESTS"),
    ("plan", "MANIFESTS", "--output", "text"),
    ("plan", "MANIFESTS", "--output", "json"),
    ("plan", "MANIFESTS", "--output", "markdown"),
    ("apply", "MANIFESTS"),
    ("export",),
    ("lock", "show"),
]


@dataclass
class Target:
    """Where one source of credentials is sent: a url and the credential (a password, token or file)."""

    name: str
    url: str
    secret: str
    works: bool | None  # None: would work, but cannot be checked yet (see test_nkey_seed_file_connects)


@dataclass
class Source:
    name: str
    kind: str  # "userpass", "token", "nkey", "creds"
    on_command_line: bool
    build: Callable[[Target, Home], tuple[list[str], dict[str, str]]]


def _ctx(home: Home, how: str, **fields: str) -> tuple[list[str], dict[str, str]]:
    return selected(home, how, home.context("secret-ctx", **fields))


SOURCES = [
    Source(
        "flag-password",
        "userpass",
        True,
        lambda t, h: (["-s", t.url, "--user", USER, "--password", t.secret], {}),
    ),
    Source("flag-token", "token", True, lambda t, h: (["-s", t.url, "--token", t.secret], {})),
    Source(
        "flag-url-userpass",
        "userpass",
        True,
        lambda t, h: (["-s", with_userinfo(t.url, f"{USER}:{t.secret}")], {}),
    ),
    Source("flag-url-token", "token", True, lambda t, h: (["--server", with_userinfo(t.url, t.secret)], {})),
    Source(
        "env-password",
        "userpass",
        False,
        lambda t, h: ([], {"NATS_URL": t.url, "NATS_USER": USER, "NATS_PASSWORD": t.secret}),
    ),
    Source("env-token", "token", False, lambda t, h: ([], {"NATS_URL": t.url, "NATS_TOKEN": t.secret})),
    Source(
        "env-url-userpass",
        "userpass",
        False,
        lambda t, h: ([], {"NATS_URL": with_userinfo(t.url, f"{USER}:{t.secret}")}),
    ),
    Source(
        "context-password",
        "userpass",
        False,
        lambda t, h: _ctx(h, "context.txt", url=t.url, user=USER, password=t.secret),
    ),
    Source("context-token", "token", False, lambda t, h: _ctx(h, "flag", url=t.url, token=t.secret)),
    Source(
        "context-url-userpass",
        "userpass",
        False,
        lambda t, h: _ctx(h, "env", url=with_userinfo(t.url, f"{USER}:{t.secret}")),
    ),
    Source("flag-nkey", "nkey", True, lambda t, h: (["-s", t.url, "--nkey", t.secret], {})),
    Source("context-nkey", "nkey", False, lambda t, h: _ctx(h, "flag", url=t.url, nkey=t.secret)),
    Source("flag-creds", "creds", True, lambda t, h: (["-s", t.url, "--creds", t.secret], {})),
    Source("env-creds", "creds", False, lambda t, h: ([], {"NATS_URL": t.url, "NATS_CREDS": t.secret})),
]


def targets(kind: str, servers: Servers, nkey_server: LocalServer, files: dict[str, str]) -> list[Target]:
    right, wrong, ok_url, refusing_url = {
        "userpass": (PASSWORD, WRONG_PASSWORD, servers.up, servers.tok),  # the token server refuses alice
        "token": (TOKEN, WRONG_TOKEN, servers.tok, servers.up),  # the password server refuses a token
        "nkey": (files["seed"], files["wrong_seed"], nkey_server.url, servers.up),
        "creds": (files["creds"], files["creds"], nkey_server.url, servers.up),  # no operator-mode server
    }[kind]
    found = [
        Target("wrong-secret", ok_url, wrong, False),
        Target("nothing-listens", servers.dead, right, False),
        Target("server-refuses", refusing_url, right, False),
    ]
    if kind != "creds":
        found.insert(0, Target("working", ok_url, right, True if kind != "nkey" else None))
    return found


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_no_secret_in_any_output(servers, server_factory, homes, manifests, tmp_path, source):
    nkey_server = server_factory(config=NKEY_CONFIG)
    files = {
        "seed": tmp_path / "user.nk",
        "wrong_seed": tmp_path / "other.nk",
        "creds": tmp_path / "user.creds",
    }
    files["seed"].write_text(SEED + "\n")
    files["wrong_seed"].write_text(WRONG_SEED + "\n")
    files["creds"].write_text(CREDS)
    commands = [c for c in COMMANDS if not (source.on_command_line and c[0] == "validate")]  # see below

    def job(target: Target, command: tuple[str, ...]) -> tuple[Target, tuple[str, ...], Any]:
        home = homes()
        args, env = source.build(target, home)
        argv = [manifests if a == "MANIFESTS" else a for a in command]
        if command[0] != "validate":
            argv += args
        return target, command, home.run(*argv, env=env)

    jobs = [
        lambda t=t, c=c: job(t, c)
        for t in targets(source.kind, servers, nkey_server, {k: str(v) for k, v in files.items()})
        for c in commands
    ]
    failures = []
    for target, command, result in run_all(jobs):
        where = f"[{target.name}] {' '.join(command)}"
        problems = problems_of(result)
        if command[0] == "validate":
            expected: int | None = 0
        elif target.works is None:
            expected = None
        else:
            expected = 0 if target.works else 1
        if expected is not None and result.returncode != expected:
            problems.append(f"exit {result.returncode}, expected {expected}")
        if expected == 1 and not result.stderr.startswith("error: "):
            problems.append("no one-line error")
        if expected == 0 and command[1:] == ("MANIFESTS", "--output", "json"):
            json.loads(result.stdout)
        if problems:
            failures.append(
                f"{where}: {problems}\n    stdout: {result.stdout!r}\n    stderr: {result.stderr!r}"
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "flags",
    [
        ("--user", USER, "--password", PASSWORD),
        ("--token", TOKEN),
        ("-s", f"nats://{USER}:{PASSWORD}@127.0.0.1:4222"),
    ],
    ids=["password", "token", "url"],
)
def test_validate_with_connection_flags_shows_no_secret(homes, manifests, flags):
    """CI jobs pass the same connection flags to every command; validate must not echo them."""
    assert_clean(homes().run("validate", manifests, *flags), code=0)


def test_mistyped_flag_shows_no_secret(homes, manifests):
    result = homes().run("plan", manifests, "--pasword", PASSWORD)
    assert PASSWORD not in result.stderr + result.stdout, result.stderr


def test_usage_error_exits_1_not_2(homes, manifests):
    assert homes().run("plan", manifests, "--detailed-exitcode", "--no-such-flag").returncode == 1
