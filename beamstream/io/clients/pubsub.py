"""Google Cloud Pub/Sub behind the common client interface (google-cloud-pubsub).

Works against real Pub/Sub and against the emulator (``PUBSUB_EMULATOR_HOST``).
The subscriber uses synchronous pull (``max_messages`` per request), which is
what batch-minded tools and the local pipeline source want, rather than the
streaming-pull callback API.

A topic URI as a subscriber source creates a subscription, because Pub/Sub
delivers only to subscriptions: with ``group=NAME`` it is
``projects/P/subscriptions/NAME`` (created if missing, kept afterwards, so a
later subscriber with the same group resumes); without a group it is a
temporary ``<topic>-beamstream-<random>`` subscription deleted on ``close()``.
Either way it receives only messages published after it was created.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from beamstream.io.clients.base import (
    ClientError,
    Publisher,
    PublishError,
    ReceivedMessage,
    Subscriber,
)
from beamstream.io.elements import encode_payload
from beamstream.io.uris import PubSubUri

ACK_CHUNK = 1000  # ack ids per acknowledge request (the API caps a request's size)


def _api_error(what: str, exc: Exception) -> ClientError:
    from google.api_core import exceptions

    if isinstance(exc, exceptions.NotFound):
        return ClientError(f"{what} does not exist")
    if isinstance(exc, exceptions.PermissionDenied):
        return ClientError(f"{what}: permission denied ({exc.message})")
    return ClientError(f"{what}: {type(exc).__name__}: {exc}")


class PubSubPublisher(Publisher):
    """Publishes to a topic; a message's key becomes its ordering key.

    Config: ``max_messages`` / ``max_bytes`` / ``max_latency`` (client-side
    batching) and ``ordering`` (default True: keyed messages are delivered in
    order per key; unkeyed messages are unaffected).
    """

    def __init__(self, uri: PubSubUri, **config: Any):
        from google.cloud.pubsub_v1 import PublisherClient, types

        if uri.is_subscription:
            raise ClientError(
                f"{uri.redacted()}: publish to a topic (pubsub://projects/P/topics/T), "
                "not a subscription"
            )
        self.target = uri.redacted()
        self._topic = uri.path
        batch = types.BatchSettings(
            max_messages=int(config.pop("max_messages", 1000)),
            max_bytes=int(config.pop("max_bytes", 4 * 1024 * 1024)),
            max_latency=float(config.pop("max_latency", 0.02)),
        )
        options = types.PublisherOptions(enable_message_ordering=bool(config.pop("ordering", True)))
        if config:
            raise ClientError(f"unknown Pub/Sub publisher setting(s): {', '.join(sorted(config))}")
        self._client = PublisherClient(batch_settings=batch, publisher_options=options)
        self._cond = threading.Condition()
        self._outstanding = 0
        self._delivered = 0
        self._errors: list[BaseException] = []

    def _done(self, future) -> None:
        exc = future.exception()
        with self._cond:
            self._outstanding -= 1
            if exc is None:
                self._delivered += 1
            else:
                self._errors.append(exc)
            if self._outstanding == 0:
                self._cond.notify_all()

    def publish(self, value, key=None, attributes=None) -> None:
        if isinstance(key, bytes):
            key = key.decode("utf-8")
        attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
        with self._cond:
            self._outstanding += 1
        try:
            future = self._client.publish(
                self._topic, encode_payload(value), ordering_key=key or "", **attrs
            )
        except Exception:
            with self._cond:
                self._outstanding -= 1
            raise
        future.add_done_callback(self._done)

    def flush(self, timeout: float | None = None) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: self._outstanding == 0, timeout=timeout):
                raise PublishError(
                    f"{self.target}: {self._outstanding} message(s) not confirmed within {timeout}s"
                )
            errors, self._errors = self._errors, []
            delivered, self._delivered = self._delivered, 0
        if errors:
            first = errors[0]
            raise PublishError(
                f"{len(errors)} message(s) not delivered to {self.target}: "
                f"{_api_error(self.target, first) if isinstance(first, Exception) else first}"
            ) from first
        return delivered

    def close(self) -> None:
        self._client.stop()
        self._client.transport.close()


class PubSubSubscriber(Subscriber):
    """Pulls from a subscription (or a subscription it creates on a topic)."""

    def __init__(
        self,
        uri: PubSubUri,
        from_beginning: bool = False,
        group: str | None = None,
        delete_on_close: bool = False,
        **config: Any,
    ):
        from google.api_core import exceptions
        from google.cloud.pubsub_v1 import SubscriberClient

        ack_deadline = int(config.pop("ack_deadline_seconds", 60))
        if config:
            raise ClientError(f"unknown Pub/Sub subscriber setting(s): {', '.join(sorted(config))}")
        # from_beginning: a subscription always delivers its whole unacked
        # backlog, and a new subscription has no past; nothing to seek.
        del from_beginning
        self._client = SubscriberClient()
        self._temporary = delete_on_close
        try:
            if uri.is_subscription:
                self.subscription = uri.path
                try:
                    self._client.get_subscription(subscription=self.subscription)
                except exceptions.GoogleAPICallError as exc:
                    raise _api_error(f"subscription {uri.redacted()}", exc) from exc
            else:
                name = group or f"{uri.name}-beamstream-{uuid.uuid4().hex[:8]}"
                self.subscription = f"projects/{uri.project}/subscriptions/{name}"
                self._temporary = group is None
                try:
                    self._client.create_subscription(
                        name=self.subscription, topic=uri.path, ack_deadline_seconds=ack_deadline
                    )
                except exceptions.AlreadyExists:
                    if self._temporary:
                        raise
                except exceptions.GoogleAPICallError as exc:
                    raise _api_error(f"topic {uri.redacted()}", exc) from exc
        except BaseException:
            self._client.close()
            raise
        self.source = f"pubsub://{self.subscription}"
        self._lock = threading.Lock()
        self._ack_ids: list[str] = []

    def _acker(self, ack_id: str):
        def ack() -> None:
            with self._lock:
                self._ack_ids.append(ack_id)

        return ack

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[ReceivedMessage]:
        from google.api_core import exceptions

        self.commit()
        try:
            response = self._client.pull(
                subscription=self.subscription,
                max_messages=max_messages,
                timeout=timeout,
                retry=None,
            )
        except exceptions.DeadlineExceeded:
            return []
        except exceptions.GoogleAPICallError as exc:
            raise _api_error(self.source, exc) from exc
        out: list[ReceivedMessage] = []
        for received in response.received_messages:
            message = received.message
            publish_time = message.publish_time
            out.append(
                ReceivedMessage(
                    value=message.data,
                    key=message.ordering_key.encode("utf-8") if message.ordering_key else None,
                    attributes=dict(message.attributes),
                    timestamp_ms=(int(publish_time.timestamp() * 1000) if publish_time else None),
                    source=self.subscription,
                    message_id=message.message_id,
                    ack_id=received.ack_id,
                    _ack=self._acker(received.ack_id),
                )
            )
        return out

    def extend_deadline(self, messages: list[ReceivedMessage], seconds: int) -> None:
        """Keeps messages that are still being processed from being redelivered."""
        ack_ids = [m.ack_id for m in messages if m.ack_id]
        for i in range(0, len(ack_ids), ACK_CHUNK):
            self._client.modify_ack_deadline(
                subscription=self.subscription,
                ack_ids=ack_ids[i : i + ACK_CHUNK],
                ack_deadline_seconds=seconds,
            )

    def commit(self) -> None:
        with self._lock:
            ack_ids, self._ack_ids = self._ack_ids, []
        for i in range(0, len(ack_ids), ACK_CHUNK):
            self._client.acknowledge(
                subscription=self.subscription, ack_ids=ack_ids[i : i + ACK_CHUNK]
            )

    def close(self) -> None:
        try:
            self.commit()
            if self._temporary:
                self._client.delete_subscription(subscription=self.subscription)
        finally:
            self._client.close()
