"""Free-port and unique-name helpers shared by the service fixtures."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    There is a small race between closing the socket and the service binding
    it; starters retry on a fresh port when the process dies early.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, deadline: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Poll until host:port accepts connections; give up at the deadline or when not alive()."""
    while time.monotonic() < deadline and alive():
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


def unique_name(prefix: str) -> str:
    """A collision-free resource name that also satisfies Pub/Sub naming rules.

    Pub/Sub names must start with a letter and be 3-255 characters long, so the
    prefix is kept and a random suffix is appended.
    """
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
