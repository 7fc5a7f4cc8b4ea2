"""The Kafka source's readers across read bundles, driven as Beam's splittable DoFn does.

A read checkpoint resumed by another instance of the reading DoFn keeps its consumer.

Beam parks a self-checkpointed reader in the cache of the DoFn instance that
read it; Prism often runs the next bundle on another instance, which used to
open a second consumer while the first stayed open, prefetching, for a minute
(native memory grew by about 4 MB per read bundle). These tests drive the
source's readers as Beam's splittable DoFn does, with the checkpoint mark
through its coder as a runner ships it.
"""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaProducer

from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka import read_spec
from beamstream.io.kafka import reader as reader_module
from beamstream.io.kafka.source import KafkaPartitionSource
from tests.support.kafka_clients import with_client

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, start: int, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(start, start + n):
        producer.send(topic, json.dumps({"timestamp": 1_700_000_000 + i}).encode(), partition=i % 2)
    producer.flush()
    producer.close()


def _drain(reader, want: int, started: bool) -> list[tuple[int, int]]:
    """(partition, offset) of each record the reader emits, until ``want`` of them."""
    seen: list[tuple[int, int]] = []
    has = reader.advance() if started else reader.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if has:
            batch = reader.get_current()
            seen.extend((batch.partition, o) for o in batch.offsets)
        if len(seen) >= want:
            break
        has = reader.advance()
    return seen


@pytest.fixture
def opened(monkeypatch) -> list[object]:
    """Every consumer the readers open (the real function, counted)."""
    consumers: list[object] = []
    real = reader_module.open_consumer

    def counting(spec):
        consumer = real(spec)
        consumers.append(consumer)
        return consumer

    monkeypatch.setattr(reader_module, "open_consumer", counting)
    return consumers


def _source(kafka_broker, kafka_client, topic: str) -> KafkaPartitionSource:
    spec = read_spec(
        with_client(f"kafka://{kafka_broker.bootstrap}/{topic}", kafka_client),
        EventTimePolicy(field="timestamp"),
        max_batch=40,
    )
    chained = KafkaPartitionSource(spec, batched=True, split_partitions=False, chain="handoff")
    [source] = chained.split(1)
    return source


def test_another_instance_resuming_a_checkpoint_takes_over_the_parked_consumer(
    kafka_broker, kafka_client, opened
):
    topic = kafka_broker.new_topic("handoff", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 0, 200)
    source = _source(kafka_broker, kafka_client, topic)
    coder = source.get_checkpoint_mark_coder()

    first = source.create_reader(None, None)
    seen = _drain(first, 80, started=False)
    mark = coder.decode(coder.encode(first.get_checkpoint_mark()))
    # `first` stays parked in its instance's cache; the bundle runs on another instance
    second = source.create_reader(None, mark)
    seen += _drain(second, 200 - len(seen), started=True)
    assert len(opened) == 1, "the resumed checkpoint opened a second consumer"
    first.close()  # the first instance's cache evicts it: the consumer in use stays open
    _produce(kafka_broker.bootstrap, topic, 200, 60)
    seen += _drain(second, 60, started=True)
    second.close()
    assert sorted(seen) == sorted({(i % 2, i // 2) for i in range(260)}), "lost or repeated"


def test_a_taken_over_reader_resumed_again_reads_again_from_its_checkpoint(
    kafka_broker, kafka_client, opened
):
    """A retried bundle resumes the same checkpoint from the first cache: at least once."""
    topic = kafka_broker.new_topic("handoff-retry", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 0, 100)
    source = _source(kafka_broker, kafka_client, topic)
    coder = source.get_checkpoint_mark_coder()

    first = source.create_reader(None, None)
    before = _drain(first, 40, started=False)
    mark = coder.decode(coder.encode(first.get_checkpoint_mark()))
    second = source.create_reader(None, mark)
    after = _drain(second, 100 - len(before), started=True)
    second.close()  # that bundle failed; the runner retries the checkpoint on the first
    again = _drain(first, len(after), started=True)
    first.close()
    assert sorted(again) == sorted(after)
    assert not set(again) & set(before)
    assert len(opened) == 2  # the retry rebuilt a consumer from the checkpoint


def _emit_bundles(reader, want: int, started: bool) -> int:
    """Records emitted until ``want``, ending a bundle (a checkpoint) whenever it has no record."""
    emitted = 0
    has = reader.advance() if started else reader.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if has:
            emitted += len(reader.get_current().offsets)
        else:
            reader.get_checkpoint_mark()
        if emitted >= want:
            return emitted
        has = reader.advance()
    return emitted


def test_a_caught_up_reader_ends_its_bundle_after_live_bundle_s(kafka_broker, kafka_client):
    """Live records move on when the short bundle ends, not at the runner's read limit."""
    topic = kafka_broker.new_topic("live-bundle", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 0, 30)  # fewer than max_batch: caught up
    source = _source(kafka_broker, kafka_client, topic)
    source.live_bundle_s = 0.0
    reader = source.create_reader(None, None)
    assert _emit_bundles(reader, 30, started=False) == 30
    _produce(kafka_broker.bootstrap, topic, 30, 10)
    time.sleep(1.0)  # fetched by now: a reader reading on would emit them in this bundle
    assert reader.advance() is False, "a caught-up reader read on instead of ending its bundle"
    reader.get_checkpoint_mark()  # the runner ends the bundle; the next one reads on
    assert _emit_bundles(reader, 10, started=True) == 10
    reader.close()


def test_a_reader_with_a_backlog_reads_on_past_live_bundle_s(kafka_broker, kafka_client):
    """Full polls mean a backlog: it is read in the runner's long bundles."""
    topic = kafka_broker.new_topic("backlog-bundle", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 0, 400)  # ten full polls of max_batch 40
    source = _source(kafka_broker, kafka_client, topic)
    source.live_bundle_s = 0.0
    reader = source.create_reader(None, None)
    emitted, ended_early = 0, False
    has = reader.start()
    deadline = time.monotonic() + 30
    while emitted < 360 and time.monotonic() < deadline:
        if has:
            emitted += len(reader.get_current().offsets)
        ended_early = ended_early or (emitted > 0 and not has)
        has = reader.advance()
    reader.close()
    assert emitted >= 360 and not ended_early
