"""Benchmark plumbing: a throwaway broker, fast fixture production, the raw drain reference."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition


@contextlib.contextmanager
def broker() -> Iterator:
    """The tests' broker on a free port: Apache Kafka when installed, else Tansu."""
    from tests.services.kafka_broker import start_broker

    with tempfile.TemporaryDirectory() as tmp:
        instance = start_broker(Path(tmp))
        print(f"broker: {instance.kind} at {instance.bootstrap}", flush=True)
        try:
            yield instance
        finally:
            instance.close()


def produce(bootstrap: str, topic: str, lines: Iterable[str], partitions: int) -> int:
    """Produces lines round-robin over partitions; confluent-kafka when present (faster)."""
    started = time.monotonic()
    n = 0
    try:
        from confluent_kafka import Producer
    except ImportError:
        Producer = None
    if Producer is not None:
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 500000,
            }
        )
        for line in lines:
            while True:
                try:
                    producer.produce(topic, line.encode(), partition=n % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
            if n % 10000 == 0:
                producer.poll(0)
        producer.flush(60)
    else:
        from kafka import KafkaProducer

        kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
        for line in lines:
            kp.send(topic, line.encode(), partition=n % partitions)
            n += 1
        kp.flush()
        kp.close()
    print(f"  produced {n:,} records in {time.monotonic() - started:.1f} s")
    return n


def available_clients() -> list[str]:
    """The Kafka client libraries installed here: kafka-python, and confluent when present."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return ["kafka-python"]
    return ["kafka-python", "confluent"]


def raw_drain(bootstrap: str, topic: str, expected: int, client: str = "kafka-python") -> float:
    """The client's own assign + poll, no processing: records/s from connect to last record."""
    if client == "confluent":
        return _raw_confluent_drain(bootstrap, topic, expected)
    started = time.monotonic()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    n = 0
    while n < expected:
        for records in consumer.poll(timeout_ms=500).values():
            n += len(records)
    consumer.close()
    return n / (time.monotonic() - started)


def _raw_confluent_drain(bootstrap: str, topic: str, expected: int) -> float:
    """confluent-kafka assign + consume (batches of 20,000), touching each value once."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as ConfluentPartition

    started = time.monotonic()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-drain", "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(topic, timeout=10)
    parts = sorted(metadata.topics[topic].partitions)
    consumer.assign([ConfluentPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    n = 0
    while n < expected:
        for message in consumer.consume(20_000, 0.5):
            if message.error() is None:
                message.value()
                n += 1
    consumer.close()
    return n / (time.monotonic() - started)
