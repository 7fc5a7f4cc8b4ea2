"""``ReadFromPubSubMessages``: a Pub/Sub subscription (or topic) as messages in event time.

``expand`` builds Beam's native ``ReadFromPubSub`` on every runner (Dataflow,
Flink, Prism). Event time there is the timestamp attribute (or the publish
time): set ``timestamp_attribute`` when event time matters, because
re-timestamping behind the source watermark makes elements late.

On the DirectRunner the run replaces it when it starts with the live feed
(``beamstream.runners.direct.pubsub_feed``): large synchronous pulls, event
time from the timestamp attribute or the payload, a watermark that follows
event time, acks once results are written. Beam's own DirectRunner read holds
the watermark at wall-clock time and pulls 10 messages per bundle, so
replayed data would all be late.

A topic URI as a source reads through a new subscription created when the run
starts (locally: ``<topic>-beamstream-<random>``, deleted when the read stops;
elsewhere: the one Beam's source creates); it sees only messages published
after that. Use a subscription URI to read a backlog.
"""

from __future__ import annotations

import uuid

import apache_beam as beam

from beamstream.io.elements import Message, MessageBatch
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.pubsub.spec import PubSubReadSpec
from beamstream.io.uris import PubSubUri, parse_pubsub_uri


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
    ):
        super().__init__()
        self.uri = _as_uri(uri)
        self.batched = batched
        self._event_time = event_time
        self._timestamp_attribute = timestamp_attribute
        self._id_label = id_label
        self._with_attributes = with_attributes
        self._max_batch = max_batch

    def read_spec(self, subscription: str, created: bool) -> PubSubReadSpec:
        """What the local live feed reads: ``subscription``, deleted at the end if ``created``."""
        return PubSubReadSpec(
            subscription=subscription,
            event_time=self._event_time,
            timestamp_attribute=self._timestamp_attribute,
            id_label=self._id_label,
            with_attributes=self._with_attributes,
            max_batch=self._max_batch,
            delete_on_close=created,
        )

    def expand(self, pbegin):
        # Beam's own read on every runner; on the local streaming DirectRunner
        # the run replaces it with a live feed when it starts (and creates the
        # subscription of a topic URI then, not here).
        uri = self.uri
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
            | "ToMessage" >> beam.ParDo(_ToMessage(uri.path, self.batched, self._with_attributes))
        )
