"""Kafka as a Beam ``UnboundedSource``: the path for Flink, Dataflow and batch runs.

Beam 2.77's ``apache_beam.io.unbounded_source`` runs an ``UnboundedSource`` as
a splittable DoFn with bundle finalization and a manual watermark estimator,
Beam's own form of the Java KafkaIO reader model. One split per
(topic, partition), each reader a ``KafkaBatchReader`` over that partition; on
Prism one split over all partitions (see ``KafkaPartitionSource``). The
checkpoint mark holds the next offsets to read and the reader's watermark;
finalizing it commits the offsets to the group after the runner has durably
finished the bundle, which is what makes ``commit=finalize`` at-least-once.

The watermark a reader reports never passes an element it has read but not
emitted yet (the oldest timestamp of everything still buffered), and a reader
rebuilt from a mark goes on from the watermark reported before.

A reader left at a checkpoint is handed to whichever instance of the reading
DoFn resumes that checkpoint (``_Handoffs``), not rebuilt with a new consumer.

A streaming read bundle's output and watermark move on only when it ends. With
``live_bundle_s`` a reader that has caught up (its last poll was not full)
ends its bundle once it has read that long, instead of reading on to the
runner's limit: live results come sooner, while a backlog is still read in
long bundles that pay the per-bundle cost less often.

Importing this module installs ``split_guard`` in the SDK harness that
unpickles the source, so a runner's split request cannot fail a read bundle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from apache_beam.coders import coders
from apache_beam.io.unbounded_source import CheckpointMark, UnboundedReader, UnboundedSource
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK, MessageBatch, as_elements
from beamstream.io.kafka.commits import committer, defer_commit
from beamstream.io.kafka.reader import KafkaBatchReader
from beamstream.io.kafka.spec import KafkaReadSpec, list_partitions, open_consumer
from beamstream.runners import split_guard

_LOG = logging.getLogger(__name__)
split_guard.install()


class KafkaCheckpointMark(CheckpointMark):
    """Next offsets of a reader's partitions and its watermark; finalizing commits them.

    A runner may rebuild the reader from this mark for any bundle (a reader
    cache miss), so the mark also carries what the reader needs to go on with
    the same watermark: the watermark it reported and the highest event time
    it emitted per partition (otherwise a rebuilt reader that finds no new
    data could never release a drained partition).
    """

    def __init__(
        self,
        spec: KafkaReadSpec,
        next_offsets: dict[tuple[str, int], int | None],
        end_offsets: dict[tuple[str, int], int] | None = None,
        watermark_us: int = NO_WATERMARK,
        max_event_us: dict[tuple[str, int], int] | None = None,
    ):
        self.spec = spec
        # None: nothing emitted yet, start where the spec says.
        self.next_offsets = dict(next_offsets)
        # Bounds of a bounded read, so a reader rebuilt from this mark stops
        # where the original read would have.
        self.end_offsets = dict(end_offsets or {})
        self.watermark_us = watermark_us
        self.max_event_us = dict(max_event_us or {})

    def finalize_checkpoint(self) -> None:
        spec = self.spec
        if not spec.group or spec.commit != "finalize":
            return
        for partition, offset in self.next_offsets.items():
            if offset is None:
                continue
            if spec.deferral_key is not None:
                defer_commit(spec.deferral_key, spec, partition, offset)
            else:
                committer(spec).commit(partition, offset)

    def __repr__(self) -> str:
        return f"KafkaCheckpointMark({self.next_offsets}, wm={self.watermark_us})"


def _mark_key(chain: str, next_offsets: dict[tuple[str, int], int | None]) -> tuple:
    return (chain, tuple(sorted(next_offsets.items())))


class _Handoffs:
    """Readers left at a checkpoint, for any DoFn instance that resumes it.

    Beam 2.77 parks a self-checkpointed reader in the reading DoFn instance's
    own cache. On Prism the next bundle often runs on another instance (the
    first still waits for its bundle finalization), which misses that cache
    and builds a second reader with a new consumer, while the parked one
    keeps its consumer, and librdkafka's prefetching, until evicted a minute
    later: measured at about 4 MB and two client threads per read bundle.
    Registering the reader under its checkpoint lets the resuming reader take
    over its consumer and unread records instead. One process, one table.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[tuple, _KafkaPartitionReader] = {}

    def park(self, key: tuple, reader: _KafkaPartitionReader) -> None:
        with self._lock:
            self._parked[key] = reader

    def take(self, key: tuple) -> _KafkaPartitionReader | None:
        with self._lock:
            return self._parked.pop(key, None)

    def withdraw(self, key: tuple, reader: _KafkaPartitionReader) -> None:
        with self._lock:
            if self._parked.get(key) is reader:
                del self._parked[key]

    def __len__(self) -> int:
        return len(self._parked)


