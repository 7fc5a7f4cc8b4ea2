"""A broker of its own behind a TCP proxy the test can cut: "the network went away".

The broker advertises the proxy's port, so every client connection (metadata
included) goes through the proxy. Tansu keeps data only in memory, so
cutting the path, not restarting the broker, is the fault both brokers share.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services.kafka_broker import BrokerStartError, start_broker
from tests.services.ports import free_port
from tests.services.require import service_unavailable
from tests.support.tcp_proxy import TcpProxy


@dataclass
class ProxiedBroker:
    bootstrap: str  # the proxy's address, also what the broker advertises
    proxy: TcpProxy


@contextlib.contextmanager
def start_proxied_broker(tmp_path: Path, topics: dict[str, int]) -> Iterator[ProxiedBroker]:
    """Starts the session's kind of broker behind a proxy and creates ``topics``."""
    proxy_port = free_port()
    port = free_port()
    proxy = TcpProxy("127.0.0.1", port, port=proxy_port)
    try:
        try:
            broker = start_broker(tmp_path, advertised_port=proxy_port, listen_port=port)
        except BrokerStartError as exc:
            service_unavailable(f"proxied broker did not start: {exc}")
        if not broker.is_apache_kafka:
            broker.close()
            service_unavailable("a proxied broker needs Apache Kafka (make engines; Java 17)")
        try:
            for name, partitions in topics.items():
                broker.create_topic(name, partitions)
            yield ProxiedBroker(f"127.0.0.1:{proxy_port}", proxy)
        finally:
            broker.close()
    finally:
        proxy.close()
