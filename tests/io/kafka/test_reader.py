"""KafkaBatchReader against the real broker: bounded ends and the resume watermark.

Both depend on Kafka doing what its protocol says (exact listed end offsets,
commit metadata kept with the offset), which the Tansu fallback does not.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer

from beamstream.io.kafka.reader import KafkaBatchReader
from beamstream.io.kafka.spec import KafkaReadSpec

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, count: int, timestamp_ms: int | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(count):
        producer.send(topic, b'{"i": %d}' % i, partition=0, timestamp_ms=timestamp_ms)
    producer.flush()
    producer.close()


def _read_all(reader: KafkaBatchReader, timeout_s: float = 30) -> list[int]:
    offsets: list[int] = []
    deadline = time.monotonic() + timeout_s
    while not reader.done and time.monotonic() < deadline:
        for batch in reader.read():
            offsets.extend(batch.offsets)
    assert reader.done, "bounded read did not finish"
    return offsets


def test_a_bounded_read_ends_at_the_listed_end_even_for_old_timestamped_appends(
    kafka_broker, kafka_client
):
    """Records appended after the start are the next read's, whatever their timestamps."""
    topic = kafka_broker.new_topic("bounded-end")
    _produce(kafka_broker.bootstrap, topic, 500)
    spec = KafkaReadSpec(
        bootstrap_servers=(kafka_broker.bootstrap,),
        topics=(topic,),
        stop="end",
        client=kafka_client,
    )
    reader = KafkaBatchReader(spec)  # lists the end offsets now
    try:
        # A backfill producer appends records stamped a year ago, after the start.
        year_ago_ms = int(time.time() * 1000) - 31_000_000_000
        _produce(kafka_broker.bootstrap, topic, 200, timestamp_ms=year_ago_ms)
        assert _read_all(reader) == list(range(500))
    finally:
        reader.close()


def test_the_resume_watermark_travels_in_the_commit_metadata(kafka_broker, kafka_client):
    topic = kafka_broker.new_topic("resume-wm", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 10)
    spec = KafkaReadSpec(
        bootstrap_servers=(kafka_broker.bootstrap,),
        topics=(topic,),
        group="resume-wm",
        start="committed",
    )
    first = KafkaBatchReader(spec)
    try:
        first.commit({(topic, 0): 7}, watermark_us=1_700_000_000_000_000)
    finally:
        first.close()
    again = KafkaBatchReader(spec)
    try:
        assert again.positions()[(topic, 0)] == 7
        assert again.watermarks.current == 1_700_000_000_000_000
    finally:
        again.close()


def _spec(kafka_broker, topic: str, client: str, **fields) -> KafkaReadSpec:
    return KafkaReadSpec(
        bootstrap_servers=(kafka_broker.bootstrap,), topics=(topic,), client=client, **fields
    )


def _offsets_now(reader: KafkaBatchReader, polls: int = 10) -> list[int]:
    offsets: list[int] = []
    for _ in range(polls):
        for batch in reader.read():
            offsets.extend(batch.offsets)
    return offsets


def test_start_modes_pick_the_same_first_records(kafka_broker, kafka_client):
    """earliest, latest, an epoch-ms time and a group's commit, on each client."""
    topic = kafka_broker.new_topic("starts")
    _produce(kafka_broker.bootstrap, topic, 10, timestamp_ms=1_000_000)
    _produce(kafka_broker.bootstrap, topic, 10, timestamp_ms=2_000_000)
    group = f"starts-{kafka_client}"
    positions = {}
    for start in ("earliest", "latest", "1500000", "committed"):
        reader = KafkaBatchReader(
            _spec(kafka_broker, topic, kafka_client, start=start, group=group)
        )
        try:
            positions[start] = reader.positions()[(topic, 0)]
            if start == "earliest":
                reader.commit({(topic, 0): 13})
        finally:
            reader.close()
    assert positions == {"earliest": 0, "latest": 20, "1500000": 10, "committed": 13}
    # latest means "as of opening": what is produced afterwards is read
    reader = KafkaBatchReader(_spec(kafka_broker, topic, kafka_client, start="latest"))
    try:
        _produce(kafka_broker.bootstrap, topic, 3)
        assert _offsets_now(reader) == [20, 21, 22]
    finally:
        reader.close()


def test_max_records_stops_the_read_exactly(kafka_broker, kafka_client):
    topic = kafka_broker.new_topic("max-records")
    _produce(kafka_broker.bootstrap, topic, 50)
    reader = KafkaBatchReader(_spec(kafka_broker, topic, kafka_client, max_records=17))
    try:
        assert _read_all(reader) == list(range(17))
    finally:
        reader.close()
