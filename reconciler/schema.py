"""The project's JSON Schemas (schemas/*.json): offline validators, short error messages, unit fields.

Schemas refer to each other by relative file name (`definitions.json#/definitions/duration`); every
file is registered in a `referencing.Registry` under its file name, so nothing is ever fetched.

jsonschema and referencing are imported on first use: a load served from the cache (cache.py)
validates nothing, and importing them is a good part of a pre-start run's start-up.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator
    from referencing import Registry

InstancePath = tuple[str | int, ...]

_HERE = Path(__file__).parent
# Installed: reconciler/schemas (a symlink in the source tree). Checkout without it: <repo>/schemas.
SCHEMA_DIR = _HERE / "schemas" if (_HERE / "schemas").is_dir() else _HERE.parent / "schemas"

# The definitions whose values a manifest may write in human units.
_UNIT_DEFS = {
    "definitions.json#/definitions/duration": "duration",
    "definitions.json#/definitions/size": "size",
    "definitions.json#/definitions/size32": "size",
}

# What Go's time.Time (RFC 3339) accepts, the server's parser.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@functools.cache
def _format_checker() -> jsonschema.FormatChecker:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_date_time)
    return checker


def _is_date_time(value: object) -> bool:
    # jsonschema's own date-time check needs an optional package and silently passes without it.
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")  # ValueError for 2024-13-01 and the like
    return True


@functools.cache
def _registry() -> Registry:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources).crawl()


def _schema(name: str) -> dict:
    try:
        return _registry().contents(f"{name}.json")
    except LookupError:
        raise KeyError(f"no schema {name!r} in {SCHEMA_DIR}") from None


@functools.cache
def validator(name: str) -> Validator:
    """A validator for schemas/<name>.json with every $ref resolved from the local files."""
    import jsonschema

    schema = _schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=_registry(), format_checker=_format_checker())


def schema_problems(name: str, instance: object) -> list[tuple[InstancePath, str]]:
    """Every schema error as (path into the instance, short message), sorted by path."""
    problems: dict[tuple[InstancePath, str], None] = {}
    bounds: dict[tuple[InstancePath, str], tuple[float, str]] = {}
    for error in validator(name).iter_errors(instance):
        for path, message, bound in _explain(error):
            if bound is None:
                problems[(path, message)] = None
                continue
            # `$ref` plus a sibling bound (ack_wait: duration, minimum 1) fails twice; keep the strictest.
            kind, limit = bound
            old = bounds.get((path, kind))
            lower = kind in ("minimum", "exclusiveMinimum")
            if old is None or (limit > old[0] if lower else limit < old[0]):
                bounds[(path, kind)] = (limit, message)
    problems.update({(path, message): None for (path, _), (_, message) in bounds.items()})
    return sorted(problems, key=lambda p: (_path_key(p[0]), p[1]))


def unit_fields(name: str) -> dict[tuple[str, ...], str]:
    """Path patterns ('*' = any list item or map value) of fields in human units -> 'duration' | 'size'."""
    return dict(_unit_fields(name))


@functools.cache
def _unit_fields(name: str) -> dict[tuple[str, ...], str]:
    found: dict[tuple[str, ...], str] = {}
    _walk(_schema(name), f"{name}.json", (), found, frozenset())
    return found


def _walk(schema: object, base: str, path: tuple[str, ...], found: dict, seen: frozenset[str]) -> None:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        target = urljoin(base, schema["$ref"])
        if target in _UNIT_DEFS:
            found[path] = _UNIT_DEFS[target]
        elif target not in seen:  # a ref cycle must not recurse forever
            contents = _registry().resolver().lookup(target).contents
            _walk(contents, target.partition("#")[0], path, found, seen | {target})
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _walk(sub, base, path, found, seen)
    for sub in [schema.get("then"), schema.get("else"), *schema.get("dependentSchemas", {}).values()]:
        _walk(sub, base, path, found, seen)
    for key, sub in schema.get("properties", {}).items():
        _walk(sub, base, (*path, key), found, seen)
    for key in ("items", "additionalProperties"):
        _walk(schema.get(key), base, (*path, "*"), found, seen)


def _explain(error: ValidationError) -> list[tuple[InstancePath, str, tuple[str, float] | None]]:
    """One error -> [(path, message, (bound keyword, limit) or None)]."""
    path = tuple(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    custom = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    if kind in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match

        return _explain(best_match(error.context))
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        return [
            ((*path, key), f"unknown field '{key}'", None)
            for key in instance
            if key not in known and not any(re.search(p, str(key)) for p in patterns)
        ]
    if kind == "required":
        message = custom.get("required")
        return [
            (path, message or f"required field '{key}' is missing", None)
            for key in value
            if key not in instance
        ]
    if kind in custom:
        return [(path, custom[kind], None)]
    if kind == "type":
        types = [value] if isinstance(value, str) else value
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return [(path, f"expected {expected}, got {_show(instance)}", None)]
    if kind == "enum":
        return [(path, "must be one of: " + ", ".join(_show_choice(v) for v in value), None)]
    if kind == "const":
        return [(path, f"must be {_show_choice(value)}", None)]
    if kind in _BOUNDS:
        return [(path, _BOUNDS[kind].format(value), (kind, value))]
    if kind == "minLength" and value == 1:
        return [(path, "must not be empty", None)]
    if kind in _MESSAGES:
        return [(path, _MESSAGES[kind].format(value), None)]
    if kind == "format":
        return [(path, _FORMAT_HINTS.get(value, f"must be a valid {value}"), None)]
    return [(path, error.message, None)]


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_BOUNDS = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
}
_FORMAT_HINTS = {"date-time": "must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z"}
_MESSAGES = {
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "uniqueItems": "must not contain duplicates",
}


def _show(value: object) -> str:
    """A value as the user wrote it in YAML/JSON, containers only by their kind."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _show_choice(value: object) -> str:
    return value if isinstance(value, str) and value else json.dumps(value)


def _path_key(path: InstancePath) -> tuple:
    # Paths mix keys and list indexes; sort numbers numerically and before names.
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path)
