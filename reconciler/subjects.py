"""NATS subject matching: validity, overlap and subset, with `*` and `>` wildcards."""

from __future__ import annotations


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
