"""Kafka as a Beam ``UnboundedSource``: the path for Flink, Dataflow and batch runs.

Beam 2.77's ``apache_beam.io.unbounded_source`` runs an ``UnboundedSource`` as
a splittable DoFn with bundle finalization and a manual watermark estimator,
Beam's own form of the Java KafkaIO reader model. One split per
(topic, partition); each reader is a ``KafkaBatchReader`` over that partition.
The checkpoint mark is the next offset to read; finalizing it commits that
offset to the group after the runner has durably finished the bundle, which is
what makes ``commit=finalize`` at-least-once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from apache_beam.coders import coders
from apache_beam.io.unbounded_source import CheckpointMark, UnboundedReader, UnboundedSource
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from beamstream.io.kafka_feed import as_elements
from beamstream.io.kafka_reader import (
    KafkaBatchReader,
    KafkaReadSpec,
    list_partitions,
    open_consumer,
)

_LOG = logging.getLogger(__name__)


class KafkaCheckpointMark(CheckpointMark):
    """Next offset of one partition; finalizing commits it to the group."""

    def __init__(
        self,
        spec: KafkaReadSpec,
        partition: tuple[str, int],
        next_offset: int | None,
        end_offset: int | None = None,
    ):
        self.spec = spec
        self.partition = partition
        self.next_offset = next_offset
        # Bounds of a bounded read, so a reader rebuilt from this mark stops
        # where the original read would have.
        self.end_offset = end_offset

    def finalize_checkpoint(self) -> None:
        spec = self.spec
        if self.next_offset is None or not spec.group or spec.commit != "finalize":
            return
        if spec.commit_on_success:
            _defer_commit(spec, self.partition, self.next_offset)
            return
        _committer(spec).commit(self.partition, self.next_offset)

    def __repr__(self) -> str:
        return f"KafkaCheckpointMark({self.partition}, {self.next_offset})"


class _Committer:
    """One consumer per (servers, group) per worker, used only to commit."""

    def __init__(self, spec: KafkaReadSpec):
        self._consumer = open_consumer(spec)
        self._lock = threading.Lock()

    def commit(self, partition: tuple[str, int], offset: int) -> None:
        from kafka import OffsetAndMetadata, TopicPartition

        with self._lock:
            self._consumer.commit({TopicPartition(*partition): OffsetAndMetadata(offset, "", -1)})


_COMMITTERS: dict[tuple[Any, ...], _Committer] = {}
_COMMITTERS_LOCK = threading.Lock()


# Offsets finalized on a non-durable runner, committed by commit_deferred()
# once the run succeeded: {deferral key: (spec, {partition: next offset})}.
# Finalizers run on the runner's threads, so the offsets meet run_pipeline
# here; each read's own key keeps runs apart.
_DEFERRED: dict[str, tuple[KafkaReadSpec, dict[tuple[str, int], int]]] = {}


def _spec_key(spec: KafkaReadSpec) -> tuple[Any, ...]:
    return (spec.bootstrap_servers, spec.group, tuple(sorted(spec.consumer_config.items())))


def _defer_commit(spec: KafkaReadSpec, partition: tuple[str, int], offset: int) -> None:
    key = spec.deferral_key or _UNKEYED
    with _COMMITTERS_LOCK:
        offsets = _DEFERRED.setdefault(key, (spec, {}))[1]
        offsets[partition] = max(offset, offsets.get(partition, 0))


_UNKEYED = "-"  # specs built by hand without a deferral key


def commit_deferred(keys: Iterable[str]) -> int:
    """Commits the offsets these reads deferred until success; returns how many partitions."""
    with _COMMITTERS_LOCK:
        pending = [_DEFERRED.pop(key) for key in set(keys) if key in _DEFERRED]
    for spec, offsets in pending:
        for partition, offset in offsets.items():
            _committer(spec).commit(partition, offset)
    return sum(len(offsets) for _, offsets in pending)


def discard_deferred(keys: Iterable[str]) -> None:
    """Forgets what these reads deferred (a failed run), so a rerun reads it again."""
    with _COMMITTERS_LOCK:
        for key in keys:
            _DEFERRED.pop(key, None)


def _committer(spec: KafkaReadSpec) -> _Committer:
    key = _spec_key(spec)
    with _COMMITTERS_LOCK:
        if key not in _COMMITTERS:
            _COMMITTERS[key] = _Committer(spec)
        return _COMMITTERS[key]


class _KafkaPartitionReader(UnboundedReader):
    def __init__(self, source: KafkaPartitionSource, mark: KafkaCheckpointMark | None):
        assert source.partition is not None
        self._source = source
        pair = source.partition
        next_offset = mark.next_offset if mark is not None else None
        positions = {pair: next_offset} if next_offset is not None else None
        ends = {pair: mark.end_offset} if mark is not None and mark.end_offset is not None else None
        self._reader = KafkaBatchReader(source.spec, [pair], positions, ends)
        self._buffer: deque[tuple[Any, int, int]] = deque()  # (element, ts, next offset)
        self._current: tuple[Any, int, int] | None = None
        self._next_offset = next_offset

    def start(self) -> bool:
        return self.advance()

    def advance(self) -> bool:
        if not self._buffer and not self._reader.done:
            for batch in self._reader.read():
                elements = as_elements([batch], self._source.batched)
                if self._source.batched:
                    self._buffer.append((*elements[0], batch.offsets[-1] + 1))
                else:
                    for (msg, ts), offset in zip(elements, batch.offsets):
                        self._buffer.append((msg, ts, offset + 1))
        if not self._buffer:
            return False
        self._current = self._buffer.popleft()
        self._next_offset = self._current[2]
        return True

    def get_current(self):
        assert self._current is not None
        return self._current[0]

    def get_current_timestamp(self) -> Timestamp:
        assert self._current is not None
        return Timestamp(micros=self._current[1])

    def get_watermark(self) -> Timestamp:
        if self._source.spec.hold_watermark and (self._buffer or not self._reader.done):
            return MIN_TIMESTAMP
        if self._buffer:  # still emitting what was read: hold at the next element
            return Timestamp(micros=min(self._reader.watermarks.current, self._buffer[0][1]))
        return Timestamp(micros=self._reader.watermark_us)

    def get_checkpoint_mark(self) -> KafkaCheckpointMark:
        assert self._source.partition is not None
        pair = self._source.partition
        return KafkaCheckpointMark(
            self._source.spec,
            pair,
            self._next_offset,
            self._reader.end_offsets.get(pair),
        )

    def close(self) -> None:
        self._reader.close()


class KafkaPartitionSource(UnboundedSource):
    """All partitions of the spec's topics; ``split`` gives one source each."""

    def __init__(
        self,
        spec: KafkaReadSpec,
        batched: bool,
        partition: tuple[str, int] | None = None,
    ):
        self.spec = spec
        self.batched = batched
        self.partition = partition

    def split(self, desired_num_splits: int, options=None) -> list[KafkaPartitionSource]:
        if self.partition is not None:
            return [self]
        consumer = open_consumer(self.spec)
        try:
            partitions = list_partitions(consumer, self.spec)
        finally:
            consumer.close()
        return [KafkaPartitionSource(self.spec, self.batched, p) for p in partitions]

    def create_reader(self, options, checkpoint_mark) -> _KafkaPartitionReader:
        if self.partition is None:
            # Beam falls back to the unsplit source when split() raised; raise
            # the real reason (no broker, no topic) here instead of a vague one.
            self.split(1)
            raise ValueError("KafkaPartitionSource must be split before reading")
        return _KafkaPartitionReader(self, checkpoint_mark)

    def get_checkpoint_mark_coder(self):
        return coders.PickleCoder()

    def default_output_coder(self):
        return coders.PickleCoder()
