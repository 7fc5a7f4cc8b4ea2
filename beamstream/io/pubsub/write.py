"""``WriteToPubSubMessages``: elements (bytes, text or JSON-able values) to a Pub/Sub topic.

On the local streaming DirectRunner a DoFn publishes with the plain client;
elsewhere Beam's native ``WriteToPubSub``.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from beamstream import counters
from beamstream.io.elements import encode_payload
from beamstream.io.uris import PubSubUri, UriError, parse_pubsub_uri
from beamstream.runners import is_local_streaming


class _PublishFn(beam.DoFn):
    """Publishes with the plain client (DirectRunner); a failed publish fails the bundle."""

    def __init__(self, uri: PubSubUri):
        self._uri = uri
        self._publisher: Any = None

    def setup(self):
        from beamstream.io.clients.pubsub import PubSubPublisher

        self._publisher = PubSubPublisher(self._uri, ordering=False)
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def process(self, element):
        self._publisher.publish(element)

    def finish_bundle(self):
        delivered = self._publisher.flush(timeout=120)
        self._produced.inc(delivered)

    def teardown(self):
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None


class WriteToPubSubMessages(beam.PTransform):
    """Writes elements (bytes, text or JSON-able values) to a Pub/Sub topic."""

    def __init__(self, uri: PubSubUri | str):
        super().__init__()
        self._uri = parse_pubsub_uri(uri) if isinstance(uri, str) else uri
        if self._uri.is_subscription:
            raise UriError(
                f"{self._uri.redacted()}: a Pub/Sub sink is a topic (pubsub://projects/P/topics/T)"
            )

    def expand(self, pcoll):
        if is_local_streaming(pcoll.pipeline, unbounded=True):
            return pcoll | "Publish" >> beam.ParDo(_PublishFn(self._uri))
        return (
            pcoll
            | "Encode" >> beam.Map(encode_payload).with_output_types(bytes)
            | "WriteToPubSub" >> beam.io.WriteToPubSub(self._uri.path)
        )
