"""subjects.py: subject validity, overlap and subset with `*` and `>`."""

from __future__ import annotations

import pytest

from reconciler.subjects import is_subset, overlaps, subject_problem


@pytest.mark.parametrize(
    "subject",
    ["a", "jobs.new", "jobs.*", "jobs.>", ">", "*", "*.*.>", "$KV.bucket.>", "$O.b.C.>", "a-b_c", "é.ü"],
)
def test_valid_subjects(subject):
    assert subject_problem(subject) is None


@pytest.mark.parametrize(
    ("subject", "fragment"),
    [
        ("", "cannot be empty"),
        (None, "cannot be empty"),
        (" ", "whitespace"),
        ("jobs new", "whitespace"),
        ("jobs.\tnew", "whitespace"),
        ("jobs.new\n", "whitespace"),
        ("jobs..new", "empty token"),
        (".jobs", "empty token"),
        ("jobs.", "empty token"),
        (".", "empty token"),
        ("jobs.>.new", "'>' must be a whole token at the end"),
        ("jobs.>.>", "'>' must be a whole token at the end"),
        ("jobs>", "'>' must be a whole token at the end"),
        ("jobs.>>", "'>' must be a whole token at the end"),
        ("jobs.n*", "'*' must be a whole token"),
        ("**", "'*' must be a whole token"),
    ],
)
def test_invalid_subjects(subject, fragment):
    problem = subject_problem(subject)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("jobs.a", "jobs.a", True),
        ("jobs.a", "jobs.b", False),
        ("jobs.>", "jobs.a", True),  # the work-queue case
        ("jobs.>", "jobs.a.b.c", True),
        ("jobs.>", "jobs", False),  # '>' needs at least one more token
        ("jobs.*", "jobs.a", True),
        ("jobs.*", "jobs.a.b", False),
        ("jobs.*", "jobs.>", True),
        ("*.a", "jobs.*", True),
        ("*.a", "jobs.b", False),
        ("jobs.*.x", "jobs.a.>", True),
        ("jobs.*", "jobs.a.>", False),  # one token vs at least two more
        ("jobs.a", "jobs.a.b", False),
        (">", "anything.at.all", True),
        ("*", "a.b", False),
        ("*", "a", True),
        ("a.>", "b.>", False),
    ],
)
def test_overlaps_is_symmetric(a, b, expected):
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


@pytest.mark.parametrize(
    ("sub", "sup", "expected"),
    [
        ("jobs.a", "jobs.a", True),
        ("jobs.a", "jobs.*", True),
        ("jobs.a", "jobs.>", True),
        ("jobs.a.b", "jobs.>", True),
        ("jobs.*", "jobs.>", True),
        ("jobs.>", "jobs.>", True),
        ("jobs.a.>", "jobs.>", True),
        ("jobs.>", ">", True),
        ("jobs", ">", True),
        ("*", ">", True),
        (">", ">", True),
        ("jobs.*", "*.*", True),
        ("jobs.b.>", "jobs.*.>", True),
        ("jobs.*", "jobs.a", False),
        ("jobs.>", "jobs.*", False),  # jobs.a.b is in the first only
        ("jobs", "jobs.>", False),
        ("jobs.>", "jobs.*.>", False),  # jobs.a is in the first only
        ("jobs.*.>", "jobs.b.>", False),
        ("jobs.a", "jobs", False),
        ("jobs", "jobs.a", False),
        (">", "jobs.>", False),
        ("orders.a", "jobs.>", False),
    ],
)
def test_is_subset(sub, sup, expected):
    assert is_subset(sub, sup) is expected


@pytest.mark.parametrize(
    ("sub", "sup"),
    [("jobs.a", "jobs.>"), ("jobs.*", "jobs.>"), ("a.b", "*.*"), ("x.>", ">"), ("a.b.>", "a.*.>")],
)
def test_a_subset_overlaps_its_superset(sub, sup):
    assert is_subset(sub, sup)
    assert overlaps(sub, sup)


# --- against brute force: every pattern of up to 3 tokens over a, b, *, > -----------------------------


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or token not in ("*", s[i]):
            return False
    return len(s) == len(p)


def _all(tokens: tuple[str, ...], longest: int) -> list[str]:
    out, level = [], [""]
    for _ in range(longest):
        level = [f"{prefix}.{t}" if prefix else t for prefix in level for t in tokens]
        out += level
    return out


PATTERNS = [p for p in _all(("a", "b", "*", ">"), 3) if subject_problem(p) is None]
# 'c' never appears in a pattern, so it stands for "any other token"; 4 tokens outrun every '>'.
SUBJECTS = _all(("a", "b", "c"), 4)


def test_overlaps_and_is_subset_agree_with_brute_force():
    matching = {p: {s for s in SUBJECTS if _matches(p, s)} for p in PATTERNS}
    wrong = [
        (a, b, name)
        for a in PATTERNS
        for b in PATTERNS
        for name, got, want in (
            ("overlaps", overlaps(a, b), bool(matching[a] & matching[b])),
            ("is_subset", is_subset(a, b), matching[a] <= matching[b]),
        )
        if got != want
    ]
    assert wrong == []
