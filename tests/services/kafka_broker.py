"""A throwaway single-node Kafka broker for tests and benchmarks: which one, and its admin.

Apache Kafka (KRaft, from its Maven artifacts, see ``apache_kafka.py``) wherever
Java and the assembled classpath are present; Tansu, a Kafka-protocol test
broker shipped in a wheel (``tansu.py``), where they are not. Both start on
free loopback ports and are used through the same :class:`KafkaBroker`.
``BEAMSTREAM_TEST_BROKER=kafka|tansu`` forces one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from .ports import free_port, unique_name, wait_for_port
from .process import ServiceProcess

BROKER_ENV = "BEAMSTREAM_TEST_BROKER"
TOPIC_TIMEOUT_S = 20.0

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The broker did not come up; the message carries its log tail."""


@dataclass
class KafkaBroker:
    """A running broker plus an admin client for creating topics."""

    kind: str  # "Apache Kafka 4.4.0" or "Tansu"
    bootstrap: str
    process: ServiceProcess
    startup_seconds: float
    _admin: KafkaAdminClient = field(repr=False)

    @property
    def is_apache_kafka(self) -> bool:
        return self.kind.startswith("Apache Kafka")

    def create_topic(self, name: str, partitions: int = 1) -> str:
        """Create a topic and wait until every partition has a leader in metadata."""
        self._admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}}
        )
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while True:
            described = self._admin.describe_topics([name])
            if described and _topic_ready(described[0], partitions):
                return name
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"topic {name!r} not visible after {TOPIC_TIMEOUT_S}s: {described}"
                )
            time.sleep(0.05)

    def new_topic(self, prefix: str = "topic", partitions: int = 1) -> str:
        """Create a topic with a unique name, so tests never share state."""
        return self.create_topic(unique_name(prefix), partitions)

    def close(self) -> None:
        """Close the admin client and terminate the broker."""
        try:
            self._admin.close()
        finally:
            self.process.stop()


def _topic_ready(topic: dict[str, object], partitions: int) -> bool:
    parts = topic.get("partitions")
    return (
        topic.get("error_code") == 0
        and isinstance(parts, list)
        and len(parts) == partitions
        and all(p.get("error_code") == 0 and p.get("leader_id", -1) >= 0 for p in parts)
    )


def connect_admin(bootstrap: str, proc: ServiceProcess, deadline: float) -> KafkaAdminClient:
    """Retry until a kafka-python client can bootstrap and fetch cluster metadata."""
    last_error: Exception | None = None
    while time.monotonic() < deadline and not proc.exited():
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="beamstream-test-admin",
                bootstrap_timeout_ms=2000,
                request_timeout_ms=10000,
            )
        except KafkaError as exc:
            last_error = exc
            time.sleep(0.2)
            continue
        try:
            admin.describe_cluster()
        except KafkaError as exc:
            admin.close()
            last_error = exc
            time.sleep(0.2)
            continue
        return admin
    raise BrokerStartError(
        proc.describe_failure(
            f"broker not answering metadata at {bootstrap} (last error: {last_error!r})"
        )
    )


# (attempt, listen port, advertised "host:port") -> the started broker process
Launch = Callable[[int, int, str], ServiceProcess]


def start_with_retries(
    kind: str,
    launch: Launch,
    advertised_port: int | None,
    listen_port: int | None,
    timeout_s: float,
    attempts: int = 3,
) -> KafkaBroker:
    """Launch until the broker listens and answers metadata; a lost port race gets new ports."""
    last: BrokerStartError | None = None
    for attempt in range(attempts):
        port = listen_port or free_port()
        advertised = f"127.0.0.1:{advertised_port or port}"
        started = time.monotonic()
        proc = launch(attempt, port, advertised)
        deadline = started + timeout_s
        try:
            if not wait_for_port("127.0.0.1", port, deadline, proc.running):
                raise BrokerStartError(proc.describe_failure(f"{kind} did not listen on {port}"))
            admin = connect_admin(advertised, proc, deadline)
        except BrokerStartError as exc:
            died = proc.exited()  # an early exit is most likely a lost port race
            proc.stop()
            last = exc
            log.warning("%s start attempt %d failed: %s", kind, attempt + 1, exc)
            if died and listen_port is None:
                continue
            break
        return KafkaBroker(kind, advertised, proc, time.monotonic() - started, admin)
    assert last is not None
    raise last


def broker_choice() -> str:
    """"kafka" or "tansu": forced by the environment, else Apache Kafka when installed."""
    from . import apache_kafka

    forced = os.environ.get(BROKER_ENV, "").strip().lower()
    if forced in {"kafka", "tansu"}:
        return forced
    if forced:
        raise BrokerStartError(f"{BROKER_ENV}={forced!r}: expected 'kafka' or 'tansu'")
    return "kafka" if apache_kafka.unavailable_reason() is None else "tansu"


def start_broker(
    log_dir: Path, advertised_port: int | None = None, listen_port: int | None = None
) -> KafkaBroker:
    """Start the session's kind of broker on free ports (or the ones given).

    ``advertised_port`` lets a test put a proxy in front: the broker listens on
    ``listen_port`` and tells clients to connect to the proxy.
    """
    from . import apache_kafka, tansu

    choice = broker_choice()
    if choice == "kafka":
        reason = apache_kafka.unavailable_reason()
        if reason is not None:
            raise BrokerStartError(f"Apache Kafka requested but unavailable: {reason}")
        return apache_kafka.start(log_dir, advertised_port, listen_port)
    return tansu.start(log_dir, advertised_port, listen_port)
