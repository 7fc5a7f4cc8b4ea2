"""Prometheus-style metric records: parsing and validation.

Input, one JSON object per message, as a Prometheus-to-Kafka adapter writes it::

    {"labels": {"__name__": "up", "instance": "10.0.0.1:9100", "job": "node"},
     "name": "up", "timestamp": 1572384034838, "value": 1}

``timestamp`` goes through the shared event-time parser (epoch ms, epoch s or
ISO-8601). ``value`` is a number or a numeric string; Prometheus writes the
special values as ``"NaN"``, ``"+Inf"`` and ``"-Inf"``. A record without a
name (``name`` or ``labels.__name__``), with a value that is not a number, or
without a usable timestamp goes to the dead-letter output with the reason.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from beamstream import counters, payload_json
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.event_time import EventTimeError, event_time_us
from beamstream.io.elements import Message, MessageBatch
from beamstream.transforms.lateness import window_start

STEP = "prometheus_records"
_SPECIAL = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}


class InvalidRecord(ValueError):
    """The payload is not a usable metric record."""


class MetricRecord(NamedTuple):
    """One sample of one series: name, all its labels, event time, value."""

    name: str
    labels: dict[str, str]
    timestamp_us: int
    value: float

    @property
    def series(self) -> str:
        """Canonical identity of the full series (name + every label)."""
        return series_id(self.name, self.labels)


def series_id(name: str, labels: dict[str, str]) -> str:
    """Canonical JSON of a name and labels: a series, or a key of grouped labels."""
    return _series_id(name, tuple(labels.items()))


@functools.lru_cache(maxsize=65536)
def _series_id(name: str, items: tuple[tuple[str, str], ...]) -> str:
    # Cached: a record's series is asked for once per window it falls in, and
    # the same few series recur; json.dumps was a fifth of a batch run.
    return json.dumps([name, sorted(items)], separators=(",", ":"))


def group_by_key(
    records: Sequence[MetricRecord], key_of: Callable[[MetricRecord], str]
) -> Iterable[window.TimestampedValue]:
    """A batch's records as ``(key, [records])`` per key, stamped at the key's earliest record."""
    groups: dict[str, list[MetricRecord]] = {}
    for record in records:
        key = key_of(record)
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(record)
    for key, group in groups.items():
        earliest = min(r.timestamp_us for r in group)
        yield window.TimestampedValue((key, group), Timestamp(micros=earliest))


def split_series(key: str) -> tuple[str, dict[str, str]]:
    """The name and labels back from ``series_id``."""
    name, items = json.loads(key)
    return name, dict(items)


def parse_value(raw: Any) -> float:
    """A sample value: a number, a numeric string, or NaN/+Inf/-Inf as Prometheus writes them."""
    if isinstance(raw, bool) or raw is None:
        raise InvalidRecord(f"value {raw!r} is not a number")
    if isinstance(raw, (int, float)):
        try:
            return float(raw)
        except OverflowError:  # an integer beyond float64
            raise InvalidRecord("value is too large for a float") from None
    if isinstance(raw, str):
        text = raw.strip()
        special = _SPECIAL.get(text.lower())
        if special is not None:
            return special
        try:
            return float(text)
        except ValueError:
            raise InvalidRecord(f"value {raw!r} is not a number") from None
    raise InvalidRecord(f"value of type {type(raw).__name__} is not a number")


def format_value(value: float) -> float | str:
    """JSON-safe value: non-finite floats as Prometheus spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def parse_record(value: bytes, field: str | None = None, time_format: str = "auto") -> MetricRecord:
    """One message payload as a MetricRecord, or InvalidRecord / EventTimeError."""
    try:
        record = payload_json.loads(value)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise InvalidRecord(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidRecord(f"not a JSON object but {type(record).__name__}")
    labels = record.get("labels", {})
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):
        raise InvalidRecord("labels is not an object")
    name = record.get("name") or labels.get("__name__")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRecord("missing metric name")
    if "value" not in record:
        raise InvalidRecord("missing value")
    sample = parse_value(record["value"])
    timestamp = event_time_us(record, field, time_format)
    clean = {str(k): str(v) for k, v in labels.items() if k != "__name__"}
    return MetricRecord(name=name, labels=clean, timestamp_us=timestamp, value=sample)


class ParseMetricRecords(beam.DoFn):
    """Messages → MetricRecords stamped with their own event time; bad ones → dead letters.

    Each record is re-stamped at its event time so windowing does not depend
    on how a runner or source stamped the message. A record whose last sliding
    window closed before the watermark the source announced (plus allowed
    lateness) is too late: it goes to the dead letters instead of being dropped
    silently at the GroupByKey.

    With ``batches``, a ``MessageBatch`` gives one list of its valid records
    instead of one element per record: what comes next folds a batch at a
    time (``group_by_key``), which Beam's per-element cost rewards.
    """

    def __init__(
        self,
        event_time_field: str | None = "timestamp",
        time_format: str = "auto",
        period_us: int | None = None,
        duration_us: int | None = None,
        allowed_lateness_us: int = 0,
        batches: bool = False,
    ):
        self._batches = batches
        self._field = event_time_field
        self._format = time_format
        self._period = period_us
        self._duration = duration_us
        self._lateness = allowed_lateness_us

    def setup(self):
        self._consumed = counters.counter(counters.MESSAGES_CONSUMED)
        self._dead = counters.counter(counters.DEAD_LETTERS)
        self._late = counters.counter(counters.LATE_RECORDS)

    def process(self, element: Message | MessageBatch) -> Iterable[Any]:
        records: list[MetricRecord] = []
        for out in self._records(element):
            if not isinstance(out, MetricRecord):
                yield out  # a dead letter
            elif self._batches:
                records.append(out)
            else:
                yield window.TimestampedValue(out, out.timestamp_us / 1e6)
        if records:
            yield records

    def _records(self, element: Message | MessageBatch) -> Iterable[Any]:
        """Each message's MetricRecord, or its dead letter (a TaggedOutput)."""
        messages = element.messages() if isinstance(element, MessageBatch) else [element]
        for message in messages:
            self._consumed.inc()
            try:
                record = parse_record(message.value, self._field, self._format)
            except (InvalidRecord, EventTimeError) as exc:
                counters.error_counter(type(exc).__name__).inc()
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG, dead_letter(exc, message.value, STEP, message.describe())
                )
                continue
            if self._too_late(record.timestamp_us, message.watermark_us):
                self._late.inc()
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG,
                    dead_letter(
                        f"too late: every window of event time {record.timestamp_us / 1e6:.3f} "
                        f"closed (watermark {message.watermark_us / 1e6:.3f}, allowed lateness "
                        f"{self._lateness / 1e6:g}s)",
                        message.value,
                        STEP,
                        message.describe(),
                        error_type="LateRecord",
                    ),
                )
                continue
            yield record

    def _too_late(self, event_us: int, watermark_us: int) -> bool:
        if self._period is None or self._duration is None:
            return False
        last_end = window_start(event_us, self._period) + self._duration
        return last_end - 1 + self._lateness < watermark_us
