"""One round trip per real service, proving the session fixtures work."""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import psycopg
import pymysql
import pytest
import sqlalchemy
from google.cloud import pubsub_v1
from google.pubsub_v1.types import ReceivedMessage
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.services.databases import mysql_connect_kwargs, postgres_connect_kwargs, sqlalchemy_url
from tests.services.kafka_broker import KafkaBroker
from tests.services.ports import unique_name
from tests.services.pubsub_emulator import PubSubEmulator

pytestmark = [pytest.mark.integration, pytest.mark.tansu_ok]

READ_TIMEOUT_S = 20.0
RECORDS = [
    (f"key-{i}".encode(), f"value-{i}".encode(), [("idx", str(i).encode())]) for i in range(3)
]


def _produce_records(bootstrap: str, topic: str) -> None:
    """Keyed records with headers, spread over both partitions explicitly."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i, (key, value, headers) in enumerate(RECORDS):
            producer.send(topic, key=key, value=value, headers=headers, partition=i % 2)
        producer.flush(timeout=10)
    finally:
        producer.close()


def test_kafka_roundtrip_kafka_python(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.new_topic("smoke", partitions=2)
    _produce_records(kafka_broker.bootstrap, topic)

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(partitions)  # subscribe()+group join takes ~23 s on Tansu
        consumer.seek_to_beginning(*partitions)
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(got) < len(RECORDS) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
    finally:
        consumer.close()

    assert sorted((r.key, r.value, list(r.headers)) for r in got) == sorted(RECORDS)
    assert {r.partition for r in got} == {0, 1}


def test_kafka_roundtrip_confluent(kafka_broker: KafkaBroker) -> None:
    """A second, independent client (librdkafka) must read the same records."""
    topic = kafka_broker.new_topic("smoke-ck", partitions=2)
    _produce_records(kafka_broker.bootstrap, topic)

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": unique_name("smoke"),  # required by the client; unused with assign()
            "enable.auto.commit": False,
        }
    )
    try:
        start = confluent_kafka.OFFSET_BEGINNING
        consumer.assign([confluent_kafka.TopicPartition(topic, p, start) for p in range(2)])
        got: list[tuple[object, object, object]] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(got) < len(RECORDS) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value(), list(msg.headers() or [])))
    finally:
        consumer.close()

    assert sorted(got) == sorted(RECORDS)


def test_pubsub_roundtrip(pubsub_emulator: PubSubEmulator) -> None:
    topic = pubsub_emulator.create_topic(unique_name("smoke"))
    subscription = pubsub_emulator.create_subscription(topic, unique_name("smoke-sub"))

    publisher = pubsub_v1.PublisherClient()
    try:
        futures = [publisher.publish(topic, f"msg-{i}".encode(), idx=str(i)) for i in range(3)]
        assert all(f.result(timeout=10) for f in futures)
    finally:
        publisher.stop()

    subscriber = pubsub_v1.SubscriberClient()
    try:
        received: list[ReceivedMessage] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(received) < 3 and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
            received.extend(response.received_messages)
        if received:
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received])
    finally:
        subscriber.close()

    got = sorted((m.message.data, dict(m.message.attributes)) for m in received)
    assert got == [(f"msg-{i}".encode(), {"idx": str(i)}) for i in range(3)]


def _table_name() -> str:
    return f"smoke_{uuid.uuid4().hex[:12]}"


def test_postgres_roundtrip(postgres_url: str) -> None:
    table = _table_name()
    with psycopg.connect(**postgres_connect_kwargs(postgres_url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL)")
        try:
            conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "beam"))
            row = conn.execute(f"SELECT id, name FROM {table}").fetchone()
        finally:
            conn.execute(f"DROP TABLE {table}")
    assert row == (1, "beam")


def test_mysql_roundtrip(mysql_url: str) -> None:
    table = _table_name()
    conn = pymysql.connect(**mysql_connect_kwargs(mysql_url), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL)")
            try:
                cur.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "beam"))
                cur.execute(f"SELECT id, name FROM {table}")
                row = cur.fetchone()
            finally:
                cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()
    assert row == (1, "beam")


@pytest.mark.parametrize("fixture_name", ["postgres_url", "mysql_url"])
def test_sqlalchemy_url_connects(fixture_name: str, request: pytest.FixtureRequest) -> None:
    """The fixtures' URLs name no driver; sqlalchemy_url() must pin an installed one."""
    engine = sqlalchemy.create_engine(sqlalchemy_url(request.getfixturevalue(fixture_name)))
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_kafka_cluster_id_never_starts_with_a_dash() -> None:
    """kafka-storage reads a leading ``-`` as an option; CI once drew such an id."""
    from tests.services import apache_kafka

    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 of 0b111110... is "-"
    draws = iter([dash_first, dash_first, uuid.UUID(int=1)])
    cluster_id = apache_kafka._cluster_id(lambda: next(draws))
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ"
    assert not apache_kafka._cluster_id().startswith("-")
