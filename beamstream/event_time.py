"""Event time from a payload field: the one parser every pipeline and source uses.

Formats (``--time_format``): ``epoch_s``, ``epoch_ms``, ``iso`` or ``auto``
(numbers above 1e11 are milliseconds, other numbers seconds, strings ISO-8601
with ``Z`` or an offset). Times are returned as integer microseconds since the
epoch, Beam's own timestamp resolution, so nothing is lost to float rounding.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from beamstream.errors import UserError

TIME_FORMATS = ("auto", "epoch_s", "epoch_ms", "iso")
DEFAULT_FIELDS = ("timestamp", "ts")
_MS_THRESHOLD = 1e11
_FAST_S = 9e10  # below the milliseconds threshold and the +-1e17 us range, with room to round


class EventTimeError(UserError, ValueError):
    """The payload has no usable event time."""


def parse_time(value: Any, time_format: str = "auto") -> int:
    """One time value to epoch microseconds, or EventTimeError."""
    kind = type(value)
    if kind is float or kind is int:  # the usual case first: bool is neither
        # Epoch seconds well inside the range (NaN fails both comparisons):
        # what _from_number computes, without its checks.
        if -_FAST_S < value < _FAST_S and (time_format == "auto" or time_format == "epoch_s"):
            return value * 1_000_000 if kind is int else int(round(value * 1_000_000))
        return _from_number(value, time_format)
    if isinstance(value, bool) or value is None:
        raise EventTimeError(f"timestamp {value!r} is not a time")
    if isinstance(value, (int, float)):
        return _from_number(value, time_format)
    if isinstance(value, str):
        text = value.strip()
        if time_format in ("epoch_s", "epoch_ms") or (
            time_format == "auto" and _looks_numeric(text)
        ):
            try:
                number = float(text)
            except ValueError:
                raise EventTimeError(f"timestamp {value!r} is not a number") from None
            return _from_number(number, time_format)
        return _from_iso(text)
    raise EventTimeError(f"timestamp of type {type(value).__name__} is not a time")


def _looks_numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "+-.") and "T" not in text and (
        text.count("-") <= 1
    )


def _from_number(number: float, time_format: str) -> int:
    if isinstance(number, float) and not math.isfinite(number):
        raise EventTimeError(f"timestamp {number!r} is not finite")
    if time_format == "iso":
        raise EventTimeError(f"timestamp {number!r} is a number, expected ISO-8601")
    is_ms = time_format == "epoch_ms" or (time_format == "auto" and abs(number) > _MS_THRESHOLD)
    scale = 1000 if is_ms else 1_000_000
    scaled = number * scale  # a float beyond ~1.8e308 is inf here: checked before int()
    if not -10**17 < scaled < 10**17:  # about +-3000 years
        raise EventTimeError(f"timestamp {number!r} is out of range")
    return int(scaled) if isinstance(number, int) else int(round(scaled))


def _from_iso(text: str) -> int:
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise EventTimeError(f"timestamp {text!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise EventTimeError(f"timestamp {text!r} has no time zone (add Z or an offset)")
    delta = parsed - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_time_fields(field: str | None = None) -> tuple[str, ...]:
    """The fields looked at, in order: ``field`` (if given), then timestamp/ts if it is one."""
    if field and field not in DEFAULT_FIELDS:
        return (field,)
    if field:
        return (field,) + tuple(f for f in DEFAULT_FIELDS if f != field)
    return DEFAULT_FIELDS


def event_time_us(
    record: dict, field: str | None = None, time_format: str = "auto"
) -> int:
    """The event time of a parsed JSON record, from ``field`` or timestamp/ts."""
    fields = event_time_fields(field)
    for name in fields:
        if name in record:
            return parse_time(record[name], time_format)
    raise EventTimeError(f"missing event-time field {' or '.join(repr(f) for f in fields)}")


def format_time(micros: int, output_format: str) -> int | str:
    """Window bounds for output: whole epoch seconds / ms, or ISO-8601 UTC."""
    if output_format == "iso":
        dt = datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)
        return dt.isoformat(timespec="milliseconds" if micros % 1_000_000 else "seconds").replace(
            "+00:00", "Z"
        )
    if output_format == "epoch_ms":
        return micros // 1000
    return micros // 1_000_000
