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
        finality: tuple[float, float] = (0.0, 0.0),
    ):
        """``finality``: (largest window, allowed lateness) in seconds of what the
        pipeline aggregates; streaming reads commit only records whose windows
        are final, once ``commit_after`` reports the sinks' progress."""
        super().__init__()
        self._finality = finality
        self._inner: beam.PTransform | None = None
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

            self._inner = ReadFromKafka(
                uri,
                batched=self._batched,
                event_time=self._event_time,
                consumer_config=self._kafka_config,
                finality=self._finality,
            )
            return pbegin | "ReadKafka" >> self._inner
        if isinstance(uri, PubSubUri):
            from beamstream.io.pubsub import ReadFromPubSubMessages

            self._inner = ReadFromPubSubMessages(
                uri,
                batched=self._batched,
                event_time=self._event_time,
                finality=self._finality,
                **self._pubsub,
            )
            return pbegin | "ReadPubSub" >> self._inner
        raise UriError(f"{uri.redacted()} cannot be read as a message source")

    def commit_after(self, written: list[beam.PCollection]) -> None:
        """Lets a live (local streaming) read see how far these sink writes have got.

        Call it after applying the sinks, with what they returned. Elsewhere it
        does nothing: runners with durable state commit through bundle
        finalization.
        """
        from beamstream.runners.direct.commit_probe import CommitAfterWrites

        feed = getattr(self._inner, "live_feed", None)
        if feed is None or feed.heartbeats is None or feed.feed_id is None:
            return
        pcolls = (feed.heartbeats, *written)
        _ = pcolls | "CommitAfterWrites" >> CommitAfterWrites([feed.feed_id])
