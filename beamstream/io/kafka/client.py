"""The Kafka client interface the reader, the committers and the sink are written against.

Two libraries implement it: kafka-python (the default; pure Python) and
confluent-kafka (librdkafka; ``beamstream[confluent]``, about twice the
consume rate here), chosen per URI with ``client=``. The interface is the
few operations a reader of assigned partitions needs, in terms of
``(topic, partition)`` pairs and plain offsets, so that the read loop, its
watermarks and its bounded ends are one piece of code whichever library runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from beamstream.errors import UserError
from beamstream.io.uris import KAFKA_CLIENTS as CLIENTS

Pair = tuple[str, int]

KAFKA_PYTHON, CONFLUENT = CLIENTS

# Logical start offsets of ``assign`` (Kafka's ListOffsets codes, librdkafka's too).
BEGINNING, END = -2, -1


class BrokerUnavailable(Exception):
    """A retriable failure (broker unreachable, request timed out): try again later."""


class KafkaClientError(UserError, RuntimeError):
    """The client cannot be used as configured (library missing, bad setting)."""


@dataclass
class Records:
    """One partition's records of a poll, column by column, in offset order."""

    values: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps_ms: list[int | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    headers: list[tuple[tuple[str, bytes], ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def head(self, count: int) -> Records:
        """The first ``count`` records."""
        return Records(
            self.values[:count],
            self.offsets[:count],
            self.timestamps_ms[:count],
            self.keys[:count],
            self.headers[:count],
        )


CommitDone = Callable[[Exception | None], None]


class PartitionConsumer(Protocol):
    """A consumer of explicitly assigned partitions (no group membership)."""

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; empty when it does not exist."""

    def assign(self, starts: Mapping[Pair, int]) -> None:
        """Reads these partitions from these offsets (or ``BEGINNING`` / ``END``)."""

    def committed(self, pairs: Sequence[Pair]) -> dict[Pair, tuple[int, str] | None]:
        """The group's committed (offset, metadata) per partition."""

    def beginning_offsets(self, pairs: Sequence[Pair]) -> dict[Pair, int]: ...

    def end_offsets(self, pairs: Sequence[Pair], timeout_s: float = 30.0) -> dict[Pair, int]:
        """The offset after each partition's last record; ``BrokerUnavailable`` if unreachable."""

    def offsets_for_times(self, pairs: Sequence[Pair], timestamp_ms: int) -> dict[Pair, int | None]:
        """The first offset at or after the time, None where there is none."""

    def poll(self, timeout_s: float, max_records: int) -> dict[Pair, Records]:
        """Records that arrived, per partition; ``BrokerUnavailable`` on a retriable failure."""

    def position(self, pair: Pair) -> int:
        """The next offset this consumer reads from the partition."""

    def highwater(self, pair: Pair) -> int | None:
        """The partition's end as of the last fetch response, None before one."""

    def pause(self, pair: Pair) -> None: ...

    def commit(
        self,
        offsets: Mapping[Pair, tuple[int, str]],
        asynchronous: bool = False,
        on_done: CommitDone | None = None,
    ) -> None:
        """Commits (next offset, metadata) per partition to the group."""

    def close(self) -> None:
        """Closes without committing."""


class MessageProducer(Protocol):
    """A producer whose failed deliveries are reported to ``on_error``."""

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        on_error: Callable[[BaseException], None],
    ) -> None: ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Waits until everything sent was delivered or failed."""

    def close(self) -> None: ...


def check_client(name: str) -> str:
    if name not in CLIENTS:
        raise KafkaClientError(f"client={name!r}; use {' or '.join(CLIENTS)}")
    return name


def open_client_consumer(
    client: str,
    servers: Sequence[str],
    group: str | None,
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
) -> PartitionConsumer:
    """A connected consumer of ``client``; ``KafkaClientError``/``BrokerUnavailable`` if not.

    ``settings`` are the reader's tuned defaults and ``config`` the user's
    ``--kafka_config``, both in kafka-python's names (the user's win).
    """
    if check_client(client) == CONFLUENT:
        from beamstream.io.kafka.confluent import ConfluentConsumer

        return ConfluentConsumer(servers, group, settings, config)
    from beamstream.io.kafka.kafka_python import KafkaPythonConsumer

    return KafkaPythonConsumer(servers, group, settings, config)


def open_producer(
    client: str,
    servers: Sequence[str],
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
) -> MessageProducer:
    """A producer of ``client``, settings in kafka-python's names (``config`` wins)."""
    if check_client(client) == CONFLUENT:
        from beamstream.io.kafka.confluent import ConfluentProducer

        return ConfluentProducer(servers, settings, config)
    from beamstream.io.kafka.kafka_python import KafkaPythonProducer

    return KafkaPythonProducer(servers, settings, config)
