"""units.py: human durations and sizes, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.units import (
    INT64_MAX,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
    show_value,
)

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
M = 60 * S
H = 60 * M
D = 24 * H
KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


# --- durations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("500ms", 500 * MS),
        ("90s", 90 * S),
        ("1h30m", H + 30 * M),
        ("7d", 7 * D),
        ("1w", 7 * D),
        ("2w3d", 17 * D),
        ("1.5h", H + 30 * M),
        ("0.5s", 500 * MS),
        ("1d2h3m4s5ms6us7ns", D + 2 * H + 3 * M + 4 * S + 5 * MS + 6 * US + 7 * NS),
        ("250us", 250 * US),
        ("250µs", 250 * US),
        ("10ns", 10),
        ("0s", 0),
        ("  30s  ", 30 * S),
        ("1m1m", 2 * M),  # repeated units add up, as Go's time.ParseDuration does
    ],
)
def test_parse_duration(text, nanos):
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("nanos", [0, 1, 30 * S, INT64_MAX])
def test_integers_are_nanoseconds(nanos):
    assert parse_duration(nanos) == nanos


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("10 parsecs", "is not a duration"),
        ("", "is not a duration"),
        ("1h 30m", "is not a duration"),
        ("-1s", "is not a duration"),
        ("1H", "is not a duration"),
        ("1m30", "is not a duration"),
        ("1e3s", "is not a duration"),
        ("s", "is not a duration"),
        ("30", "has no unit"),
        ("0", "has no unit"),
        (-1, "cannot be negative"),
        (1.5, "expected a duration"),
        (True, "expected a duration"),
        (None, "expected a duration"),
        ([1], "expected a duration"),
        ("300000000000000000000ns", "too long"),
        ("107000d", "too long"),
    ],
)
def test_bad_durations(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_duration(value)


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1us500ns"),
        (500 * MS, "500ms"),
        (90 * S, "1m30s"),
        (H + 30 * M, "1h30m"),
        (7 * D, "7d"),  # days, never weeks
        (14 * D + 1, "14d1ns"),
        (-1, "-1"),
        (True, "True"),
        (1.5, "1.5"),
    ],
)
def test_format_duration(nanos, text):
    assert format_duration(nanos) == text


@given(st.integers(min_value=0, max_value=2**53))
def test_duration_round_trip(nanos):
    assert parse_duration(format_duration(nanos)) == nanos


@pytest.mark.parametrize("nanos", [2**53 + 1, 200 * D + 1, INT64_MAX])
def test_duration_round_trip_beyond_float_precision(nanos):
    assert parse_duration(format_duration(nanos)) == nanos


# --- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("1GiB", GiB),
        ("512KiB", 512 * KiB),
        ("10MiB", 10 * MiB),
        ("2TiB", 2 * TiB),
        ("10MB", 10_000_000),
        ("1KB", 1000),
        ("1Kb", 1000),
        ("3GB", 3 * 10**9),
        ("1TB", 10**12),
        ("1k", KiB),
        ("1K", KiB),
        ("1M", MiB),
        ("1G", GiB),
        ("1T", TiB),
        ("1 GiB", GiB),
        ("1 gib", GiB),
        ("1.5KiB", 1536),
        ("100b", 100),
        ("100", 100),
        (" 5 ", 5),
        ("0", 0),
    ],
)
def test_parse_size(text, count):
    assert parse_size(text) == count


@pytest.mark.parametrize("count", [-1, 0, 1, GiB, INT64_MAX])
def test_integers_are_bytes(count):
    assert parse_size(count) == count


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1 GiBs", "is not a size"),
        ("1GiBs", "is not a size"),
        ("1PiB", "is not a size"),
        ("lots", "is not a size"),
        ("", "is not a size"),
        ("GiB", "is not a size"),
        ("-1GiB", "is not a size"),
        ("1e3", "is not a size"),
        ("1.5", "not a whole number of bytes"),
        ("1.1B", "not a whole number of bytes"),
        ("9999999TiB", "too large"),
        (1.5, "expected a size"),
        (False, "expected a size"),
        (None, "expected a size"),
        ({}, "expected a size"),
    ],
)
def test_bad_sizes(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_size(value)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (-1, "unlimited"),
        (0, "0"),
        (1, "1"),
        (1000, "1000"),
        (KiB, "1KiB"),
        (1536, "1536"),
        (512 * KiB, "512KiB"),
        (GiB, "1GiB"),
        (10 * TiB, "10TiB"),
        (1024 * TiB, "1024TiB"),
        (GiB + 1, str(GiB + 1)),
        (True, "True"),
        ("x", "'x'"),
    ],
)
def test_format_size(count, text):
    assert format_size(count) == text


@given(st.integers(min_value=0, max_value=2**53))  # -1 shows as "unlimited", a display form only
def test_size_round_trip(count):
    assert parse_size(format_size(count)) == count


@pytest.mark.parametrize("count", [2**53 + 1, INT64_MAX])
def test_size_round_trip_beyond_float_precision(count):
    assert parse_size(format_size(count)) == count


# --- display ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        ("max_age", D, "1d"),
        ("max_age", 0, "0s (unlimited)"),
        ("duplicate_window", 0, "0s"),
        ("backoff", [S, 5 * S], "[1s, 5s]"),
        ("sources.0.ttl", 90 * S, "1m30s"),
        ("max_bytes", GiB, "1GiB"),
        ("max_bytes", -1, "unlimited"),
        ("max_msgs", -1, "unlimited"),
        ("max_msgs", 10, "10"),
        ("deny_delete", True, "true"),
        ("subjects", ["a", "b"], '["a", "b"]'),
        ("description", None, "(unset)"),
    ],
)
def test_show_value(path, value, shown):
    assert show_value(path, value) == shown
