"""The plain clients: one suite, run against a real Kafka broker and the Pub/Sub emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from beamstream.io.clients import (
    ClientError,
    ReceivedMessage,
    Subscriber,
    open_publisher,
    open_subscriber,
)
from beamstream.io.uris import KAFKA_CLIENTS, UriError
from tests.services.ports import free_port, unique_name

pytestmark = pytest.mark.integration

N = 40


@dataclass
class Endpoint:
    """Where to publish, and how to open a subscriber that resumes where the last one acked."""

    publish_uri: str
    subscribe: Callable[[], Subscriber]
    redelivery_wait_s: float  # longer than the broker takes to redeliver what was not acked


def _kafka_uri(broker, topic: str, client: str) -> str:
    return f"kafka://{broker.bootstrap}/{topic}?client={client}"


@pytest.fixture(params=[*(f"kafka:{c}" for c in KAFKA_CLIENTS), "pubsub"])
def endpoint(request) -> Endpoint:
    if request.param.startswith("kafka:"):
        client = request.param.partition(":")[2]
        if client == "confluent":
            pytest.importorskip("confluent_kafka", reason="client=confluent: beamstream[confluent]")
        broker = request.getfixturevalue("kafka_broker")
        topic = broker.new_topic("clients", partitions=2)
        uri = _kafka_uri(broker, topic, client)
        group = unique_name("group")
        # A fresh group starts at the beginning; later ones resume from its commits.
        state = {"first": True}

        def subscribe() -> Subscriber:
            first, state["first"] = state["first"], False
            return open_subscriber(uri, from_beginning=first, group=group)

        return Endpoint(uri, subscribe, redelivery_wait_s=3.0)
    emulator = request.getfixturevalue("pubsub_emulator")
    topic = emulator.create_topic(unique_name("clients"))
    sub = emulator.create_subscription(topic, unique_name("clients-sub"), ack_deadline_seconds=10)
    return Endpoint(
        f"pubsub://{topic}",
        lambda: open_subscriber(f"pubsub://{sub}"),
        redelivery_wait_s=14.0,
    )


def _receive(sub: Subscriber, count: int, timeout_s: float) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got.extend(sub.receive(max_messages=count - len(got), timeout=1.0))
    return got


def test_publish_receive_ack_and_no_redelivery(endpoint: Endpoint) -> None:
    with open_publisher(endpoint.publish_uri) as pub:
        for i in range(N):
            pub.publish({"i": i}, key=f"k{i}", attributes={"i": str(i), "origin": "test"})
        assert pub.flush(timeout=30) == N
        # Published last, so acking the others cannot cover it (Kafka acks are cumulative).
        pub.publish(b"control", key="k-control")

    with endpoint.subscribe() as sub:
        got = _receive(sub, N + 1, 30)
        assert len(got) == N + 1
        by_value = {m.value: m for m in got}
        assert set(by_value) == {f'{{"i":{i}}}'.encode() for i in range(N)} | {b"control"}
        for i in range(N):
            m = by_value[f'{{"i":{i}}}'.encode()]
            assert m.key == f"k{i}".encode()
            assert m.attributes == {"i": str(i), "origin": "test"}
            assert m.timestamp_ms is not None and abs(m.timestamp_ms / 1000 - time.time()) < 120
            m.ack()
        assert by_value[b"control"].key == b"k-control"

    # Only the unacknowledged message comes back.
    with endpoint.subscribe() as sub:
        again = _receive(sub, 1, endpoint.redelivery_wait_s + 10)
        again += sub.receive(max_messages=N, timeout=1.0)
        assert [m.value for m in again] == [b"control"]
        again[0].ack()


def test_json_payload_and_text_helpers(endpoint: Endpoint) -> None:
    with open_publisher(endpoint.publish_uri) as pub:
        pub.publish("plain text")
    with endpoint.subscribe() as sub:
        [m] = _receive(sub, 1, 30)
        assert m.text() == "plain text"
        with pytest.raises(ValueError):
            m.json()
        m.ack()


def test_missing_kafka_topic_is_a_client_error(kafka_broker, kafka_client: str) -> None:
    with pytest.raises(ClientError, match="does not exist"):
        open_subscriber(_kafka_uri(kafka_broker, unique_name("nope"), kafka_client), topic_wait_s=1)


def test_kafka_uri_client_chooses_the_library(kafka_broker, kafka_client: str) -> None:
    """The tools and the gateway honour ``client=`` as pipeline sources and sinks do."""
    uri = _kafka_uri(kafka_broker, kafka_broker.new_topic("clients-lib"), kafka_client)
    module = {"kafka-python": "kafka_python", "confluent": "confluent"}[kafka_client]
    with open_publisher(uri) as pub, open_subscriber(uri, from_beginning=True) as sub:
        producer = pub._producer  # type: ignore[attr-defined]
        consumer = sub._consumer  # type: ignore[attr-defined]
        assert type(producer).__module__ == f"beamstream.io.kafka.{module}"
        assert type(consumer).__module__ == f"beamstream.io.kafka.{module}"
        pub.publish(b"one")
        assert pub.flush(timeout=30) == 1
        assert [m.value for m in _receive(sub, 1, 30)] == [b"one"]


def test_unreachable_kafka_is_a_client_error(kafka_client: str) -> None:
    port = free_port()  # nothing listens there
    uri = f"kafka://127.0.0.1:{port}/t?client={kafka_client}"
    with pytest.raises(ClientError, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
        open_publisher(uri, bootstrap_timeout_ms=2000, request_timeout_ms=2000)


def test_missing_subscription_is_a_client_error(pubsub_emulator) -> None:
    uri = f"pubsub://projects/{pubsub_emulator.project}/subscriptions/{unique_name('nope')}"
    with pytest.raises(ClientError, match="does not exist"):
        open_subscriber(uri)


def test_publishing_to_a_missing_pubsub_topic_fails_at_flush(pubsub_emulator) -> None:
    pub = open_publisher(f"pubsub://projects/{pubsub_emulator.project}/topics/{unique_name('no')}")
    try:
        pub.publish(b"x")
        with pytest.raises(ClientError, match="not delivered"):
            pub.flush(timeout=30)
    finally:
        pub.close()


def test_pubsub_topic_source_creates_a_temporary_subscription(pubsub_emulator) -> None:
    topic = pubsub_emulator.create_topic(unique_name("tmp-sub"))
    sub = open_subscriber(f"pubsub://{topic}")
    try:
        with open_publisher(f"pubsub://{topic}") as pub:
            pub.publish(b"after")
        [m] = _receive(sub, 1, 30)
        assert m.value == b"after"
        m.ack()
        created = sub.subscription  # type: ignore[attr-defined]
    finally:
        sub.close()
    names = [s for s in pubsub_emulator.publisher.list_topic_subscriptions(topic=topic)]
    assert created not in names


def test_file_uri_is_not_a_broker() -> None:
    with pytest.raises(UriError, match="kafka:// or pubsub://"):
        open_publisher("out/frames.jsonl")
