"""The Pub/Sub feed for local streaming: how ``feed_core`` pulls and acks Pub/Sub.

The DirectRunner's own Pub/Sub read holds the watermark at wall-clock time and
pulls 10 messages per bundle (design.md), so replayed or delayed data is all
late and throughput is low. This feed, served by ``feed_server`` from its own
process, pulls up to ``max_batch`` messages per request, stamps each with its
event time (timestamp attribute, payload field or publish time), announces a
watermark that follows event time, and (``feed_core``) acknowledges messages
only once they are safe: taken in by the pipeline and, with a probe behind
the sinks, written for good.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from beamstream.io.clients.base import ReceivedMessage
from beamstream.io.elements import NO_WATERMARK
from beamstream.io.pubsub.spec import PARTITION, PubSubReadSpec, to_batch
from beamstream.io.watermarks import PartitionWatermarks
from beamstream.runners.direct.feed_core import Delivery, FeedCore, Held
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

    def __call__(self) -> FeedCore:
        from beamstream.io.clients.pubsub import PubSubSubscriber
        from beamstream.io.uris import parse_pubsub_uri

        subscriber = PubSubSubscriber(
            parse_pubsub_uri(f"pubsub://{self.spec.subscription}"),
            delete_on_close=self.spec.delete_on_close,
        )
        return FeedCore(PubSubSource(self.spec, subscriber), self.batched, self.finality)


class PubSubSource:
    """Pulls fresh messages as one batch per pull; acks the messages of safe events.

    A batch's ack token is its list of messages. Messages still held get their
    ack deadline extended, so Pub/Sub does not redeliver what is in the pipeline.
    """

    def __init__(self, spec: PubSubReadSpec, subscriber):
        self._spec = spec
        self._subscriber = subscriber
        policy = spec.event_time
        self.watermarks = PartitionWatermarks(policy.max_out_of_orderness_s, policy.idle_timeout_s)
        self.watermarks.add_partition(PARTITION)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_extend = time.monotonic()

    acknowledges = True
    done = False  # a subscription has no end

    def watermark_us(self) -> int:
        return self.watermarks.advance()

    def read(self) -> list[Delivery]:
        spec, watermarks = self._spec, self.watermarks
        pulled = self._subscriber.receive(spec.max_batch, spec.pull_timeout_s)
        messages = self.fresh(pulled)
        if not messages:
            if not pulled:
                watermarks.set_caught_up(PARTITION, True)
                time.sleep(_EMPTY_PULL_PAUSE_S)
            return []
        batch = to_batch(spec, messages, NO_WATERMARK)  # the core sets the announced one
        known = [t for t in batch.event_times_us or () if t is not None]
        watermarks.observe(PARTITION, max(known) if known else None)
        watermarks.set_caught_up(PARTITION, False)
        return [Delivery(batch, messages)]

    def fresh(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
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

    def acknowledge(self, released: list[Held], sink_watermark: int | None, final: bool) -> None:
        for held in released:
            for m in held.token:
                m.ack()
        # Sent with the next pull, or here when the feed is waiting on the pipeline.
        self._subscriber.commit()

    def keep_alive(self, held: Sequence[Held]) -> None:
        if time.monotonic() - self._last_extend > _EXTEND_EVERY_S:
            self._last_extend = time.monotonic()
            self._subscriber.extend_deadline([m for h in held for m in h.token], _EXTEND_TO_S)

    def close(self) -> None:
        self._subscriber.close()
