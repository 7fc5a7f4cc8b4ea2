"""``ReadMessages``: any source URI as ``Message`` or ``MessageBatch`` elements.

Pipelines ask for a shape, not a connector: aggregating transforms take
``batched=True`` and fold thousands of records per element; per-record
transforms take single messages. The URI picks the connector.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.uris import FileUri, KafkaUri, PubSubUri, Uri, UriError, parse_source


class ReadMessages(beam.PTransform):
    """Reads ``uri`` (kafka://, pubsub://, a file path or glob) in event time."""

    def __init__(
        self,
        uri: str | Uri,
        *,
        batched: bool = False,
        event_time: EventTimePolicy = EventTimePolicy(field="timestamp"),
        kafka_config: dict[str, Any] | None = None,
        pubsub: dict[str, Any] | None = None,
    ):
        super().__init__()
        self._uri = parse_source(uri) if isinstance(uri, str) else uri
        self._batched = batched
        self._event_time = event_time
        self._kafka_config = kafka_config or {}
        self._pubsub = pubsub or {}

    def expand(self, pbegin):
        uri = self._uri
        if isinstance(uri, FileUri):
            from beamstream.io.files import ReadJsonLines

            return pbegin | "ReadFiles" >> ReadJsonLines(uri.path, batched=self._batched)
        if isinstance(uri, KafkaUri):
            from beamstream.io.kafka import ReadFromKafka

            kafka = ReadFromKafka(
                uri,
                batched=self._batched,
                event_time=self._event_time,
                consumer_config=self._kafka_config,
            )
            return pbegin | "ReadKafka" >> kafka
        if isinstance(uri, PubSubUri):
            from beamstream.io.pubsub import ReadFromPubSubMessages

            pubsub = ReadFromPubSubMessages(
                uri, batched=self._batched, event_time=self._event_time, **self._pubsub
            )
            return pbegin | "ReadPubSub" >> pubsub
        raise UriError(f"{uri.redacted()} cannot be read as a message source")
