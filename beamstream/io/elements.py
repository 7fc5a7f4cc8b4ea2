"""The element types every source emits: one record, or a batch of records.

Sources deliver either shape (design.md; issue "streaming throughput"): single
``Message`` elements for pipelines that act per record (inference, store), or
``MessageBatch`` elements for pipelines that aggregate, because per-element
overhead dominates Beam Python and a batch pays it once for thousands of
records. A batch is columnar (lists of values, offsets, ...) so it pickles and
travels cheaply.

Both carry ``watermark_us``: the watermark the source had announced when it
read them. Transforms decide lateness against it, deterministically, instead
of relying on the runner to drop late data silently at a GroupByKey.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

# Beam's MIN_TIMESTAMP and MAX_TIMESTAMP in micros, the one copy of them here
# (written out so this module imports nothing; a test pins them to Beam's).
# NO_WATERMARK: "no watermark announced yet" (batch runs); MAX_WATERMARK: done.
NO_WATERMARK = -9223372036854775000
MAX_WATERMARK = 9223372036854775000


class Message(NamedTuple):
    """One record from Kafka, Pub/Sub or a file, as bytes plus where it came from."""

    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()  # Kafka headers / Pub/Sub attributes
    source: str = ""  # topic, subscription or file path
    partition: int = 0
    offset: int = -1  # Kafka offset, line number in a file, -1 for Pub/Sub
    timestamp_ms: int | None = None  # broker (publish) timestamp
    event_time_us: int | None = None  # set by sources that parse event time
    watermark_us: int = NO_WATERMARK

    def describe(self) -> str:
        """Where this record came from, for dead letters and errors."""
        if self.offset >= 0:
            return f"{self.source}[{self.partition}]@{self.offset}"
        return self.source


class MessageBatch(NamedTuple):
    """Many records of one partition, pull or file range, in read order."""

    source: str
    partition: int
    values: list[bytes]
    offsets: list[int]
    timestamps_ms: list[int | None] | None = None
    event_times_us: list[int | None] | None = None
    keys: list[bytes | None] | None = None
    headers: list[tuple[tuple[str, bytes], ...]] | None = None
    watermark_us: int = NO_WATERMARK

    @property
    def size(self) -> int:
        """Number of records (``len()`` stays the tuple's, as NamedTuple needs)."""
        return len(self.values)

    def slice(self, start: int, stop: int) -> MessageBatch:
        """Records ``start`` to ``stop`` (exclusive) as a batch of their own."""

        def part(column):
            return None if column is None else column[start:stop]

        return self._replace(
            values=self.values[start:stop],
            offsets=self.offsets[start:stop],
            timestamps_ms=part(self.timestamps_ms),
            event_times_us=part(self.event_times_us),
            keys=part(self.keys),
            headers=part(self.headers),
        )

    def messages(self) -> Iterator[Message]:
        """The batch as single records (for transforms that need them)."""
        n = len(self.values)
        keys = self.keys or [None] * n
        headers = self.headers or [()] * n
        stamps = self.timestamps_ms or [None] * n
        events = self.event_times_us or [None] * n
        for i in range(n):
            yield Message(
                value=self.values[i],
                key=keys[i],
                headers=headers[i],
                source=self.source,
                partition=self.partition,
                offset=self.offsets[i],
                timestamp_ms=stamps[i],
                event_time_us=events[i],
                watermark_us=self.watermark_us,
            )

    @staticmethod
    def of(messages: list[Message], watermark_us: int = NO_WATERMARK) -> MessageBatch:
        """Builds a batch from single records (tests, small sources)."""
        first = messages[0] if messages else Message(b"")
        return MessageBatch(
            source=first.source,
            partition=first.partition,
            values=[m.value for m in messages],
            offsets=[m.offset for m in messages],
            timestamps_ms=[m.timestamp_ms for m in messages],
            event_times_us=[m.event_time_us for m in messages],
            keys=[m.key for m in messages],
            headers=[m.headers for m in messages],
            watermark_us=watermark_us,
        )


# One encoder for every payload: json.dumps with arguments builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_text(value: Any) -> str:
    """``value`` as the compact JSON sinks write (a str quoted, unlike ``encode_payload``)."""
    return _COMPACT_JSON.encode(value)


def encode_payload(value: bytes | str | Any) -> bytes:
    """Sink payloads: bytes as they are, text as UTF-8, anything else as compact JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json_text(value).encode("utf-8")


def batch_timestamp(batch: MessageBatch) -> int:
    """No later than the batch's earliest record, so nothing runs ahead of the watermark."""
    known = [t for t in (batch.event_times_us or ()) if t is not None]
    if known:
        return min(known)
    return max(batch.watermark_us, 0) if batch.watermark_us != NO_WATERMARK else 0


def as_elements(batches: list[MessageBatch], batched: bool) -> list[tuple[object, int]]:
    """Batches as (element, event-time micros): whole batches, or one per record."""
    if batched:
        return [(b, batch_timestamp(b)) for b in batches]
    fallback = {id(b): batch_timestamp(b) for b in batches}
    return [
        (m, m.event_time_us if m.event_time_us is not None else fallback[id(b)])
        for b in batches
        for m in b.messages()
    ]
