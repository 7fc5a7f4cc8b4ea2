"""A real Prometheus server and Pushgateway (Debian's binaries) on free loopback ports.

Each runs in its own temp dir and process group; a missing binary is a skip
(or, with ``BEAMSTREAM_REQUIRE_SERVICES=1``, a failure) through
``tests.services.require``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.services.ports import free_port, wait_for_port
from tests.services.process import ServiceProcess
from tests.services.require import service_unavailable

PROMETHEUS_BIN = "/usr/bin/prometheus"
PUSHGATEWAY_BIN = "/usr/bin/prometheus-pushgateway"
START_TIMEOUT_S = 30.0


def _binary(path: str, package: str) -> str:
    found = shutil.which(path) or shutil.which(Path(path).name)
    if not found:
        service_unavailable(
            f"{Path(path).name} not installed (Debian package {package}; scripts/services.sh)"
        )
    return found


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _start(cmd_for_port, log: Path, ready_path: str) -> tuple[ServiceProcess, int]:
    """Starts on a free port, retrying when the port was taken meanwhile; waits until ready."""
    failure = ""
    for _attempt in range(3):
        port = free_port()
        process = ServiceProcess(cmd_for_port(port), log)
        deadline = time.monotonic() + START_TIMEOUT_S
        if wait_for_port("127.0.0.1", port, deadline, process.running):
            while time.monotonic() < deadline and process.running():
                with contextlib.suppress(OSError):
                    _get(f"http://127.0.0.1:{port}{ready_path}")
                    return process, port
                time.sleep(0.1)
        failure = process.describe_failure("did not become ready")
        process.stop()
    raise RuntimeError(failure)


class Prometheus:
    """A Prometheus server scraping the given targets every second (``honor_labels``)."""

    def __init__(self, workdir: Path, targets: list[str], job: str = "beamstream"):
        binary = _binary(PROMETHEUS_BIN, "prometheus")
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": job,
                            "honor_labels": True,
                            "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                }
            )
        )
        self.process, self.port = _start(
            lambda port: [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
            "/-/ready",
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """``promql``'s instant vector from /api/v1/query: [{"metric": {...}, "value": [t, v]}]."""
        query = urllib.parse.urlencode({"query": promql})
        answer = json.loads(_get(f"{self.url}/api/v1/query?{query}"))
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        return json.loads(_get(f"{self.url}/api/v1/targets"))["data"]["activeTargets"]

    def close(self) -> None:
        self.process.stop()


class Pushgateway:
    def __init__(self, workdir: Path):
        binary = _binary(PUSHGATEWAY_BIN, "prometheus-pushgateway")
        self.process, self.port = _start(
            lambda port: [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            workdir / "pushgateway.log",
            "/-/ready",
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def groups(self) -> list[dict[str, Any]]:
        """/api/v1/metrics: one entry per grouping key with its labels and metric families."""
        answer = json.loads(_get(f"{self.url}/api/v1/metrics"))
        assert answer["status"] == "success", answer
        return answer["data"]

    def metrics_text(self) -> str:
        return _get(f"{self.url}/metrics").decode("utf-8")

    def close(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def running(service_cls, *args: Any) -> Iterator[Any]:
    """A started service, stopped afterwards; a failed start is unavailable, not an error."""
    try:
        service = service_cls(*args)
    except (RuntimeError, OSError) as exc:
        service_unavailable(f"could not start {service_cls.__name__}: {exc}")
    try:
        yield service
    finally:
        service.close()
