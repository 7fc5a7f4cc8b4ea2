"""A batch reader over Kafka partitions: the one read loop both Beam paths share.

``KafkaBatchReader`` owns a consumer (kafka-python or confluent-kafka, see
``client``) with explicitly assigned partitions (no group rebalancing:
joining a group took ~23 s on the test broker and Beam's Java KafkaIO
assigns too). Each ``read()`` is one poll,
returned as one ``MessageBatch`` per partition, with event times extracted and
the partition watermarks updated. The SDF/UnboundedSource path (Flink,
Dataflow, batch) runs one reader per partition; the local streaming feed runs
one reader over all partitions.

Bounded reads (``stop=end``) stop at the end offsets listed when the read
started, as Kafka defines them (the offset after the last record): records
appended later are left for the next read. A partition that has reached its
end finishes at once; one whose listed end was never reached finishes when a
fetch shows nothing more (the log was truncated or compacted below it).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from beamstream.io.elements import MAX_WATERMARK, MessageBatch
from beamstream.io.kafka.client import BEGINNING, END, BrokerUnavailable
from beamstream.io.kafka.spec import KafkaReadSpec, list_partitions, open_consumer
from beamstream.io.outage import Outage
from beamstream.io.watermarks import PartitionWatermarks

_LOG = logging.getLogger(__name__)

# Polls in a row without data for a partition, after it reached its end offset,
# that confirm it is caught up.
_CONFIRMING_POLLS = 2

# Quiet this long, an empty poll is followed by a broker request to tell a
# quiet topic from an unreachable broker.
_REACHABILITY_CHECK_S = 5.0


def _watermark_of(metadata: str | None) -> int | None:
    if metadata and metadata.startswith("wm="):
        try:
            return int(metadata[3:])
        except ValueError:
            return None
    return None


class KafkaBatchReader:
    """Polls assigned partitions into per-partition batches; tracks watermarks."""

    def __init__(
        self,
        spec: KafkaReadSpec,
        partitions: list[tuple[str, int]] | None = None,
        positions: dict[tuple[str, int], int] | None = None,
        end_offsets: dict[tuple[str, int], int] | None = None,
    ):
        self.spec = spec
        self._consumer = open_consumer(spec)
        pairs = partitions or list_partitions(self._consumer, spec)
        self._pairs = list(pairs)
        self._pair_set = set(pairs)
        self.watermarks = PartitionWatermarks(
            spec.event_time.max_out_of_orderness_s, spec.event_time.idle_timeout_s
        )
        for pair in pairs:
            self.watermarks.add_partition(pair)
        self._consumer.assign(self._starts(positions or {}))
        self._started = time.monotonic()
        # A full poll (max_batch records) may have left more buffered: a backlog.
        self.last_poll_saturated = False
        self.end_offsets: dict[tuple[str, int], int] = {}
        if spec.stop == "end":
            self.end_offsets = end_offsets or self._end_offsets()
        self._empty_polls = dict.fromkeys(pairs, 0)
        self._finished: set[tuple[str, int]] = set()
        self._records_read = 0
        self._last_auto_commit = time.monotonic()
        self._outage = Outage(f"Kafka at {spec.servers_text}")
        self._last_reached = time.monotonic()
        self._commit_outage = Outage(
            f"offset commits to Kafka at {spec.servers_text} (a later one covers a lost one)"
        )

    # -- positions -----------------------------------------------------------------
    def _starts(self, positions: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Where each partition's read starts: a checkpoint's position, else the spec's start."""
        spec, consumer = self.spec, self._consumer
        pending = [pair for pair in self._pairs if pair not in positions]
        starts = {pair: positions[pair] for pair in self._pairs if pair in positions}
        if not pending:
            return starts
        if spec.start == "latest":
            starts.update(dict.fromkeys(pending, END))
        elif spec.start == "committed":
            committed = consumer.committed(pending)
            for pair in pending:
                found = committed.get(pair)
                starts[pair] = BEGINNING if found is None else found[0]
            # Resume with the sink watermark of the newest commit, so windows
            # that were final then are not rebuilt from part of their records.
            # It is one watermark for all partitions: records of a partition
            # committed earlier, or not at all, that lie in those windows were
            # counted in their final results already.
            known = [_watermark_of(c[1]) for c in committed.values() if c is not None]
            marks = [w for w in known if w is not None]
            if marks:
                self.watermarks.restore(max(marks))
        elif spec.start.isdigit():
            found_at = consumer.offsets_for_times(pending, int(spec.start))
            for pair in pending:
                hit = found_at.get(pair)
                starts[pair] = END if hit is None else hit
        else:
            starts.update(dict.fromkeys(pending, BEGINNING))
        return starts

    def _end_offsets(self) -> dict[tuple[str, int], int]:
        return self._consumer.end_offsets(self._pairs)

    def positions(self) -> dict[tuple[str, int], int]:
        """Next offset to read per partition: the checkpoint of this reader."""
        return {pair: self._consumer.position(pair) for pair in self._pairs}

    # -- reading -------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return len(self._finished) == len(self._pairs)

    def read(self, timeout_s: float = 0.2) -> list[MessageBatch]:
        """One poll: per-partition batches, annotated with the watermark before it."""
        if self.done:
            return []
        announced = self.watermarks.current
        polled = self._poll(timeout_s)
        batches: list[MessageBatch] = []
        policy = self.spec.event_time
        for pair, records in polled.items():
            if pair in self._finished or not records:
                continue
            records = self._apply_stops(pair, records)
            if not records:
                continue
            values, stamps = records.values, records.timestamps_ms
            events = None
            known: list[int] = []
            if self.spec.stamp_event_times:
                events = policy.of_payloads(values, stamps)
                known = [e for e in events if e is not None]
            self.watermarks.observe(pair, max(known) if known else None)
            batches.append(
                MessageBatch(
                    source=pair[0],
                    partition=pair[1],
                    values=values,
                    offsets=records.offsets,
                    timestamps_ms=stamps,
                    event_times_us=events,
                    keys=records.keys,
                    headers=records.headers,
                    watermark_us=announced,
                )
            )
        saturated = sum(len(records) for records in polled.values()) >= self.spec.max_batch
        self.last_poll_saturated = saturated
        self._update_progress({(b.source, b.partition) for b in batches}, saturated)
        self._maybe_auto_commit()
        return batches

    def _poll(self, timeout_s: float):
        """One poll; an empty one is repeated when it would confirm a bounded end.

        Confirming inside one call keeps a reader that is rebuilt from a
        checkpoint for every bundle (the SDF path) from never finishing.
        """
        polled = {}
        for _ in range(_CONFIRMING_POLLS):
            polled = self._poll_once(timeout_s)
            if polled is None:
                return {}
            if polled or not self._at_bounded_end():
                break
        return polled

    def _poll_once(self, timeout_s: float):
        """One consumer poll; None while the broker is unreachable (retried later).

        Both clients retry failed fetches themselves and their polls just come
        back empty. So an empty poll after a quiet spell is checked with a
        broker request; an outage is reported once, and while it lasts nothing
        counts as caught up or idle.
        """
        try:
            polled = self._consumer.poll(timeout_s, self.spec.max_batch)
            if polled:
                self._last_reached = time.monotonic()
            elif (
                self._outage.since is not None
                or time.monotonic() - self._last_reached >= _REACHABILITY_CHECK_S
            ):
                self._consumer.end_offsets(self._pairs, timeout_s=2.0)
                self._last_reached = time.monotonic()
        except BrokerUnavailable as exc:
            self._outage.failed(exc)
            for pair in self._pairs:
                self._empty_polls[pair] = 0
                self.watermarks.hold(pair)
            time.sleep(min(timeout_s, 0.5))
            return None
        self._outage.succeeded()
        return polled

    def _at_bounded_end(self) -> bool:
        if self.spec.stop != "end":
            return False
        return any(
            self._consumer.position(pair) >= self.end_offsets.get(pair, 0)
            for pair in self._pairs
            if pair not in self._finished
        )

    def _apply_stops(self, pair, records):
        spec = self.spec
        if spec.max_records is not None:
            room = spec.max_records - self._records_read
            if room <= 0:
                self._finish_all()
                return []
            records = records.head(room)
        if spec.stop == "end":
            # Records from the listed end on were appended after the read started.
            end = self.end_offsets.get(pair, 0)
            if records.offsets[-1] >= end:
                records = records.head(sum(1 for o in records.offsets if o < end))
                self._finish(pair)
        self._records_read += len(records)
        if spec.max_records is not None and self._records_read >= spec.max_records:
            self._finish_all()
        return records

    def _update_progress(self, with_data: set[tuple[str, int]], saturated: bool) -> None:
        """Finishes bounded partitions and tracks which ones are caught up.

        A poll that returned a full ``max_batch`` may have left other partitions'
        records buffered, so it is no evidence that a partition without data in
        it is caught up: only unsaturated polls count. Broker end offsets are not
        trusted for this (the test broker under-reports them).
        """
        spec = self.spec
        timed_out = (
            spec.max_read_time is not None
            and time.monotonic() - self._started >= spec.max_read_time
        )
        for pair in self._pairs:
            if pair in self._finished:
                continue
            if pair in with_data:
                self._empty_polls[pair] = 0
            elif not saturated:
                self._empty_polls[pair] += 1
            position = self._consumer.position(pair)
            reached_end = spec.stop == "end" and position >= self.end_offsets.get(pair, 0)
            if reached_end and (
                self._drained(pair, position) or (pair not in with_data and not saturated)
            ):
                self._finish(pair)
            else:
                confirmed = self._empty_polls[pair] >= _CONFIRMING_POLLS
                self.watermarks.set_caught_up(pair, confirmed)
        if timed_out:
            self._finish_all()
        self.watermarks.advance(self._confirm_caught_up)

    def _drained(self, pair: tuple[str, int], position: int) -> bool:
        """At the high watermark of the last fetch response: nothing more was there."""
        highwater = self._consumer.highwater(pair)
        return highwater is not None and position >= highwater

    def _confirm_caught_up(self, pair: Any) -> bool:
        """Whether the partition has nothing more to read, asked just before releasing it.

        Polls of a consumer with several partitions can come back without one
        partition's records while it still has a backlog (its fetch was not
        complete yet): the high watermark of the last fetch response must be
        reached, and a fresh listing must show nothing beyond the position.
        """
        position = self._consumer.position(pair)
        if not self._drained(pair, position):
            return False
        # That high watermark may be a fetch old: a fresh listing shows any
        # record written since.
        try:
            listed = self._consumer.end_offsets([pair], timeout_s=2.0)[pair]
        except Exception:  # noqa: BLE001 - unreachable or refused: not confirmed
            return False
        return position >= listed

    def _finish(self, pair: tuple[str, int]) -> None:
        if pair not in self._finished:
            self._finished.add(pair)
            self.watermarks.finish(pair)
            self._consumer.pause(pair)

    def _finish_all(self) -> None:
        for pair in self._pairs:
            self._finish(pair)

    @property
    def watermark_us(self) -> int:
        return MAX_WATERMARK if self.done else self.watermarks.current

    # -- committing ----------------------------------------------------------------
    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        watermark_us: int | None = None,
        asynchronous: bool = False,
    ) -> None:
        """Commits next-offsets to the group (no-op without a group).

        ``watermark_us`` is stored in the commit metadata for a restart.
        ``asynchronous`` does not wait (a later commit supersedes a lost one):
        a synchronous commit blocks while the broker is unreachable.
        """
        if not self.spec.group or self.spec.commit == "none" or not offsets:
            return
        # The resume watermark travels in the commit metadata (Kafka keeps it
        # with the offset, atomically), so a restart never sees one without the other.
        metadata = f"wm={watermark_us}" if watermark_us is not None else ""
        values = {p: (o, metadata) for p, o in offsets.items() if p in self._pair_set}
        self._consumer.commit(values, asynchronous, self._commit_done if asynchronous else None)

    def _commit_done(self, error: Exception | None) -> None:
        if error is not None:
            self._commit_outage.failed(error)
        else:
            self._commit_outage.succeeded()

    def _maybe_auto_commit(self, interval_s: float = 5.0) -> None:
        if self.spec.commit != "auto" or not self.spec.group:
            return
        now = time.monotonic()
        if now - self._last_auto_commit >= interval_s or self.done:
            self._last_auto_commit = now
            self.commit(self.positions())

    def close(self) -> None:
        if self.spec.commit == "auto" and self.spec.group:
            try:
                self.commit(self.positions())
            except Exception as exc:  # closing must not mask the real outcome
                _LOG.warning("final auto-commit failed: %s", exc)
        self._consumer.close()
