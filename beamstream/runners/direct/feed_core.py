"""The one live-feed loop: what Kafka and Pub/Sub feeds share, so both behave alike.

A ``FeedSource`` says only how to read (``read``, ``watermark_us``, ``done``)
and how to acknowledge (``acknowledge``, ``keep_alive``). ``FeedCore`` owns the
rest: event numbers, records in flight, the announced watermark (never past
a record the pipeline has not taken in), progress markers, when what was read
is safe to acknowledge, and the order in which a stop drains the feed.

Safe means taken in by the pipeline and, with a probe behind the sinks,
final (``Finality``) at the sink watermark: acknowledging it promises that a
restart never needs those records again (``commit_ledger`` says why).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from beamstream.io.elements import (
    MAX_WATERMARK,
    NO_WATERMARK,
    MessageBatch,
    batch_timestamp,
)
from beamstream.runners.direct import chunks
from beamstream.runners.direct.chunks import Chunk
from beamstream.runners.direct.commit_ledger import MarkerSchedule
from beamstream.runners.direct.feed import STOP_FLUSH, FeedProgress, FeedStep, ProgressMarker
from beamstream.runners.direct.finality import Finality


class Delivery(NamedTuple):
    """A batch a source read, and what it needs to acknowledge it later."""

    batch: MessageBatch
    token: Any = None  # Kafka: its ledger entry; Pub/Sub: its messages


@dataclass
class Held:
    """A delivery held unacknowledged until it is safe."""

    seq: int  # the event that carried it
    oldest_us: int  # its oldest element time: caps the watermark until taken in
    final_at_us: int  # sink watermark from which all of its results are final
    token: Any


class FeedSource(Protocol):
    """How a broker is read and acknowledged; everything else is ``FeedCore``'s."""

    @property
    def acknowledges(self) -> bool:
        """Whether ``acknowledge`` does anything (progress markers are for it)."""
        ...

    @property
    def done(self) -> bool:
        """A bounded read has reached its end."""
        ...

    def watermark_us(self) -> int:
        """The source's event-time watermark now (``NO_WATERMARK`` before any)."""
        ...

    def read(self) -> list[Delivery]:
        """One read (may block briefly; pauses by itself when there is nothing)."""
        ...

    def acknowledge(self, released: list[Held], sink_watermark: int | None, final: bool) -> None:
        """Acknowledges ``released`` (called every step, possibly with none).

        ``final``: the last call, which may block until the broker confirms.
        """
        ...

    def keep_alive(self, held: Sequence[Held]) -> None:
        """Called with what is still held, so a broker does not redeliver it."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FeedTimeouts:
    """The feed's waits, one set for every source.

    ``drain_s`` stays below ``shutdown.STOP_TIMEOUT_S`` (120 s), so the final
    commit happens before a stopping run is cancelled.
    """

    drain_s: float = 100.0  # a stop's whole drain: taken in, written, committed
    settle_s: float = 2.0  # a sink watermark still for this long has written all it can
    keep_open_s: float = 60.0  # after a finish: keep the stream open until cancelled
    pause_s: float = 0.05  # between the steps of a drain


class FeedCore:
    """A ``Feed`` over a ``FeedSource``: reads, announces, marks, acknowledges, drains.

    Coalescing: while ``max_ahead`` events are sent but not taken in, what is
    read joins the next event instead of queueing as events of its own (reading
    stops at ``max_pending_bytes``). The runner pays per event, so an event
    queued behind others delays its watermark by their processing; coalesced,
    the watermark goes out with the next event the runner can take, and
    events grow by themselves when the runner falls behind, up to
    ``chunks.EVENT_BYTES``.

    Lingering: an event goes out at most every ``linger_s`` while records
    trickle in (a live topic polled as records arrive). The runner pays per
    event, and a window's aggregation keeps one partial result per bundle
    until the window closes: at 20,000 frames/s without it, 250 events a
    second left 15,000 partial user sets in each per-minute window.
    """

    def __init__(
        self,
        source: FeedSource,
        batched: bool,
        finality: Finality | None = None,
        timeouts: FeedTimeouts = FeedTimeouts(),
        max_ahead: int = 2,
        max_pending_bytes: int = 16 * 2**20,
        linger_s: float = 0.05,
    ):
        self.source = source
        self._linger_s = linger_s
        self._last_event_at = float("-inf")  # time.monotonic() of the last event sent
        self._max_ahead = max_ahead
        self._max_pending_bytes = max_pending_bytes
        self._pending: deque[Chunk] = deque()  # read, not sent yet
        self._pending_bytes = 0
        self._batched = batched
        self._finality = finality or Finality()
        self._timeouts = timeouts
        self._seq = 0  # the last event number given out
        self._announced = NO_WATERMARK
        self._held: deque[Held] = deque()  # in event order
        self._newest_final: int | None = None  # when all that was read is final
        self._markers = MarkerSchedule()
        self._last_release: tuple[int, int | None] | None = None  # (acked, sink) last seen

    def steps(self, progress: FeedProgress) -> Iterator[FeedStep]:
        """Reads and announces; the watermark never passes what is still in flight.

        The streaming DirectRunner may apply a TestStream watermark event before
        element events sent ahead of it, so an announced watermark beyond
        records not yet taken in would make them late, and a GroupByKey would
        drop them. Announcements are therefore capped at the oldest event time
        of unacknowledged events, and batches carry the watermark actually
        announced, which is what lateness is decided against.
        """
        source = self.source
        start = source.watermark_us()
        if start != NO_WATERMARK:
            # Resuming a committed read: announce its watermark before any record,
            # so re-read records of windows already final are judged too late.
            self._announced = start
            yield FeedStep([], start)
        while not source.done and not progress.stop_requested():
            ahead = self._seq - progress() >= self._max_ahead
            if self._pending and not ahead and self._linger_left() <= 0:
                pass  # an event is due: send what is pending now, read after it
            elif not ahead or self._pending_bytes < self._max_pending_bytes:
                self._take(source.read())
            else:
                time.sleep(self._timeouts.pause_s)  # behind and full: wait for the runner
            linger = self._linger_left()
            if self._pending and (ahead or linger > 0):
                # The runner has not taken in the last events, or the last went
                # out just now: what is read joins the next event.
                if not ahead:
                    time.sleep(linger)
                yield FeedStep([], None)
                self._release(progress)
                continue
            elements = self._next_event()
            if source.acknowledges and self._markers.due(
                self._announced, progress.sink_watermark(), self._pending_final_at()
            ):
                # At the watermark already announced: never late, and it comes
                # back as sink watermark once all before it is written.
                elements.append((ProgressMarker(), self._announced))
            target = min(
                source.watermark_us(), self._in_flight_oldest(progress()), self._pending_oldest()
            )
            new = target if target > self._announced else None
            if new is not None:
                self._announced = new
            yield self._step(elements, new)
            self._release(progress)
        while self._pending:  # read, held, never sent: send it, so the drain can take it in
            yield self._step(self._next_event(), None)
        flush = source.done or progress.stop_requested() == STOP_FLUSH
        yield from self._drain(progress, flush)

    def _take(self, deliveries: list[Delivery]) -> None:
        """Queues one read's batches as chunks, to be held under the events that carry them."""
        for delivery in deliveries:
            batch = delivery.batch._replace(watermark_us=self._announced)
            if not batch.values:
                continue
            known = [t for t in (batch.event_times_us or ()) if t is not None]
            final_at = self._finality.final_at(max(known) if known else batch.watermark_us)
            if known and (self._newest_final is None or final_at > self._newest_final):
                self._newest_final = final_at
            parts = list(chunks.split(batch, self._batched))
            for i, (part, elements, size) in enumerate(parts):
                token = delivery.token if i == len(parts) - 1 else chunks.NO_TOKEN
                self._pending.append(
                    Chunk(elements, size, batch_timestamp(part), final_at, token)
                )
                self._pending_bytes += size

    def _next_event(self) -> list[tuple[Any, int]]:
        """Elements of the next event (at most ``EVENT_BYTES``), held under its number."""
        elements: list[tuple[Any, int]] = []
        size, seq = 0, self._seq + 1  # given out by ``_step``
        while self._pending and (
            not elements or size + self._pending[0].size <= chunks.EVENT_BYTES
        ):
            chunk = self._pending.popleft()
            self._pending_bytes -= chunk.size
            size += chunk.size
            elements.extend(chunk.elements)
            self._held.append(Held(seq, chunk.oldest_us, chunk.final_at_us, chunk.token))
        return elements

    def _linger_left(self) -> float:
        """Seconds until the next event may go out (0 or less: now)."""
        return self._last_event_at + self._linger_s - time.monotonic()

    def _pending_oldest(self) -> int:
        return min((c.oldest_us for c in self._pending), default=MAX_WATERMARK)

    def _step(self, elements: list[tuple[Any, int]], watermark_us: int | None) -> FeedStep:
        """A step; one with elements is a new event, numbered here (the server sends it so)."""
        if not elements:
            return FeedStep([], watermark_us)
        self._seq += 1
        self._last_event_at = time.monotonic()
        return FeedStep(elements, watermark_us, seq=self._seq)

    def _in_flight_oldest(self, acked: int) -> int:
        """The oldest element time of events sent but not taken in (``MAX_WATERMARK`` if none)."""
        oldest = MAX_WATERMARK
        for held in reversed(self._held):  # event order: the ones in flight are last
            if held.seq <= acked:
                break
            oldest = min(oldest, held.oldest_us)
        return oldest

    def _pending_final_at(self) -> int | None:
        finals = [h.final_at_us for h in self._held] + [c.final_at_us for c in self._pending]
        return min(finals, default=None)

    def _release(
        self, progress: FeedProgress, everything: bool = False, final: bool = False
    ) -> None:
        """Acknowledges what is safe: taken in and, with a probe, final at the sink watermark.

        ``everything``: all that was taken in (a flush has closed every window).
        """
        acked, sink = progress(), progress.sink_watermark()
        # A source that acknowledges nothing waits on no sink: once taken in, a
        # delivery is no longer in flight, and nothing else holds it.
        horizon = sink if self.source.acknowledges else None
        released: list[Held] = []
        if everything or (acked, horizon) != self._last_release:
            self._last_release = (acked, horizon)
            kept: deque[Held] = deque()
            for held in self._held:
                safe = held.seq <= acked and (
                    everything or horizon is None or held.final_at_us <= horizon
                )
                (released if safe else kept).append(held)
            self._held = kept
        released = [h for h in released if h.token is not chunks.NO_TOKEN]
        self.source.acknowledge(released, sink, final)
        if self._held:
            self.source.keep_alive(self._held)

    def _until_taken_in(self, progress: FeedProgress, deadline: float) -> Iterator[FeedStep]:
        """Empty steps until the pipeline has taken in every event sent (or the deadline).

        Sent before a final watermark: the runner may apply a watermark event
        before earlier element events, which would make their records late.
        """
        while progress() < self._seq and time.monotonic() < deadline:
            yield FeedStep([], None)
            time.sleep(self._timeouts.pause_s)

    def _drain(self, progress: FeedProgress, flush: bool) -> Iterator[FeedStep]:
        """Stops reading: waits for the pipeline to take in and write what was read.

        ``flush`` closes every window (watermark to the end of time), with a
        probe waits until a progress marker at the newest window's final time
        has passed the sinks, so all that was read is written, then
        acknowledges everything taken in. Otherwise (finish) it waits until
        the sink watermark has settled; open windows stay open and their
        records unacknowledged, to be rebuilt whole after a restart.
        """
        timeouts = self._timeouts
        deadline = time.monotonic() + timeouts.drain_s
        yield from self._until_taken_in(progress, deadline)  # nothing may turn late
        target = self._newest_final if flush else None
        if flush:
            if target is not None and progress.sink_watermark() is not None:
                target = max(target, self._announced)  # a marker is never late
                yield self._step([(ProgressMarker(), target)], None)
            yield FeedStep([], MAX_WATERMARK)
        last_sink, last_change = progress.sink_watermark(), time.monotonic()
        while time.monotonic() < deadline:
            self._release(progress)
            sink = progress.sink_watermark()
            if sink != last_sink:
                last_sink, last_change = sink, time.monotonic()
            if sink is None:
                break  # no probe: nothing to wait for
            if target is not None and sink >= target:
                break  # all that was read is written
            settled = time.monotonic() - last_change > timeouts.settle_s
            if target is None and (not self._held or settled):
                break  # the sinks have written all they can below the watermark
            yield FeedStep([], None)
            time.sleep(timeouts.pause_s)
        self._release(progress, everything=flush, final=True)
        progress.mark_stopped()
        if not flush:
            # Keep the stream open until the pipeline is cancelled, so the
            # runner does not close (and emit) the windows still open.
            while time.monotonic() < deadline + timeouts.keep_open_s:
                yield FeedStep([], None)
                time.sleep(0.2)

    def close(self) -> None:
        self.source.close()
