"""Plain publisher and subscriber clients, one interface over Kafka and Pub/Sub.

For applications and tools outside pipelines::

    with open_publisher("pubsub://projects/p/topics/t") as pub:
        pub.publish({"user": "u1"}, key="u1", attributes={"origin": "test"})
    with open_subscriber("kafka://localhost:9092/t", from_beginning=True, group="g") as sub:
        for message in sub.receive(100, timeout=5):
            print(message.value); message.ack()
"""

from __future__ import annotations

from typing import Any

from beamstream.io.clients.base import (
    ClientError,
    Publisher,
    PublishError,
    ReceivedMessage,
    Subscriber,
)
from beamstream.io.elements import encode_payload
from beamstream.io.uris import KafkaUri, PubSubUri, Uri, UriError, parse_uri

__all__ = [
    "ClientError",
    "PublishError",
    "Publisher",
    "ReceivedMessage",
    "Subscriber",
    "encode_payload",
    "open_publisher",
    "open_subscriber",
]


def _broker_uri(uri: str | Uri) -> KafkaUri | PubSubUri:
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    if not isinstance(parsed, (KafkaUri, PubSubUri)):
        raise UriError(f"{parsed.redacted()}: expected a kafka:// or pubsub:// URI")
    return parsed


def open_publisher(uri: str | Uri, **config: Any) -> Publisher:
    """A publisher for a Kafka topic or Pub/Sub topic; ``config`` goes to the client."""
    parsed = _broker_uri(uri)
    if isinstance(parsed, KafkaUri):
        from beamstream.io.clients.kafka import KafkaPublisher

        return KafkaPublisher(parsed, **config)
    from beamstream.io.clients.pubsub import PubSubPublisher

    return PubSubPublisher(parsed, **config)


def open_subscriber(
    uri: str | Uri,
    from_beginning: bool = False,
    group: str | None = None,
    **config: Any,
) -> Subscriber:
    """A subscriber for Kafka topics or a Pub/Sub subscription (or topic).

    ``group``: the Kafka consumer group whose offsets acks commit, or, for a
    Pub/Sub topic URI, the name of the subscription to create or reuse.
    """
    parsed = _broker_uri(uri)
    if isinstance(parsed, KafkaUri):
        from beamstream.io.clients.kafka import KafkaSubscriber

        start = None
        if isinstance(uri, str) and "start=" in uri.partition("?")[2]:
            start = parsed.start
        return KafkaSubscriber(parsed, from_beginning, group, start, **config)
    from beamstream.io.clients.pubsub import PubSubSubscriber

    return PubSubSubscriber(parsed, from_beginning, group, **config)
