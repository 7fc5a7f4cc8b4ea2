"""The Kafka feed for local streaming: reader batches in, TestStream steps out."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK, MessageBatch, as_elements
from beamstream.io.kafka.reader import KafkaBatchReader, KafkaReadSpec
from beamstream.runners.direct.commit_ledger import CommitLedger, MarkerSchedule
from beamstream.runners.direct.feed import (
    STOP_FLUSH,
    FeedProgress,
    FeedStep,
    until_taken_in,
    with_progress_marker,
)
from beamstream.runners.direct.finality import Finality


@dataclass(frozen=True)
class KafkaFeed:
    """A picklable feed factory: the child process calls it to open the reader."""

    spec: KafkaReadSpec
    batched: bool = True

    finality: Finality = Finality()  # when a record's windows are final (from the pipeline)

    def __call__(self) -> _KafkaFeedRun:
        return _KafkaFeedRun(self.spec, self.batched, self.finality)


class _KafkaFeedRun:
    def __init__(self, spec: KafkaReadSpec, batched: bool, finality: Finality):
        self._reader = KafkaBatchReader(spec)
        self._batched = batched
        self._commit = spec.commit == "finalize" and spec.group is not None
        self._ledger = CommitLedger(finality)
        self._newest_final: int | None = None  # when all that was read is final
        self._markers = MarkerSchedule()

    def steps(self, progress: FeedProgress) -> Iterator[FeedStep]:
        """Reads and announces; the watermark never passes what is still in flight.

        The streaming DirectRunner may apply a TestStream watermark event before
        element events sent ahead of it, so an announced watermark beyond
        records not yet taken in would make them late, and a GroupByKey would
        drop them. Announcements are therefore capped at the oldest event time
        of unacknowledged events, and batches carry the watermark actually
        announced, which is what lateness is decided against.
        """
        reader, seq, announced = self._reader, 0, NO_WATERMARK
        in_flight: deque[tuple[int, int]] = deque()  # (event seq, its oldest time)
        if reader.watermark_us != NO_WATERMARK:
            # Resuming a committed read: announce its watermark before any record,
            # so re-read records of windows already final are judged too late.
            announced = reader.watermark_us
            yield FeedStep([], announced)
        while not reader.done and not progress.stop_requested():
            batches = [b._replace(watermark_us=announced) for b in reader.read()]
            elements = as_elements(batches, self._batched) if batches else []
            if elements:
                seq += 1
                in_flight.append((seq, min(ts for _, ts in elements)))
                for batch in batches:
                    self._note_final_time(batch)
                    if self._commit:
                        self._ledger.record(seq, batch)
            acked = progress()
            while in_flight and in_flight[0][0] <= acked:
                in_flight.popleft()
            target = reader.watermark_us
            if in_flight:
                target = min(target, min(ts for _, ts in in_flight))
            if self._commit and self._markers.due(
                announced, progress.sink_watermark(), self._ledger.oldest_final_at()
            ):
                # At the watermark already announced: never late, and it comes
                # back as sink watermark once all before it is written.
                elements, seq = with_progress_marker(elements, seq, announced)
            new = target if target > announced else None
            if new is not None:
                announced = new
            yield FeedStep(elements, new)
            self._commit_safe(progress)
        if progress.stop_requested() == STOP_FLUSH or reader.done:
            yield from self._drain(progress, seq, flush=True)
        else:
            yield from self._drain(progress, seq, flush=False)

    def _drain(self, progress: FeedProgress, seq: int, flush: bool) -> Iterator[FeedStep]:
        """Stops reading: waits for the pipeline to take in and write what was read.

        ``flush`` closes every window (watermark to the end of time) and waits
        until a progress marker at the newest window's final time has passed the
        sinks, so all that was read is written, then commits it all. Otherwise
        open windows stay open and their records uncommitted, to be rebuilt
        whole after a restart.
        """
        deadline = time.monotonic() + 120
        yield from until_taken_in(progress, seq, deadline)  # nothing may turn late
        target = self._newest_final if flush else None
        if flush:
            if target is not None and progress.sink_watermark() is not None:
                elements, seq = with_progress_marker([], seq, target)
                yield FeedStep(elements, None)
            yield FeedStep([], MAX_WATERMARK)
        last_change, last_sink = time.monotonic(), progress.sink_watermark()
        while time.monotonic() < deadline:
            sink = progress.sink_watermark()
            if sink != last_sink:
                last_change, last_sink = time.monotonic(), sink
            if sink is None or (target is not None and sink >= target):
                break
            if not flush and time.monotonic() - last_change > 2.0:
                break  # the sinks have written all they can below the watermark
            yield FeedStep([], None)
            time.sleep(0.05)
        self._commit_safe(progress, everything=flush and target is not None, final=True)
        progress.mark_stopped()
        if not flush:
            # Keep the stream open until the pipeline is cancelled, so the
            # runner does not close (and emit) the windows still open.
            while time.monotonic() < deadline + 60:
                yield FeedStep([], None)
                time.sleep(0.2)

    def _note_final_time(self, batch: MessageBatch) -> None:
        known = [t for t in (batch.event_times_us or ()) if t is not None]
        if known:
            final = self._ledger.final_at(max(known))
            if self._newest_final is None or final > self._newest_final:
                self._newest_final = final

    def _commit_safe(
        self, progress: FeedProgress, everything: bool = False, final: bool = False
    ) -> None:
        if not self._commit:
            return
        sink = progress.sink_watermark()
        offsets = self._ledger.safe_offsets(progress(), None if everything else sink)
        if offsets:
            # While reading, never block on the broker; the final commit waits.
            self._reader.commit(offsets, watermark_us=sink, asynchronous=not final)

    def close(self) -> None:
        self._reader.close()
