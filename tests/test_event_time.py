"""``parse_time``'s fast path for plain epoch numbers gives exactly what the general path does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamstream.event_time import EventTimeError, _from_number, parse_time

FORMATS = ("auto", "epoch_s", "epoch_ms", "iso")


def _outcome(fn, *args):
    try:
        return fn(*args)
    except EventTimeError as exc:
        return type(exc)


EDGES = [
    0,
    0.0,
    -0.0,
    1,
    -1,
    1_700_000_000,
    1_700_000_000.123456,
    1_700_000_000.0000005,  # rounds at the microsecond
    -1_700_000_000.5,
    8.99e10,
    9e10,
    -9e10,
    99_999_999_999,
    1e11,
    100_000_000_001,
    1_700_000_000_123,
    1e14,
    1e17,
    math.inf,
    -math.inf,
    math.nan,
    10**20,
]


@pytest.mark.parametrize("time_format", FORMATS)
@pytest.mark.parametrize("value", EDGES)
def test_edges_match_the_general_path(value, time_format):
    assert _outcome(parse_time, value, time_format) == _outcome(_from_number, value, time_format)


@given(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**18), 10**18)),
    st.sampled_from(FORMATS),
)
def test_any_number_matches_the_general_path(value, time_format):
    assert _outcome(parse_time, value, time_format) == _outcome(_from_number, value, time_format)


def test_the_fast_path_is_exact_to_the_microsecond():
    assert parse_time(1_700_000_000.123456) == 1_700_000_000_123_456
    assert parse_time(1_700_000_000) == 1_700_000_000_000_000
    assert type(parse_time(1_700_000_000)) is int and type(parse_time(1.5)) is int
