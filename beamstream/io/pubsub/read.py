"""``ReadFromPubSubMessages`` and ``WriteToPubSubMessages``: Pub/Sub in pipelines.

Like the Kafka IO, the implementation is picked in ``expand`` by runner:

* on the DirectRunner, reading goes through the live feed (``pubsub_feed``):
  large synchronous pulls, event time from the timestamp attribute or the
  payload, a watermark that follows event time, acks once the pipeline took
  the data in. Beam's own DirectRunner read holds the watermark at wall-clock
  time and pulls 10 messages per bundle, so replayed data would all be late.
  Writing uses the plain publisher in a DoFn.
* everywhere else (Dataflow, Flink, Prism): Beam's native ``ReadFromPubSub``
  and ``WriteToPubSub``. Event time there is the timestamp attribute (or the
  publish time): set ``timestamp_attribute`` when event time matters, because
  re-timestamping behind the source watermark makes elements late.

A topic URI as a source reads through a new subscription created when the
pipeline is built (locally: ``<topic>-beamstream-<random>``, deleted when the
read stops; on Dataflow: the one Beam's source creates); it sees only
messages published after that. Use a subscription URI to read a backlog.
"""

from __future__ import annotations

import uuid

import apache_beam as beam

from beamstream.io.elements import Message, MessageBatch
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.pubsub.spec import PubSubReadSpec
from beamstream.io.uris import PubSubUri, parse_pubsub_uri
from beamstream.runners import is_local_streaming


def _as_uri(uri: PubSubUri | str) -> PubSubUri:
    return parse_pubsub_uri(uri) if isinstance(uri, str) else uri


def create_read_subscription(topic: PubSubUri, ack_deadline_seconds: int = 60) -> str:
    """A fresh subscription on ``topic`` for one pipeline read; returns its path."""
    from google.cloud.pubsub_v1 import SubscriberClient

    name = f"{topic.name}-beamstream-{uuid.uuid4().hex[:8]}"
    path = f"projects/{topic.project}/subscriptions/{name}"
    client = SubscriberClient()
    try:
        client.create_subscription(
            name=path, topic=topic.path, ack_deadline_seconds=ack_deadline_seconds
        )
    finally:
        client.close()
    return path


class _ToMessage(beam.DoFn):
    """Beam's ``PubsubMessage`` as our ``Message`` (or a one-record batch)."""

    def __init__(self, source: str, batched: bool, with_attributes: bool):
        self._source = source
        self._batched = batched
        self._with_attributes = with_attributes

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        publish_time = getattr(element, "publish_time", None)
        attributes = (element.attributes or {}) if self._with_attributes else {}
        key = getattr(element, "ordering_key", None)
        message = Message(
            value=element.data,
            key=key.encode("utf-8") if key else None,
            headers=tuple((k, v.encode("utf-8")) for k, v in attributes.items()),
            source=self._source,
            timestamp_ms=int(publish_time.timestamp() * 1000) if publish_time else None,
            event_time_us=timestamp.micros,
        )
        yield MessageBatch.of([message]) if self._batched else message


class ReadFromPubSubMessages(beam.PTransform):
    """Reads a Pub/Sub subscription (or topic) as ``Message``/``MessageBatch`` in event time.

    ``timestamp_attribute``: attribute holding event time (epoch ms or RFC
    3339); otherwise the payload field of ``event_time`` (locally) or the
    publish time. ``id_label``: attribute whose value identifies redeliveries.
    """

    def __init__(
        self,
        uri: PubSubUri | str,
        *,
        batched: bool = False,
        event_time: EventTimePolicy = EventTimePolicy(field="timestamp"),
        timestamp_attribute: str | None = None,
        id_label: str | None = None,
        with_attributes: bool = True,
        max_batch: int = 1000,
        finality: tuple[float, float] = (0.0, 0.0),
    ):
        """``finality``: (largest window, allowed lateness) in seconds of what the
        pipeline aggregates; locally, messages are acked once their windows are
        written for good (when ``ReadMessages.commit_after`` reports the sinks),
        else once the pipeline took them in."""
        super().__init__()
        self._uri = _as_uri(uri)
        self._finality = finality
        self.live_feed: beam.PTransform | None = None
        self._batched = batched
        self._event_time = event_time
        self._timestamp_attribute = timestamp_attribute
        self._id_label = id_label
        self._with_attributes = with_attributes
        self._max_batch = max_batch

    def expand(self, pbegin):
        uri = self._uri
        if is_local_streaming(pbegin.pipeline, unbounded=True):
            from beamstream.runners.direct.finality import fixed_finality
            from beamstream.runners.direct.pubsub_feed import PubSubFeed
            from beamstream.runners.direct.read_feed import ReadLiveFeed

            subscription, created = uri.path, False
            if not uri.is_subscription:
                subscription, created = create_read_subscription(uri), True
            spec = PubSubReadSpec(
                subscription=subscription,
                event_time=self._event_time,
                timestamp_attribute=self._timestamp_attribute,
                id_label=self._id_label,
                with_attributes=self._with_attributes,
                max_batch=self._max_batch,
                delete_on_close=created,
            )
            self.live_feed = ReadLiveFeed(
                PubSubFeed(spec, self._batched, fixed_finality(*self._finality))
            )
            return pbegin | "LiveFeed" >> self.live_feed
        read = beam.io.ReadFromPubSub(
            topic=None if uri.is_subscription else uri.path,
            subscription=uri.path if uri.is_subscription else None,
            id_label=self._id_label,
            with_attributes=True,
            timestamp_attribute=self._timestamp_attribute,
        )
        return (
            pbegin
            | "ReadFromPubSub" >> read
            | "ToMessage" >> beam.ParDo(_ToMessage(uri.path, self._batched, self._with_attributes))
        )
