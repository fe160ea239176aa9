"""NATS subject matching: validity, overlap and subset, with `*` and `>` wildcards."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

K = TypeVar("K")


def subject_problem(subject: str) -> str | None:
    """Why `subject` is not a valid subject (wildcards allowed), or None."""
    if not isinstance(subject, str) or not subject:
        return "a subject cannot be empty"
    if any(c.isspace() for c in subject):
        return f"subject {subject!r} contains whitespace"
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            return f"subject {subject!r} has an empty token"
        if ">" in token and (token != ">" or i != len(tokens) - 1):
            return f"subject {subject!r}: '>' must be a whole token at the end"
        if "*" in token and token != "*":
            return f"subject {subject!r}: '*' must be a whole token"
    return None


def overlaps(a: str, b: str) -> bool:
    """Whether some subject matches both patterns."""
    ta, tb = a.split("."), b.split(".")
    for x, y in zip(ta, tb, strict=False):
        if x == ">" or y == ">":
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(ta) == len(tb)


def is_subset(sub: str, sup: str) -> bool:
    """Whether every subject matching `sub` also matches `sup`."""
    ts, tp = sub.split("."), sup.split(".")
    for i, p in enumerate(tp):
        if p == ">":
            return len(ts) > i
        if i >= len(ts) or ts[i] == ">":
            return False
        if p != "*" and ts[i] != p:
            return False
    return len(ts) == len(tp)


def is_literal(subject: str) -> bool:
    """No wildcard in it."""
    return "*" not in subject and ">" not in subject


def overlapping_pairs(items: Iterable[tuple[K, str]], limit: int = 20) -> list[tuple[K, str, K, str]]:
    """(earlier key, its subject, later key, its subject) for items whose subjects overlap, at most `limit`.

    Indexed, so thousands of subjects stay fast: two literal subjects overlap only when equal (a dict
    lookup), and a subject is compared only with wildcards that can match it: those with the same
    first token, or a wildcard first token.
    """
    out: list[tuple[K, str, K, str]] = []
    literals: dict[str, K] = {}
    wild_by_first: dict[str, list[tuple[K, str]]] = defaultdict(list)  # wildcards with a literal first token
    all_by_first: dict[str, list[tuple[K, str]]] = defaultdict(list)
    wild_first: list[tuple[K, str]] = []  # subjects that start with * or >
    seen: list[tuple[K, str]] = []
    for key, subject in items:
        first = subject.split(".", 1)[0]
        if first in ("*", ">"):
            candidates: Iterable[tuple[K, str]] = seen
        elif is_literal(subject):
            if subject in literals:
                out.append((literals[subject], subject, key, subject))
            candidates = [*wild_by_first[first], *wild_first]
        else:
            candidates = [*all_by_first[first], *wild_first]
        for other_key, other in candidates:
            if (
                len(out) < limit
                and not (is_literal(other) and is_literal(subject))
                and overlaps(other, subject)
            ):
                out.append((other_key, other, key, subject))
        if len(out) >= limit:
            return out[:limit]
        seen.append((key, subject))
        if first in ("*", ">"):
            wild_first.append((key, subject))
        else:
            all_by_first[first].append((key, subject))
            if is_literal(subject):
                literals.setdefault(subject, key)
            else:
                wild_by_first[first].append((key, subject))
    return out
