"""context.py and cli.connect_options, without a server: which nats CLI context is read, how its fields map,
and the precedence flags > env vars > context > defaults for every connection field.

Field names are the nats CLI's (jsm.go natscontext `settings` and ADR-21): url, token, user, password, creds,
nkey, cert, key, ca, jetstream_domain, jetstream_api_prefix, inbox_prefix, tls_first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import _parser, connect_options
from reconciler.connection import DEFAULT_URL, ConnectOptions
from reconciler.context import FIELDS, config_dir, load_context, selected_context
from reconciler.errors import ReconcileError

SECRET = "s3cr3t-Pa55-XYZ"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty XDG_CONFIG_HOME (and HOME), so no real context of the machine is ever read."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


def write_context(xdg: Path, name: str, data: Any = None, *, text: str | None = None) -> Path:
    path = xdg / "nats" / "context" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(data))
    return path


def select(xdg: Path, text: str) -> None:
    (xdg / "nats").mkdir(parents=True, exist_ok=True)
    (xdg / "nats" / "context.txt").write_text(text)


def options(*flags: str, env: dict[str, str] | None = None) -> ConnectOptions:
    args = _parser().parse_args(["plan", "manifests", *flags])
    return connect_options(args, env or {})


# --- which context ----------------------------------------------------------------------------------


def test_no_context_at_all_is_empty(xdg):
    assert selected_context() is None
    assert load_context(None) == {}
    assert options() == ConnectOptions()  # defaults only
    assert options().servers == [DEFAULT_URL]


def test_config_dir_is_xdg_config_home_then_home_dot_config(xdg, tmp_path, monkeypatch):
    assert config_dir() == xdg / "nats"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config_dir() == tmp_path / "home" / ".config" / "nats"
    monkeypatch.setenv("XDG_CONFIG_HOME", "")  # empty counts as unset, as in the nats CLI
    assert config_dir() == tmp_path / "home" / ".config" / "nats"


def test_home_dot_config_is_read_without_xdg(xdg, tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    home_config = tmp_path / "home" / ".config"
    write_context(home_config, "dev", {"url": "nats://home:4222"})
    select(home_config, "dev")
    assert load_context(None) == {"servers": ["nats://home:4222"]}


def test_selected_context_from_context_txt(xdg):
    write_context(xdg, "prod", {"url": "nats://prod:4222", "user": "alice", "password": SECRET})
    select(xdg, "prod\n")  # `nats context select` writes no newline; an editor may add one
    assert selected_context() == "prod"
    assert load_context(None) == {"servers": ["nats://prod:4222"], "user": "alice", "password": SECRET}
    got = options()
    assert (got.servers, got.user, got.password) == (["nats://prod:4222"], "alice", SECRET)


def test_context_txt_whitespace_and_empty(xdg):
    write_context(xdg, "prod", {"url": "nats://prod:4222"})
    select(xdg, "  prod  \n\n")
    assert selected_context() == "prod"
    select(xdg, " \n")
    assert selected_context() is None
    assert load_context(None) == {}


def test_dotted_context_name(xdg):
    write_context(xdg, "ngs.js", {"url": "nats://ngs:4222"})
    assert load_context("ngs.js") == {"servers": ["nats://ngs:4222"]}


def test_explicit_context_wins_over_selected(xdg):
    write_context(xdg, "prod", {"url": "nats://prod:4222"})
    write_context(xdg, "dev", {"url": "nats://dev:4222"})
    select(xdg, "prod")
    assert load_context("dev") == {"servers": ["nats://dev:4222"]}
    assert options("--context", "dev").servers == ["nats://dev:4222"]


def test_context_selection_order_flag_env_file(xdg):
    for name in ("file", "env", "flag"):
        write_context(xdg, name, {"url": f"nats://{name}:4222"})
    select(xdg, "file")
    assert options().servers == ["nats://file:4222"]
    assert options(env={"NATS_CONTEXT": "env"}).servers == ["nats://env:4222"]
    assert options("--context", "flag", env={"NATS_CONTEXT": "env"}).servers == ["nats://flag:4222"]


def test_missing_explicit_context_is_an_error_naming_it(xdg):
    write_context(xdg, "prod", {"url": "nats://prod:4222"})
    with pytest.raises(ReconcileError) as info:
        load_context("staging")
    message = str(info.value)
    assert "'staging'" in message and "not found" in message
    assert str(xdg / "nats" / "context" / "staging.json") in message
    with pytest.raises(ReconcileError, match="'staging'"):
        options("--context", "staging")
    with pytest.raises(ReconcileError, match="'staging'"):
        options(env={"NATS_CONTEXT": "staging"})


def test_selected_context_that_does_not_exist_is_an_error(xdg):
    select(xdg, "gone")
    with pytest.raises(ReconcileError, match="'gone'"):
        load_context(None)


@pytest.mark.parametrize("name", ["../escape", "a/b", "/etc/passwd"])
def test_invalid_context_names(xdg, name):
    with pytest.raises(ReconcileError, match="invalid context name"):
        load_context(name)


def test_invalid_name_in_context_txt(xdg):
    select(xdg, "../../etc/x")
    with pytest.raises(ReconcileError, match="invalid context name"):
        load_context(None)


# --- bad files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f'{{"url": "nats://prod:4222", "password": "{SECRET}", ',  # truncated
        f'{{"password": "{SECRET}" "token": "x"}}',  # missing comma
        f"password={SECRET}\n",  # not JSON at all
        "",  # empty file
    ],
    ids=["truncated", "missing-comma", "not-json", "empty"],
)
def test_malformed_json_is_a_clear_error_without_the_content(xdg, text):
    path = write_context(xdg, "broken", text=text)
    select(xdg, "broken")
    for name in ("broken", None):  # explicit and selected
        with pytest.raises(ReconcileError) as info:
            load_context(name)
        message = str(info.value)
        assert "'broken'" in message and str(path) in message
        assert SECRET not in message and "password" not in message
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreadable_context_is_a_clear_error(xdg):
    path = xdg / "nats" / "context" / "dir.json"
    path.mkdir(parents=True)  # a directory: reading it fails with an OSError even as root
    with pytest.raises(ReconcileError, match=r"cannot read nats context 'dir'"):
        load_context("dir")


@pytest.mark.parametrize("text", ["[]", '"nats://prod:4222"', "42", "null"])
def test_json_that_is_not_an_object_is_a_clear_error(xdg, text):
    write_context(xdg, "odd", text=text)
    with pytest.raises(ReconcileError, match="'odd'"):
        load_context("odd")


# --- fields -----------------------------------------------------------------------------------------

ALL_FIELDS = {
    "url": "nats://a:4222",
    "user": "alice",
    "password": SECRET,
    "token": "tok",
    "creds": "/keys/user.creds",
    "nkey": "/keys/user.nk",
    "cert": "/tls/cert.pem",
    "key": "/tls/key.pem",
    "ca": "/tls/ca.pem",
    "tls_first": True,
    "jetstream_domain": "hub",
    "jetstream_api_prefix": "$JS.hub.API",
    "inbox_prefix": "_INBOX_reconcile",
}


def test_field_names_are_the_nats_cli_ones():
    assert set(FIELDS) == set(ALL_FIELDS)


def test_every_field_maps_to_connect_options(xdg):
    write_context(xdg, "full", ALL_FIELDS)
    loaded = load_context("full")
    assert loaded == {
        "servers": ["nats://a:4222"],
        "user": "alice",
        "password": SECRET,
        "token": "tok",
        "creds": "/keys/user.creds",
        "nkey": "/keys/user.nk",
        "tlscert": "/tls/cert.pem",
        "tlskey": "/tls/key.pem",
        "tlsca": "/tls/ca.pem",
        "tlsfirst": True,
        "js_domain": "hub",
        "js_api_prefix": "$JS.hub.API",
        "inbox_prefix": "_INBOX_reconcile",
    }
    got = ConnectOptions(**loaded)  # every key is a ConnectOptions field
    assert got.inbox_prefix == "_INBOX_reconcile" and got.tlsfirst is True
    assert got.api_prefix == "$JS.hub.API"


def test_fields_the_cli_writes_but_we_do_not_use_are_ignored(xdg):
    write_context(
        xdg,
        "cli",
        {
            "description": "made by nats context add",
            "url": "nats://a:4222",
            "socks_proxy": "",
            "nsc": "",
            "jetstream_event_prefix": "",
            "user_jwt": "",
            "color_scheme": "",
            "windows_cert_store": "",
            "token": "",
            "user": "",
            "password": "",
            "creds": "",
            "nkey": "",
            "cert": "",
            "key": "",
            "ca": "",
            "jetstream_domain": "",
            "jetstream_api_prefix": "",
            "inbox_prefix": "",
            "tls_first": False,
        },
    )
    assert load_context("cli") == {"servers": ["nats://a:4222"]}
    assert options("--context", "cli") == ConnectOptions(servers=["nats://a:4222"])


def test_context_without_url_uses_the_default_url(xdg):
    write_context(xdg, "nourl", {"user": "alice", "password": SECRET})
    assert options("--context", "nourl").servers == [DEFAULT_URL]


def test_js_domain_from_context_sets_the_api_prefix(xdg):
    write_context(xdg, "leaf", {"jetstream_domain": "hub"})
    assert options("--context", "leaf").api_prefix == "$JS.hub.API"
    assert options("--context", "leaf", "--js-domain", "edge").api_prefix == "$JS.edge.API"
    assert options("--context", "leaf", "--js-api-prefix", "$JS.x.API").api_prefix == "$JS.x.API"


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("nats://a:4222,nats://b:4222", ["nats://a:4222", "nats://b:4222"]),
        (" nats://a:4222 , nats://b:4222 ,, ", ["nats://a:4222", "nats://b:4222"]),
        ("a:4222,b:4223,tls://c:4224", ["a:4222", "b:4223", "tls://c:4224"]),
        ("nats://a:4222", ["nats://a:4222"]),
    ],
)
def test_comma_separated_urls(xdg, url, servers):
    write_context(xdg, "multi", {"url": url})
    assert load_context("multi")["servers"] == servers
    assert options("--context", "multi").servers == servers
    assert options(env={"NATS_URL": url}).servers == servers
    assert options("-s", url).servers == servers


def test_secrets_include_credentials_in_context_urls(xdg):
    write_context(xdg, "inurl", {"url": f"nats://alice:{SECRET}@a:4222,nats://tok-in-url@b:4222"})
    secrets = options("--context", "inurl").secrets()
    assert SECRET in secrets and "tok-in-url" in secrets


# --- precedence: flag > env > context > default, field by field -------------------------------------

# (ConnectOptions field, flag, env var, context key)
PRECEDENCE = [
    ("servers", "--server", "NATS_URL", "url"),
    ("creds", "--creds", "NATS_CREDS", "creds"),
    ("nkey", "--nkey", "NATS_NKEY", "nkey"),
    ("user", "--user", "NATS_USER", "user"),
    ("password", "--password", "NATS_PASSWORD", "password"),
    ("token", "--token", "NATS_TOKEN", "token"),
    ("tlscert", "--tlscert", "NATS_CERT", "cert"),
    ("tlskey", "--tlskey", "NATS_KEY", "key"),
    ("tlsca", "--tlsca", "NATS_CA", "ca"),
    ("js_domain", "--js-domain", "NATS_JS_DOMAIN", "jetstream_domain"),
    ("js_api_prefix", "--js-api-prefix", "NATS_JS_API_PREFIX", "jetstream_api_prefix"),
]


def _value(field: str, layer: str) -> str:
    return f"nats://{layer}:4222" if field == "servers" else f"{layer}-{field}"


def _expected(field: str, layer: str | None) -> Any:
    if layer is None:
        return [DEFAULT_URL] if field == "servers" else None
    return [_value(field, layer)] if field == "servers" else _value(field, layer)


@pytest.mark.parametrize(("field", "flag", "var", "key"), PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
@pytest.mark.parametrize(
    "layers",
    [
        (),
        ("context",),
        ("env",),
        ("flag",),
        ("context", "env"),
        ("context", "flag"),
        ("env", "flag"),
        ("context", "env", "flag"),
    ],
    ids=lambda layers: "+".join(layers) or "none",
)
def test_precedence_of_every_field(xdg, field, flag, var, key, layers):
    write_context(xdg, "ctx", {key: _value(field, "context")} if "context" in layers else {})
    select(xdg, "ctx")
    env = {var: _value(field, "env")} if "env" in layers else {}
    flags = [flag, _value(field, "flag")] if "flag" in layers else []
    winner = next((layer for layer in ("flag", "env", "context") if layer in layers), None)
    got = getattr(options(*flags, env=env), field)
    assert got == _expected(field, winner)


def test_fields_merge_across_layers(xdg):
    """Each field is taken from the highest layer that sets it: user from the context, password from env."""
    write_context(xdg, "ctx", {"url": "nats://ctx:4222", "user": "alice", "jetstream_domain": "hub"})
    got = options("--context", "ctx", "--js-api-prefix", "$JS.x.API", env={"NATS_PASSWORD": SECRET})
    assert (got.servers, got.user, got.password) == (["nats://ctx:4222"], "alice", SECRET)
    assert (got.js_domain, got.js_api_prefix, got.api_prefix) == ("hub", "$JS.x.API", "$JS.x.API")


def test_tlsfirst_flag_or_context(xdg):
    write_context(xdg, "first", {"tls_first": True})
    write_context(xdg, "plain", {"url": "nats://a:4222"})
    assert options().tlsfirst is False
    assert options("--tlsfirst").tlsfirst is True
    assert options("--context", "first").tlsfirst is True
    assert options("--context", "plain", "--tlsfirst").tlsfirst is True


def test_inbox_prefix_comes_from_the_context(xdg):
    write_context(xdg, "ctx", {"inbox_prefix": "_INBOX_x"})
    assert options("--context", "ctx").inbox_prefix == "_INBOX_x"
    assert options().inbox_prefix is None


@pytest.mark.parametrize(
    ("flags", "env", "seconds"),
    [
        ((), {}, 5.0),
        (("--timeout", "2s"), {}, 2.0),
        (("--timeout", "1.5"), {}, 1.5),
        (("--timeout", "500ms"), {}, 0.5),
        ((), {"NATS_TIMEOUT": "3s"}, 3.0),
        (("--timeout", "2s"), {"NATS_TIMEOUT": "3s"}, 2.0),
    ],
)
def test_timeout_flag_then_env_then_default(xdg, flags, env, seconds):
    assert options(*flags, env=env).timeout == pytest.approx(seconds)


def test_context_env_var_does_not_leak_into_other_fields(xdg):
    """NATS_CONTEXT only picks the context; unrelated env vars are ignored."""
    write_context(xdg, "ctx", {"url": "nats://ctx:4222"})
    got = options(env={"NATS_CONTEXT": "ctx", "NATS_SOMETHING": "x", "HOME": "/nowhere"})
    assert got == ConnectOptions(servers=["nats://ctx:4222"])


# --- precedence between kinds of credentials --------------------------------------------------------


def authenticates_with(o: ConnectOptions) -> tuple[str, ...]:
    """What nats-py (2.x, Client._connect_command / _setup_nkeys_connect) sends for these options.

    creds, then nkey, then user+password, then token, then the userinfo of the server URL. nats.go (and so
    the nats CLI) lets the URL's userinfo win over user/password/token options.
    """
    if o.creds:
        return ("creds", o.creds)
    if o.nkey:
        return ("nkey", o.nkey)
    if o.user is not None and o.password is not None:
        return ("user", o.user, o.password)
    if o.token:
        return ("token", o.token)
    return ("url",)


CROSS_KIND_BUG = (
    "BUG: cli.py connect_options merges flag/env/context field by field, so a credential of one kind given "
    "by a higher layer does not replace a lower layer's credential of another kind; nats-py then picks "
    "creds > nkey > user/password > token > URL userinfo and silently uses the lower layer's"
)


@pytest.mark.parametrize(
    ("context", "flags", "env", "expected"),
    [
        pytest.param(
            {"token": "ctx-token"},
            ("--user", "alice", "--password", SECRET),
            {},
            ("user", "alice", SECRET),
            id="flag-userpass-over-context-token",
        ),
        pytest.param(
            {"user": "bob", "password": "ctx-pass"},
            ("--creds", "/f.creds"),
            {},
            ("creds", "/f.creds"),
            id="flag-creds-over-context-userpass",
        ),
        pytest.param(
            {"user": "bob", "password": "ctx-pass"},
            ("--token", "flag-token"),
            {},
            ("token", "flag-token"),
            id="flag-token-over-context-userpass",
        ),
        pytest.param(
            {"user": "bob", "password": "ctx-pass"},
            (),
            {"NATS_TOKEN": "env-token"},
            ("token", "env-token"),
            id="env-token-over-context-userpass",
        ),
        pytest.param(
            {"creds": "/ctx.creds"},
            ("--user", "alice", "--password", SECRET),
            {},
            ("user", "alice", SECRET),
            id="flag-userpass-over-context-creds",
        ),
        pytest.param(
            {"nkey": "/ctx.nk"},
            ("--token", "flag-token"),
            {},
            ("token", "flag-token"),
            id="flag-token-over-context-nkey",
        ),
        pytest.param(
            {},
            ("--token", "flag-token"),
            {"NATS_USER": "bob", "NATS_PASSWORD": "env-pass"},
            ("token", "flag-token"),
            id="flag-token-over-env-userpass",
        ),
        pytest.param(
            {"user": "bob", "password": "ctx-pass"},
            ("-s", f"nats://alice:{SECRET}@a:4222"),
            {},
            ("url",),
            id="flag-url-userinfo-over-context-userpass",
        ),
    ],
)
def test_a_higher_layer_credential_replaces_the_contexts(xdg, context, flags, env, expected):
    write_context(xdg, "ctx", context)
    assert authenticates_with(options("--context", "ctx", *flags, env=env)) == expected
