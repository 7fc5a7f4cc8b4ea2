"""What every broker client shares: the received message, the interfaces, errors.

Applications and our tools talk to Kafka and Pub/Sub through the same two
objects, so a tool written against one broker works against the other by
changing a URI.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from beamstream.errors import UserError


class ClientError(UserError, RuntimeError):
    """The broker cannot be used as asked (unreachable, no such topic); says why."""


class PublishError(ClientError):
    """One or more published messages were not delivered."""


def encode_key(key: bytes | str | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode("utf-8")


@dataclass
class ReceivedMessage:
    """One message as the subscriber delivered it, with a way to acknowledge it."""

    value: bytes
    key: bytes | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # Pub/Sub attributes / Kafka headers
    timestamp_ms: int | None = None  # publish (Pub/Sub) or record (Kafka) time
    source: str = ""  # topic or subscription
    partition: int = 0
    offset: int = -1  # Kafka offset; -1 for Pub/Sub
    message_id: str = ""  # Pub/Sub message id; "topic[partition]@offset" for Kafka
    ack_id: str = field(default="", repr=False)  # Pub/Sub: for extending the ack deadline
    _ack: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def ack(self) -> None:
        """Marks the message processed; the subscriber commits it (see ``commit``)."""
        if self._ack is not None:
            self._ack()
            self._ack = None

    @property
    def timestamp(self) -> datetime | None:
        if self.timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=timezone.utc)

    def text(self) -> str:
        return self.value.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The payload parsed as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.value)


class Publisher(ABC):
    """Publishes to one topic; ``flush`` raises if anything failed since the last flush."""

    target: str

    @abstractmethod
    def publish(
        self,
        value: bytes | str | dict | Any,
        key: bytes | str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None: ...

    @abstractmethod
    def flush(self, timeout: float | None = None) -> int:
        """Waits for outstanding messages; returns how many were delivered since last flush."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()


class Subscriber(ABC):
    """Receives from a topic or subscription; acks are committed in batches.

    ``ReceivedMessage.ack()`` only records the ack; the subscriber sends the
    recorded acks at the start of the next ``receive`` (so one round trip
    covers a whole batch), on ``commit()`` and on ``close()``.
    """

    source: str

    @abstractmethod
    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[ReceivedMessage]:
        """Up to ``max_messages``, waiting at most about ``timeout`` seconds for the first."""

    @abstractmethod
    def commit(self) -> None:
        """Sends the acks recorded so far."""

    @abstractmethod
    def close(self) -> None: ...

    def __iter__(self) -> Iterator[ReceivedMessage]:
        while True:
            yield from self.receive(500, 1.0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
