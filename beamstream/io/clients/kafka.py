"""Kafka behind the common client interface (kafka-python).

The subscriber assigns every partition explicitly instead of joining a
consumer group: group joins are slow on some brokers (~23 s on the test
broker) and a tool or test wants all partitions anyway. A ``group`` is still
used to commit (and resume from) offsets.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from beamstream.io.clients.base import (
    ClientError,
    Publisher,
    PublishError,
    ReceivedMessage,
    Subscriber,
    encode_key,
)
from beamstream.io.elements import encode_payload
from beamstream.io.uris import KafkaUri

CONNECT_TIMEOUT_S = 15.0


def _servers(uri: KafkaUri) -> str:
    return ",".join(uri.bootstrap_servers)


class KafkaPublisher(Publisher):
    """Sends to one topic; delivery failures surface at ``flush``."""

    def __init__(self, uri: KafkaUri, **config: Any):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.target = uri.redacted()
        self._topic = uri.topic
        settings: dict[str, Any] = {
            "bootstrap_servers": list(uri.bootstrap_servers),
            "acks": "all",
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "retries": 5,
            "client_id": "beamstream",
        }
        settings.update(config)
        try:
            self._producer = KafkaProducer(**settings)
        except KafkaError as exc:
            raise ClientError(
                f"cannot reach Kafka at {_servers(uri)}: {type(exc).__name__}: {exc}"
            ) from exc
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._delivered = 0

    def _ok(self, _metadata) -> None:
        with self._lock:
            self._delivered += 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def publish(self, value, key=None, attributes=None) -> None:
        headers = [(str(k), str(v).encode("utf-8")) for k, v in (attributes or {}).items()]
        future = self._producer.send(
            self._topic, value=encode_payload(value), key=encode_key(key), headers=headers
        )
        future.add_callback(self._ok)
        future.add_errback(self._failed)

    def flush(self, timeout: float | None = None) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError as exc:
            raise PublishError(f"{self.target}: not all messages sent within {timeout}s") from exc
        with self._lock:
            errors, self._errors = self._errors, []
            delivered, self._delivered = self._delivered, 0
        if errors:
            first = errors[0]
            raise PublishError(
                f"{len(errors)} message(s) not delivered to {self.target}: "
                f"{type(first).__name__}: {first}"
            ) from first
        return delivered

    def close(self) -> None:
        self._producer.close(timeout=10)


class KafkaSubscriber(Subscriber):
    """Reads every partition of the URI's topics; acks commit offsets to ``group``.

    Start: ``from_beginning`` → earliest; otherwise the group's committed
    offsets when a group is given (latest where it has none, so a new group
    sees only new messages), else latest. An explicit
    ``start=`` in the URI wins. Acks are cumulative per partition, as Kafka
    offsets are: acking offset 10 commits everything before it too.
    ``topic_wait_s`` (config): how long a missing topic is waited for.
    """

    def __init__(
        self,
        uri: KafkaUri,
        from_beginning: bool = False,
        group: str | None = None,
        start: str | None = None,
        **config: Any,
    ):
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        self.source = uri.redacted()
        self._group = group or uri.group
        self._topic_wait_s = float(config.pop("topic_wait_s", CONNECT_TIMEOUT_S))
        settings: dict[str, Any] = {
            "bootstrap_servers": list(uri.bootstrap_servers),
            "group_id": self._group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest" if from_beginning else "latest",
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            "fetch_max_wait_ms": 100,
            "client_id": "beamstream",
        }
        settings.update(config)
        try:
            self._consumer = KafkaConsumer(**settings)
        except KafkaError as exc:
            raise ClientError(
                f"cannot reach Kafka at {_servers(uri)}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            self._tps = [
                TopicPartition(topic, p)
                for topic in uri.topics
                for p in self._partitions(topic, uri)
            ]
            self._consumer.assign(self._tps)
            self._seek(start or ("earliest" if from_beginning else None))
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        self._lock = threading.Lock()
        self._acked: dict[Any, int] = {}

    def _partitions(self, topic: str, uri: KafkaUri) -> list[int]:
        deadline = time.monotonic() + self._topic_wait_s
        parts = self._consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = self._consumer.partitions_for_topic(topic)
        if not parts:
            raise ClientError(f"Kafka topic {topic!r} does not exist on {_servers(uri)}")
        return sorted(parts)

    def _seek(self, start: str | None) -> None:
        consumer, tps = self._consumer, self._tps
        if start == "earliest":
            consumer.seek_to_beginning(*tps)
        elif start is not None and start.isdigit():
            found = consumer.offsets_for_times({tp: int(start) for tp in tps})
            ends = consumer.end_offsets(tps)
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        elif self._group and start in (None, "committed"):
            for tp in tps:
                committed = consumer.committed(tp)
                if committed is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, committed)
        else:
            consumer.seek_to_end(*tps)
        for tp in tps:  # resolve lazy seeks now, so "latest" means "as of opening"
            consumer.position(tp)

    def _acker(self, tp, offset: int):
        def ack() -> None:
            with self._lock:
                if offset + 1 > self._acked.get(tp, -1):
                    self._acked[tp] = offset + 1

        return ack

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[ReceivedMessage]:
        self.commit()
        polled = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_messages)
        out: list[ReceivedMessage] = []
        for tp, records in polled.items():
            for r in records:
                out.append(
                    ReceivedMessage(
                        value=r.value if r.value is not None else b"",
                        key=r.key,
                        attributes={
                            k: (v or b"").decode("utf-8", errors="replace")
                            for k, v in (r.headers or ())
                        },
                        timestamp_ms=r.timestamp,
                        source=tp.topic,
                        partition=tp.partition,
                        offset=r.offset,
                        message_id=f"{tp.topic}[{tp.partition}]@{r.offset}",
                        _ack=self._acker(tp, r.offset),
                    )
                )
        return out

    def commit(self) -> None:
        if not self._group:
            with self._lock:
                self._acked.clear()
            return
        from kafka import OffsetAndMetadata

        with self._lock:
            acked, self._acked = self._acked, {}
        if acked:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in acked.items()})

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._consumer.close(autocommit=False)
