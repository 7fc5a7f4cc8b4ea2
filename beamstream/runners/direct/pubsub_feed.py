"""The Pub/Sub feed for local streaming: pulled batches in, TestStream steps out.

The DirectRunner's own Pub/Sub read holds the watermark at wall-clock time and
pulls 10 messages per bundle (design.md), so replayed or delayed data is all
late and throughput is low. This feed, served by ``feed_server`` from its own
process, pulls up to ``max_batch`` messages per request, stamps each with its
event time (timestamp attribute, payload field or publish time), announces a
watermark that follows event time, and acknowledges messages only once the
pipeline has taken in the event that carried them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from beamstream.io.clients.base import ReceivedMessage
from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK, as_elements
from beamstream.io.pubsub.spec import PARTITION, PubSubReadSpec, to_batch
from beamstream.io.watermarks import PartitionWatermarks
from beamstream.runners.direct.commit_ledger import CommitLedger, MarkerSchedule
from beamstream.runners.direct.feed import (
    STOP_FLUSH,
    FeedProgress,
    FeedStep,
    until_taken_in,
    with_progress_marker,
)
from beamstream.runners.direct.finality import Finality

_DEDUP_WINDOW = 200_000  # recent ids remembered for id_label deduplication
_EMPTY_PULL_PAUSE_S = 0.05  # the emulator answers an empty pull at once
_EXTEND_EVERY_S, _EXTEND_TO_S = 10.0, 60  # ack deadline of messages still in the pipeline


@dataclass(frozen=True)
class PubSubFeed:
    """A picklable feed factory: the feed process calls it to open the subscriber."""

    spec: PubSubReadSpec
    batched: bool = False

    finality: Finality = Finality()  # when a record's windows are final (from the pipeline)

    def __call__(self) -> _PubSubFeedRun:
        return _PubSubFeedRun(self.spec, self.batched, self.finality)


@dataclass
class _Held:
    """Messages of one event, held unacked until the pipeline is done with them."""

    seq: int  # the event that carried them
    oldest_us: int  # its oldest element time (caps the announced watermark until taken in)
    final_at_us: int  # event time after which their windows are written for good
    messages: list[ReceivedMessage]


class _PubSubFeedRun:
    def __init__(self, spec: PubSubReadSpec, batched: bool, finality: Finality):
        from beamstream.io.clients.pubsub import PubSubSubscriber
        from beamstream.io.uris import parse_pubsub_uri

        self._spec = spec
        self._batched = batched
        self._subscriber = PubSubSubscriber(
            parse_pubsub_uri(f"pubsub://{spec.subscription}"),
            delete_on_close=spec.delete_on_close,
        )
        policy = spec.event_time
        self.watermarks = PartitionWatermarks(policy.max_out_of_orderness_s, policy.idle_timeout_s)
        self.watermarks.add_partition(PARTITION)
        self._finality = CommitLedger(finality)
        self._held: list[_Held] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_extend = time.monotonic()
        self._markers = MarkerSchedule()

    def _fresh(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """Drops redeliveries (same id_label attribute, or same message id) and acks them."""
        label = self._spec.id_label
        fresh = []
        for m in messages:
            key = m.attributes.get(label, m.message_id) if label else m.message_id
            if key in self._seen:
                m.ack()
                continue
            self._seen[key] = None
            fresh.append(m)
        while len(self._seen) > _DEDUP_WINDOW:
            self._seen.popitem(last=False)
        return fresh

    def steps(self, progress: FeedProgress) -> Iterator[FeedStep]:
        spec, watermarks = self._spec, self.watermarks
        seq, announced = 0, NO_WATERMARK
        while not progress.stop_requested():
            pulled = self._subscriber.receive(spec.max_batch, spec.pull_timeout_s)
            messages = self._fresh(pulled)
            elements: list[tuple[object, int]] = []
            if messages:
                batch = to_batch(spec, messages, announced)
                known = [t for t in batch.event_times_us or () if t is not None]
                watermarks.observe(PARTITION, max(known) if known else None)
                watermarks.set_caught_up(PARTITION, False)
                elements = as_elements([batch], self._batched)
                seq += 1
                newest = max(known) if known else max(announced, 0)
                oldest = min(ts for _, ts in elements)
                self._held.append(_Held(seq, oldest, self._finality.final_at(newest), messages))
            elif not pulled:
                watermarks.set_caught_up(PARTITION, True)
            pending = min((h.final_at_us for h in self._held), default=None)
            if self._markers.due(announced, progress.sink_watermark(), pending):
                # Heartbeats stop at record times; a marker at the announced
                # watermark lets the sink watermark reach the held finalities.
                elements, seq = with_progress_marker(elements, seq, announced)
            watermark = self._announceable(watermarks.advance(), progress())
            new = watermark if watermark > announced else None
            announced = max(announced, watermark)
            yield FeedStep(elements, new)
            self._ack_done(progress)
            if not pulled:
                time.sleep(_EMPTY_PULL_PAUSE_S)
        yield from self._drain(progress, seq, flush=progress.stop_requested() == STOP_FLUSH)

    def _announceable(self, watermark: int, acked: int) -> int:
        """No further than the oldest element the pipeline has not taken in yet.

        The runner may apply a watermark event before it has processed an
        earlier element event; a watermark past those elements (an idle feed
        jumping to the wall clock, say) would make them late and dropped.
        """
        waiting = [h.oldest_us for h in self._held if h.seq > acked]
        return min(watermark, min(waiting)) if waiting else watermark

    def _ack_done(self, progress: FeedProgress, everything: bool = False) -> None:
        """Acks what the pipeline took in and, with a sink probe, wrote for good."""
        acked, sink = progress(), progress.sink_watermark()
        keep: list[_Held] = []
        for held in self._held:
            done = held.seq <= acked and (everything or sink is None or held.final_at_us <= sink)
            if done:
                for m in held.messages:
                    m.ack()
            else:
                keep.append(held)
        self._held = keep
        # Sent with the next pull, or here when the feed is waiting on the pipeline.
        self._subscriber.commit()
        if self._held and time.monotonic() - self._last_extend > _EXTEND_EVERY_S:
            self._last_extend = time.monotonic()
            self._subscriber.extend_deadline(
                [m for held in self._held for m in held.messages], _EXTEND_TO_S
            )

    def _drain(self, progress: FeedProgress, seq: int, flush: bool) -> Iterator[FeedStep]:
        """Stops reading; ``flush`` closes every window so all that was read gets written.

        The final watermark goes out only after the pipeline took in every
        event sent: the runner may apply a watermark before earlier element
        events, which would make their records late (and acked). Then, with a
        sink probe, waits until the sinks' watermark covers what is held or
        stops moving for 2 s. A flush then acks everything taken in; otherwise
        messages of windows still open stay unacked, to be redelivered.
        """
        deadline = time.monotonic() + 60
        yield from until_taken_in(progress, seq, deadline)  # nothing may turn late
        if flush:
            yield FeedStep([], MAX_WATERMARK)
        last_sink, last_change = progress.sink_watermark(), time.monotonic()
        while time.monotonic() < deadline:
            self._ack_done(progress)
            sink = progress.sink_watermark()
            if sink != last_sink:
                last_sink, last_change = sink, time.monotonic()
            settled = not self._held or sink is None or time.monotonic() - last_change > 2.0
            if progress() >= seq and settled:
                break
            yield FeedStep([], None)
            time.sleep(0.05)
        self._ack_done(progress, everything=flush)
        progress.mark_stopped()
        if not flush:
            # Keep the stream open until the pipeline is cancelled, so the runner
            # does not close (and emit) windows that are still open.
            while time.monotonic() < deadline + 60:
                yield FeedStep([], None)
                time.sleep(0.2)

    def close(self) -> None:
        self._subscriber.close()
