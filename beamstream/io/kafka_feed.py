"""The Kafka feed for local streaming: reader batches in, TestStream steps out."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from beamstream.io.kafka_reader import KafkaBatchReader, KafkaReadSpec
from beamstream.io.live_feed import FeedStep
from beamstream.io.message import NO_WATERMARK, MessageBatch


def batch_timestamp(batch: MessageBatch) -> int:
    """No later than the batch's earliest record, so nothing runs ahead of the watermark."""
    known = [t for t in (batch.event_times_us or ()) if t is not None]
    if known:
        return min(known)
    return max(batch.watermark_us, 0) if batch.watermark_us != NO_WATERMARK else 0


def as_elements(batches: list[MessageBatch], batched: bool) -> list[tuple[object, int]]:
    """Batches as TestStream elements: whole batches, or one element per record."""
    if batched:
        return [(b, batch_timestamp(b)) for b in batches]
    fallback = {id(b): batch_timestamp(b) for b in batches}
    return [
        (m, m.event_time_us if m.event_time_us is not None else fallback[id(b)])
        for b in batches
        for m in b.messages()
    ]


@dataclass(frozen=True)
class KafkaFeed:
    """A picklable feed factory: the child process calls it to open the reader."""

    spec: KafkaReadSpec
    batched: bool = True

    def __call__(self) -> _KafkaFeedRun:
        return _KafkaFeedRun(self.spec, self.batched)


class _KafkaFeedRun:
    def __init__(self, spec: KafkaReadSpec, batched: bool):
        self._reader = KafkaBatchReader(spec)
        self._batched = batched
        self._commit = spec.commit == "finalize" and spec.group is not None
        # (event sequence number, positions after it): committed once acknowledged.
        self._pending: deque[tuple[int, dict[tuple[str, int], int]]] = deque()

    def steps(self, acked: Callable[[], int]) -> Iterator[FeedStep]:
        reader, seq, announced = self._reader, 0, None
        while not reader.done:
            batches = reader.read()
            elements = as_elements(batches, self._batched) if batches else []
            if elements:
                seq += 1
                if self._commit:
                    self._pending.append((seq, reader.positions()))
            watermark = reader.watermark_us
            new = watermark if watermark != announced and watermark != NO_WATERMARK else None
            announced = watermark
            yield FeedStep(elements, new)
            self._commit_acknowledged(acked())
        deadline = time.monotonic() + 60
        while self._pending and acked() < seq and time.monotonic() < deadline:
            yield FeedStep([], None)
            time.sleep(0.01)
        self._commit_acknowledged(acked())

    def _commit_acknowledged(self, acked: int) -> None:
        latest = None
        while self._pending and self._pending[0][0] <= acked:
            latest = self._pending.popleft()[1]
        if latest is not None:
            self._reader.commit(latest)

    def close(self) -> None:
        self._reader.close()
