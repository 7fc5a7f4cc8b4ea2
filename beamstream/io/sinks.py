"""``WriteMessages``: any sink URI for JSON-able records.

Message sinks (Kafka, Pub/Sub, files) take each element as one message:
dicts become compact JSON. Database sinks need a table layout, so pipelines
that store rows use their own SQL transforms (``beamstream.io.sql``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam

from beamstream.io.uris import FileUri, KafkaUri, PubSubUri, Uri, UriError, parse_sink


class Sink(beam.PTransform):
    """A write whose output moves on only once what it wrote is durable.

    Subclass it (returning what the write returns) for a sink of your own:
    on the local streaming DirectRunner a read commits only what every
    ``Sink`` of its pipeline has written for good. The run finds them in the
    graph, so no pipeline can forget to wire its sinks to the commit.
    """


class WriteMessages(Sink):
    """Writes elements to ``uri``; ``key_fn`` sets Kafka keys / Pub/Sub ordering."""

    def __init__(
        self,
        uri: str | Uri,
        *,
        key_fn: Callable[[Any], bytes | str | None] | None = None,
        kafka_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self._uri = parse_sink(uri) if isinstance(uri, str) else uri
        self._key_fn = key_fn
        self._kafka_config = kafka_config or {}

    def expand(self, pcoll):
        uri = self._uri
        if isinstance(uri, FileUri):
            from beamstream.io.files import WriteJsonLines

            return pcoll | "WriteFiles" >> WriteJsonLines(uri.path)
        if isinstance(uri, KafkaUri):
            from beamstream.io.kafka import WriteToKafka

            return pcoll | "WriteKafka" >> WriteToKafka(
                uri, key_fn=self._key_fn, producer_config=self._kafka_config
            )
        if isinstance(uri, PubSubUri):
            from beamstream.io.pubsub import WriteToPubSubMessages

            return pcoll | "WritePubSub" >> WriteToPubSubMessages(uri)
        raise UriError(
            f"{uri.redacted()}: this pipeline writes messages; use kafka://, pubsub:// or a path"
        )
