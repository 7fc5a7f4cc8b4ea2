"""``WriteToKafka``: elements (bytes, text or JSON-able values) to one Kafka topic."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import apache_beam as beam

from beamstream import counters
from beamstream.errors import UserError
from beamstream.io.elements import encode_payload
from beamstream.io.kafka.client import KAFKA_PYTHON, BrokerUnavailable, open_producer
from beamstream.io.uris import KafkaUri, parse_kafka_uri


class KafkaWriteError(UserError, RuntimeError):
    """The sink cannot reach its brokers; the message names them."""


class _WriteToKafkaFn(beam.DoFn):
    """Sends with a producer opened in ``setup``; a failed delivery fails the bundle."""

    def __init__(
        self,
        servers: tuple[str, ...],
        topic: str,
        producer_config: dict[str, Any],
        key_fn: Callable[[Any], bytes | str | None] | None,
        headers_fn: Callable[[Any], list[tuple[str, bytes]]] | None,
        client: str = KAFKA_PYTHON,
    ):
        self._client = client
        self._servers = servers
        self._topic = topic
        self._config = producer_config
        self._key_fn = key_fn
        self._headers_fn = headers_fn
        self._producer: Any = None
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def setup(self):
        settings: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 20,
            "batch_size": 512 * 1024,
            "max_request_size": 4 * 1024 * 1024,
            "retries": 5,
            "client_id": "beamstream",
        }
        try:
            self._producer = open_producer(self._client, self._servers, settings, self._config)
        except BrokerUnavailable as exc:
            servers = ",".join(self._servers)
            raise KafkaWriteError(f"cannot reach Kafka at {servers}: {exc}") from exc
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def start_bundle(self):
        self._errors = []

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def process(self, element):
        key = self._key_fn(element) if self._key_fn else None
        if isinstance(key, str):
            key = key.encode("utf-8")
        headers = self._headers_fn(element) if self._headers_fn else None
        self._producer.send(self._topic, encode_payload(element), key, headers, self._failed)
        # Counted here, as the file sink does: a failed delivery fails the bundle,
        # whose counts are then not committed.
        self._produced.inc()

    def finish_bundle(self):
        self._producer.flush()
        if self._errors:
            first = self._errors[0]
            raise RuntimeError(
                f"{len(self._errors)} record(s) not delivered to Kafka topic "
                f"{self._topic!r}: {type(first).__name__}: {first}"
            ) from first

    def teardown(self):
        if self._producer is not None:
            self._producer.close()
            self._producer = None


class WriteToKafka(beam.PTransform):
    """Writes elements (bytes, text, or JSON-able values) to one Kafka topic."""

    def __init__(
        self,
        uri: KafkaUri | str,
        *,
        key_fn: Callable[[Any], bytes | str | None] | None = None,
        headers_fn: Callable[[Any], list[tuple[str, bytes]]] | None = None,
        producer_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self._uri = parse_kafka_uri(uri) if isinstance(uri, str) else uri
        self._key_fn = key_fn
        self._headers_fn = headers_fn
        self._config = dict(producer_config or {})

    def expand(self, pcoll):
        return pcoll | "Produce" >> beam.ParDo(
            _WriteToKafkaFn(
                self._uri.bootstrap_servers,
                self._uri.topic,
                self._config,
                self._key_fn,
                self._headers_fn,
                self._uri.client,
            )
        )
