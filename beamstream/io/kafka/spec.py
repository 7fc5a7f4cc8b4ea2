"""What a Kafka read is (``KafkaReadSpec``) and how its consumer is opened.

The spec is picklable: it travels to runner workers and to the local feed
process, where ``open_consumer`` opens the chosen client library's consumer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from beamstream.errors import UserError
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka.client import (
    KAFKA_PYTHON,
    BrokerUnavailable,
    PartitionConsumer,
    open_client_consumer,
)


class KafkaReadError(UserError, RuntimeError):
    """The read cannot proceed (no broker, no topic); the message says why."""


@dataclass(frozen=True)
class KafkaReadSpec:
    """Everything a reader needs, picklable for workers and the feed process."""

    bootstrap_servers: tuple[str, ...]
    topics: tuple[str, ...]
    group: str | None = None
    start: str = "earliest"
    stop: str = "never"
    max_records: int | None = None
    max_read_time: float | None = None
    commit: str = "finalize"
    event_time: EventTimePolicy = EventTimePolicy()
    consumer_config: dict[str, Any] = field(default_factory=dict)
    max_batch: int = 5000
    connect_timeout_s: float = 10.0
    # Set: commit only once the whole run succeeded (runners that keep
    # intermediate results in memory, where a finished bundle is not durable),
    # under this key, unique per read, so two runs in one process (tests,
    # notebooks, an embedding program) never commit or discard each other's.
    deferral_key: str | None = None
    # Streaming commits wait until records' windows are final: the largest
    # window the pipeline uses and its allowed lateness (0, 0 = per record).
    # False leaves batches without event times and the watermark unmoved: for
    # batch runs of the batched shape, where nothing uses a source watermark
    # and the consuming transform reads each record's time itself, so payloads
    # are not parsed twice (about a fifth of the read's cost, bench/frames.py).
    stamp_event_times: bool = True
    # True holds the source watermark at its minimum until the read has
    # ended: batch semantics (every window fires once, at the end) on runners
    # that follow a bounded read's watermark as it goes (Prism).
    hold_watermark: bool = False
    client: str = KAFKA_PYTHON  # or CONFLUENT: librdkafka (io/kafka/client.py)

    @property
    def servers_text(self) -> str:
        return ",".join(self.bootstrap_servers)


def consumer_settings(spec: KafkaReadSpec) -> dict[str, Any]:
    """Consumer settings tuned for batch polling, in kafka-python's names."""
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": spec.max_batch,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
        "fetch_max_wait_ms": 200,
        "request_timeout_ms": 30_000,
        "bootstrap_timeout_ms": int(spec.connect_timeout_s * 1000),
        "client_id": "beamstream",
    }


def list_partitions(consumer: PartitionConsumer, spec: KafkaReadSpec) -> list[tuple[str, int]]:
    """(topic, partition) pairs of every topic; a missing topic is an error."""
    # A topic that is being created may take a moment to appear in metadata.
    deadline = time.monotonic() + min(spec.connect_timeout_s, 3.0)
    result: list[tuple[str, int]] = []
    for topic in spec.topics:
        parts = consumer.partitions(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions(topic)
        if not parts:
            raise KafkaReadError(f"topic {topic!r} does not exist on {spec.servers_text}")
        result.extend((topic, p) for p in parts)
    return result


def open_consumer(spec: KafkaReadSpec) -> PartitionConsumer:
    """A connected consumer of the spec's client, or KafkaReadError naming the servers."""
    try:
        return open_client_consumer(
            spec.client,
            spec.bootstrap_servers,
            spec.group,
            consumer_settings(spec),
            spec.consumer_config,
        )
    except BrokerUnavailable as exc:
        raise KafkaReadError(f"cannot reach Kafka at {spec.servers_text}: {exc}") from exc