_HANDOFFS = _Handoffs()


class _Pending(NamedTuple):
    """An element read but not emitted yet."""

    element: Any
    timestamp_us: int
    partition: tuple[str, int]
    next_offset: int
    max_event_us: int  # highest event time in it (NO_WATERMARK: none known)
    # Lowest timestamp of this element and every one buffered after it: the
    # watermark may not pass it while any of them is still to be emitted.
    floor_us: int


class _KafkaPartitionReader(UnboundedReader):
    """Reads one split of the source: one partition, or all of them (Prism)."""

    def __init__(self, source: KafkaPartitionSource, mark: KafkaCheckpointMark | None):
        assert source.partitions
        self._source = source
        self._parked_at: tuple | None = None  # key in _HANDOFFS while left at a checkpoint
        self._parked_mark: KafkaCheckpointMark | None = None
        self._bundle_started: float | None = None  # first record emitted since the last mark
        parked = None
        if mark is not None and source.chain is not None:
            parked = _HANDOFFS.take(_mark_key(source.chain, mark.next_offsets))
        if parked is not None and parked._reader is not None:
            self._take_over(parked)
        else:
            self._open(mark)

    def _open(self, mark: KafkaCheckpointMark | None) -> None:
        source = self._source
        pairs = list(source.partitions or ())
        self._next_offsets: dict[tuple[str, int], int | None] = dict.fromkeys(pairs)
        self._max_event: dict[tuple[str, int], int] = {}
        positions: dict[tuple[str, int], int] = {}
        ends = None
        if mark is not None:
            self._next_offsets.update(
                {p: o for p, o in mark.next_offsets.items() if p in self._next_offsets}
            )
            positions = {p: o for p, o in self._next_offsets.items() if o is not None}
            ends = mark.end_offsets or None
            self._max_event = dict(mark.max_event_us)
        self._reader: KafkaBatchReader | None = KafkaBatchReader(
            source.spec, pairs, positions or None, ends
        )
        if mark is not None:
            # Go on with the watermark reported before, not from scratch.
            self._reader.watermarks.restore(mark.watermark_us)
            for pair, event_us in mark.max_event_us.items():
                self._reader.watermarks.restore_partition(pair, event_us)
        self._buffer: deque[_Pending] = deque()
        self._current: _Pending | None = None

    def _take_over(self, parked: _KafkaPartitionReader) -> None:
        """Goes on with ``parked``'s consumer and unread records; ``parked`` keeps only its mark."""
        self._reader, parked._reader = parked._reader, None
        self._next_offsets = parked._next_offsets
        self._max_event = parked._max_event
        self._buffer = parked._buffer
        self._current = parked._current

    def _resume(self) -> None:
        """Called when Beam drives this reader again after leaving it at a checkpoint."""
        if self._parked_at is not None:
            _HANDOFFS.withdraw(self._parked_at, self)
            self._parked_at = None
        if self._reader is None:  # taken over since, and resumed anyway (a retry): rebuild
            self._open(self._parked_mark)

    def start(self) -> bool:
        return self.advance()

    def advance(self) -> bool:
        if self._parked_at is not None or self._reader is None:
            self._resume()
        assert self._reader is not None
        if not self._buffer and not self._reader.done:
            if self._ends_live_bundle():
                return False
            self._fill(self._reader.read())
        if not self._buffer:
            return False
        if self._bundle_started is None:
            self._bundle_started = time.monotonic()
        self._current = current = self._buffer.popleft()
        self._next_offsets[current.partition] = current.next_offset
        if current.max_event_us > self._max_event.get(current.partition, NO_WATERMARK):
            self._max_event[current.partition] = current.max_event_us
        return True

    def _ends_live_bundle(self) -> bool:
        """Caught up, and this bundle has read for ``live_bundle_s``: end it now."""
        live, started, reader = self._source.live_bundle_s, self._bundle_started, self._reader
        return (
            live is not None
            and started is not None
            and reader is not None
            and not reader.last_poll_saturated
            and time.monotonic() - started >= live
        )

    def _fill(self, batches: list[MessageBatch]) -> None:
        pending: list[tuple[Any, int, tuple[str, int], int, int]] = []
        for batch in batches:
            pair = (batch.source, batch.partition)
            elements = as_elements([batch], self._source.batched)
            if self._source.batched:
                known = [t for t in (batch.event_times_us or ()) if t is not None]
                top = max(known) if known else NO_WATERMARK
                pending.append((*elements[0], pair, batch.offsets[-1] + 1, top))
            else:
                events = batch.event_times_us or [None] * len(batch.offsets)
                for (msg, ts), offset, event in zip(elements, batch.offsets, events):
                    top = event if event is not None else NO_WATERMARK
                    pending.append((msg, ts, pair, offset + 1, top))
        floors: list[int] = []
        floor = MAX_WATERMARK
        for item in reversed(pending):
            floor = min(floor, item[1])
            floors.append(floor)
        for item, floor in zip(pending, reversed(floors)):
            self._buffer.append(_Pending(*item, floor))

    def get_current(self):
        assert self._current is not None
        return self._current.element

    def get_current_timestamp(self) -> Timestamp:
        assert self._current is not None
        return Timestamp(micros=self._current.timestamp_us)

    def _watermark_us(self) -> int:
        reader = self._reader
        if reader is None:  # taken over by the reader that resumed this one's checkpoint
            assert self._parked_mark is not None
            return self._parked_mark.watermark_us
        if self._source.spec.hold_watermark and (self._buffer or not reader.done):
            return MIN_TIMESTAMP.micros
        if self._buffer:  # still emitting what was read: hold at the oldest of it
            return min(reader.watermarks.current, self._buffer[0].floor_us)
        return reader.watermark_us

    def get_watermark(self) -> Timestamp:
        return Timestamp(micros=max(self._watermark_us(), MIN_TIMESTAMP.micros))

    def get_checkpoint_mark(self) -> KafkaCheckpointMark:
        # Records read but not emitted are read again by a reader rebuilt from
        # this mark: its watermark is what was reported, which holds for them.
        reader = self._reader
        assert reader is not None
        self._bundle_started = None  # a mark ends the bundle
        mark = KafkaCheckpointMark(
            self._source.spec,
            self._next_offsets,
            {p: o for p, o in reader.end_offsets.items() if p in self._next_offsets},
            self._watermark_us(),
            self._max_event,
        )
        chain = self._source.chain
        if chain is not None:
            if self._parked_at is not None:
                _HANDOFFS.withdraw(self._parked_at, self)
            self._parked_at = _mark_key(chain, mark.next_offsets)
            self._parked_mark = mark
            _HANDOFFS.park(self._parked_at, self)
        return mark

    def close(self) -> None:
        if self._parked_at is not None:
            _HANDOFFS.withdraw(self._parked_at, self)
            self._parked_at = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class KafkaPartitionSource(UnboundedSource):
    """All partitions of the spec's topics.

    ``split`` gives one source per partition, or with ``split_partitions=False``
    one source reading all of them, whose watermark is the minimum over them.
    Prism needs the latter: it sets the read stage's output watermark from the
    residuals of whichever bundle finished last (``estimatedOutput`` in its
    element manager, Beam 2.77), not from the minimum over all restrictions as
    Flink and Dataflow do, so one partition's watermark would make the
    backlog of every other partition late.
    """

    def __init__(
        self,
        spec: KafkaReadSpec,
        batched: bool,
        partitions: tuple[tuple[str, int], ...] | None = None,
        split_partitions: bool = True,
        chain: str | None = None,
        live_bundle_s: float | None = None,
    ):
        self.spec = spec
        self.batched = batched
        self.partitions = partitions
        self.split_partitions = split_partitions
        # Names this read in ``_Handoffs`` (one per ReadFromKafka): None, no handoffs.
        self.chain = chain
        # A caught-up reader ends its bundle after this long (None: never early).
        self.live_bundle_s = live_bundle_s

    def _with_partitions(self, partitions: tuple[tuple[str, int], ...]) -> KafkaPartitionSource:
        return KafkaPartitionSource(
            self.spec,
            self.batched,
            partitions,
            self.split_partitions,
            self.chain,
            self.live_bundle_s,
        )

    def split(self, desired_num_splits: int, options=None) -> list[KafkaPartitionSource]:
        if self.partitions is not None:
            return [self]
        consumer = open_consumer(self.spec)
        try:
            partitions = list_partitions(consumer, self.spec)
        finally:
            consumer.close()
        if not self.split_partitions:
            return [self._with_partitions(tuple(partitions))]
        return [self._with_partitions((p,)) for p in partitions]

    def create_reader(self, options, checkpoint_mark) -> _KafkaPartitionReader:
        if self.partitions is None:
            # Beam falls back to the unsplit source when split() raised; raise
            # the real reason (no broker, no topic) here instead of a vague one.
            self.split(1)
            raise ValueError("KafkaPartitionSource must be split before reading")
        return _KafkaPartitionReader(self, checkpoint_mark)

    def get_checkpoint_mark_coder(self):
        return coders.PickleCoder()

    def default_output_coder(self):
        return coders.PickleCoder()
