"""nats CLI contexts: ~/.config/nats/context/<name>.json, the selected one named in context.txt."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ReconcileError

# context file field -> ConnectOptions field
FIELDS = {
    "url": "servers",
    "user": "user",
    "password": "password",
    "token": "token",
    "creds": "creds",
    "nkey": "nkey",
    "cert": "tlscert",
    "key": "tlskey",
    "ca": "tlsca",
    "tls_first": "tlsfirst",
    "jetstream_domain": "js_domain",
    "jetstream_api_prefix": "js_api_prefix",
    "inbox_prefix": "inbox_prefix",
}
# Settings the nats CLI knows and we do not. Ignoring one would connect differently from `nats` (no
# proxy, other credentials), so a context that sets one is refused, naming the setting, never its value.
UNSUPPORTED = {
    "nsc": "an nsc:// credentials lookup",
    "user_jwt": "a user JWT given inline",
    "socks_proxy": "a SOCKS proxy",
    "windows_cert_store": "the Windows certificate store",
    "windows_cert_match": "the Windows certificate store",
}


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nats"


def selected_context() -> str | None:
    path = config_dir() / "context.txt"
    try:
        name = path.read_text().strip()
    except OSError:
        return None
    return name or None


def load_context(name: str | None) -> dict[str, Any]:
    """ConnectOptions fields from the named context (or the selected one); {} when there is none."""
    explicit = name is not None
    name = name or selected_context()
    if not name:
        return {}
    if "/" in name or name.startswith("."):
        raise ReconcileError(f"invalid context name {name!r}")
    path = config_dir() / "context" / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        how = "" if explicit else f", selected in {config_dir() / 'context.txt'}"
        raise ReconcileError(f"nats context {name!r} not found ({path}{how})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ReconcileError(
            f"cannot read nats context {name!r} ({path}): {exc.__class__.__name__}"
        ) from None
    if not isinstance(data, dict):
        raise ReconcileError(f"nats context {name!r} ({path}) is not a JSON object")
    for key, what in UNSUPPORTED.items():
        if data.get(key) not in (None, "", False):
            raise ReconcileError(
                f"nats context {name!r} ({path}) sets {key!r} ({what}), which nats-reconcile does not "
                "support; give the server and credentials as url, creds or nkey file paths, user and "
                "password, or token"
            )
    for key in ("creds", "nkey"):
        if "://" in str(data.get(key) or ""):  # op://, env://, file:// and the like
            raise ReconcileError(
                f"nats context {name!r} ({path}) gives {key!r} as a URI, which nats-reconcile does not "
                "support; give the path of the file"
            )
    options: dict[str, Any] = {}
    for key, field in FIELDS.items():
        value = data.get(key)
        if value in (None, "", False):
            continue
        if field == "servers":
            value = [s.strip() for s in str(value).split(",") if s.strip()]
        options[field] = value
    return options
