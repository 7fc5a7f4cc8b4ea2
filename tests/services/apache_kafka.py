"""Apache Kafka 4.4 in KRaft mode, single node, run from its Maven artifacts.

``scripts/engines.sh kafka`` (``make engines``) copies ``kafka_2.13`` and its
dependencies into ``<engines>/kafka/4.4.0/libs``; this module formats a fresh
log directory and runs ``kafka.Kafka`` from that classpath on free loopback
ports. No distribution tarball is needed (none is reachable from here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .kafka_broker import BrokerStartError, KafkaBroker, start_with_retries
from .ports import free_port
from .process import ServiceProcess

VERSION = "4.4.0"
ENGINES_ENV = "BEAMSTREAM_ENGINES_DIR"
STARTUP_TIMEOUT_S = 60.0
HEAP = "-Xmx768m"



def engines_dir() -> Path:
    """Where ``scripts/engines.sh`` caches Kafka, Prism and Flink."""
    return Path(os.environ.get(ENGINES_ENV) or Path.home() / ".cache/beamstream/engines")


def libs_dir() -> Path:
    return engines_dir() / "kafka" / VERSION / "libs"


def unavailable_reason() -> str | None:
    """None when Java and the broker's classpath are present, else why not."""
    if shutil.which("java") is None:
        return "no java on PATH"
    libs = libs_dir()
    if not (libs / f"kafka_2.13-{VERSION}.jar").exists():
        return f"Apache Kafka {VERSION} not installed in {libs} (run `make engines`)"
    return None


def _properties(data: Path, port: int, controller_port: int, advertised: str) -> str:
    # Single node, replication 1 everywhere; no initial rebalance delay so a
    # consumer group is usable at once; small segments keep the temp dir small.
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://{advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=67108864
"""


def _java(libs: Path, *args: str) -> list[str]:
    return ["java", HEAP, "-XX:+UseSerialGC", "-cp", f"{libs}/*", *args]


def start(
    log_dir: Path, advertised_port: int | None = None, listen_port: int | None = None
) -> KafkaBroker:
    """Format a fresh KRaft log dir and start the broker on free loopback ports."""
    libs = libs_dir()

    def launch(attempt: int, port: int, advertised: str) -> ServiceProcess:
        home = log_dir / f"kafka-{attempt}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        props = home / "server.properties"
        props.write_text(_properties(home / "data", port, free_port(), advertised))
        fmt = subprocess.run(
            _java(libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)),
            capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S, check=False,
        )
        if fmt.returncode != 0:
            raise BrokerStartError(f"kafka-storage format failed: {fmt.stdout}{fmt.stderr}")
        return ServiceProcess(
            _java(libs, "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "kafka.Kafka", str(props)),
            home / "kafka.log",
        )

    broker = start_with_retries(
        f"Apache Kafka {VERSION}", launch, advertised_port, listen_port, STARTUP_TIMEOUT_S
    )
    _warm_up(broker)
    return broker


def _cluster_id(new_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    One id in 64 would start with ``-``, which ``kafka-storage format`` parses
    as an option ("expected one argument"); Kafka's own ``Uuid.randomUuid``
    draws again in that case, and so do we.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(new_uuid().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _warm_up(broker: KafkaBroker) -> None:
    """Create __consumer_offsets now, so the first test's commit does not wait for it."""
    from kafka import KafkaConsumer, TopicPartition

    topic = broker.new_topic("warm-up")
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id="beamstream-warm-up",
        enable_auto_commit=False,
    )
    try:
        from kafka.structs import OffsetAndMetadata

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
                return
            except Exception as exc:  # noqa: BLE001 - coordinator not ready yet: retry
                if time.monotonic() > deadline:
                    raise BrokerStartError(f"group coordinator never ready: {exc!r}") from exc
                time.sleep(0.2)
    finally:
        consumer.close()
