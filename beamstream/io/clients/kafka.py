"""Kafka behind the common client interface, on either client library.

The URI's ``client=`` chooses kafka-python (the default) or confluent-kafka
(``beamstream[confluent]``), as it does for pipeline sources and sinks: both
sit behind ``beamstream.io.kafka.client``, so the tools and the gateway get
the same library, settings mapping and error handling as the pipelines.

The subscriber assigns every partition explicitly instead of joining a
consumer group: group joins are slow on some brokers (~23 s on the test
broker) and a tool or test wants all partitions anyway. A ``group`` is still
used to commit (and resume from) offsets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
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
from beamstream.io.kafka.client import (
    BEGINNING,
    END,
    BrokerUnavailable,
    Pair,
    open_client_consumer,
    open_producer,
)
from beamstream.io.outage import Outage
from beamstream.io.uris import KafkaUri

CONNECT_TIMEOUT_S = 15.0

_PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "retries": 5,
    "client_id": "beamstream",
}
_CONSUMER_SETTINGS: dict[str, Any] = {
    "enable_auto_commit": False,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_max_wait_ms": 100,
    "client_id": "beamstream",
}


def _servers(uri: KafkaUri) -> str:
    return ",".join(uri.bootstrap_servers)


def _unreachable(uri: KafkaUri, exc: BaseException) -> ClientError:
    return ClientError(f"cannot reach Kafka at {_servers(uri)}: {exc}")


def _or(offset: int | None, default: int) -> int:
    return default if offset is None else offset


class KafkaPublisher(Publisher):
    """Sends to one topic; delivery failures surface at ``flush``."""

    def __init__(self, uri: KafkaUri, **config: Any):
        self.target = uri.redacted()
        self._topic = uri.topic
        try:
            self._producer = open_producer(
                uri.client, uri.bootstrap_servers, _PRODUCER_SETTINGS, config
            )
        except BrokerUnavailable as exc:
            raise _unreachable(uri, exc) from exc
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._sent = 0

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def publish(self, value, key=None, attributes=None) -> None:
        headers = [(str(k), str(v).encode("utf-8")) for k, v in (attributes or {}).items()]
        self._producer.send(
            self._topic, encode_payload(value), encode_key(key), headers, self._failed
        )
        with self._lock:
            self._sent += 1

    def flush(self, timeout: float | None = None) -> int:
        try:
            self._producer.flush(timeout)
        except BrokerUnavailable as exc:
            raise PublishError(f"{self.target}: not all messages sent within {timeout}s") from exc
        with self._lock:
            errors, self._errors = self._errors, []
            sent, self._sent = self._sent, 0
        if errors:
            first = errors[0]
            raise PublishError(
                f"{len(errors)} message(s) not delivered to {self.target}: "
                f"{type(first).__name__}: {first}"
            ) from first
        return sent

    def close(self) -> None:
        self._producer.close()


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
        self.source = uri.redacted()
        self._group = group or uri.group
        self._topic_wait_s = float(config.pop("topic_wait_s", CONNECT_TIMEOUT_S))
        try:
            self._consumer = open_client_consumer(
                uri.client, uri.bootstrap_servers, self._group, _CONSUMER_SETTINGS, config
            )
        except BrokerUnavailable as exc:
            raise _unreachable(uri, exc) from exc
        try:
            pairs = [(topic, p) for topic in uri.topics for p in self._partitions(topic, uri)]
            first = start or ("earliest" if from_beginning else None)
            self._consumer.assign(self._starts(pairs, first))
        except BrokerUnavailable as exc:
            self._consumer.close()
            raise _unreachable(uri, exc) from exc
        except BaseException:
            self._consumer.close()
            raise
        self._lock = threading.Lock()
        self._acked: dict[Pair, int] = {}
        self._outage = Outage(f"Kafka at {_servers(uri)}")

    def _partitions(self, topic: str, uri: KafkaUri) -> list[int]:
        deadline = time.monotonic() + self._topic_wait_s
        parts = self._consumer.partitions(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = self._consumer.partitions(topic)
        if not parts:
            raise ClientError(f"Kafka topic {topic!r} does not exist on {_servers(uri)}")
        return parts

    def _starts(self, pairs: Sequence[Pair], start: str | None) -> dict[Pair, int]:
        consumer = self._consumer
        if start == "earliest":
            return {pair: BEGINNING for pair in pairs}
        if start is not None and start.isdigit():
            found = consumer.offsets_for_times(pairs, int(start))
            ends = consumer.end_offsets(pairs)
            return {pair: _or(found[pair], ends[pair]) for pair in pairs}
        if self._group and start in (None, "committed"):
            committed = consumer.committed(pairs)
            return {pair: END if c is None else c[0] for pair, c in committed.items()}
        return {pair: END for pair in pairs}

    def _acker(self, pair: Pair, offset: int):
        def ack() -> None:
            with self._lock:
                if offset + 1 > self._acked.get(pair, -1):
                    self._acked[pair] = offset + 1

        return ack

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[ReceivedMessage]:
        self.commit()
        try:
            polled = self._consumer.poll(timeout, max_messages)
        except BrokerUnavailable as exc:
            self._outage.failed(exc)  # the client reconnects by itself; the caller polls again
            time.sleep(min(timeout, 1.0))
            return []
        self._outage.succeeded()
        out: list[ReceivedMessage] = []
        for (topic, partition), records in polled.items():
            for value, offset, timestamp_ms, key, headers in zip(
                records.values,
                records.offsets,
                records.timestamps_ms,
                records.keys,
                records.headers,
                strict=True,
            ):
                out.append(
                    ReceivedMessage(
                        value=value,
                        key=key,
                        attributes={
                            k: (v or b"").decode("utf-8", errors="replace") for k, v in headers
                        },
                        timestamp_ms=timestamp_ms,
                        source=topic,
                        partition=partition,
                        offset=offset,
                        message_id=f"{topic}[{partition}]@{offset}",
                        _ack=self._acker((topic, partition), offset),
                    )
                )
        return out

    def commit(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, {}
        if acked and self._group:
            self._consumer.commit({pair: (offset, "") for pair, offset in acked.items()})

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._consumer.close()
