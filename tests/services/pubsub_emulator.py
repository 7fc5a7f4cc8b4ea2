"""Start the Google Cloud Pub/Sub emulator that ships with the Google Cloud CLI.

The SDK's ``cloud-pubsub-emulator`` launcher is preferred: it ``exec``s Java
directly, starts faster and does not write emulator state into the user's
gcloud config. ``gcloud beta emulators pubsub start`` is the fallback.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import pubsub_v1

from .ports import free_port, wait_for_port
from .process import ServiceProcess

PROJECT_ID = "beamstream-test"  # must be a syntactically valid GCP project id
STARTUP_TIMEOUT_S = 60.0
EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"


class EmulatorStartError(RuntimeError):
    """The emulator is not installed or did not answer in time."""


def _sdk_roots() -> list[Path]:
    """Candidate Cloud SDK roots, cheapest lookups first (``gcloud info`` costs ~0.5 s)."""
    roots: list[Path] = []
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        roots.append(Path(os.environ["CLOUDSDK_ROOT_DIR"]))
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(Path(gcloud).resolve().parent.parent)  # <root>/bin/gcloud
    roots.append(Path("/usr/lib/google-cloud-sdk"))
    return roots


def emulator_command(port: int) -> list[str]:
    """The command line that runs the emulator on 127.0.0.1:port."""
    for root in _sdk_roots():
        script = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script), "--host=127.0.0.1", f"--port={port}"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        return [
            gcloud, "beta", "emulators", "pubsub", "start",
            f"--host-port=127.0.0.1:{port}", f"--project={PROJECT_ID}", "--quiet",
        ]
    raise EmulatorStartError(
        "Pub/Sub emulator not found: no Cloud SDK pubsub-emulator and no gcloud on PATH"
    )


def _http_ok(host: str) -> bool:
    """The emulator answers plain HTTP GET / with 'Ok' once it can serve requests."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(f"http://{host}/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class PubSubEmulator:
    """A running emulator; helpers return full resource paths."""

    host: str
    project: str
    process: ServiceProcess
    startup_seconds: float
    _publisher: pubsub_v1.PublisherClient | None = field(default=None, repr=False)
    _subscriber: pubsub_v1.SubscriberClient | None = field(default=None, repr=False)

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        """Admin publisher client; created lazily so it sees PUBSUB_EMULATOR_HOST."""
        if self._publisher is None:
            self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        """Admin subscriber client; created lazily so it sees PUBSUB_EMULATOR_HOST."""
        if self._subscriber is None:
            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def topic_path(self, name: str) -> str:
        """Full topic path; accepts a short name or an existing full path."""
        return name if name.startswith("projects/") else f"projects/{self.project}/topics/{name}"

    def create_topic(self, name: str) -> str:
        """Create a topic (names: 3-255 chars, starting with a letter)."""
        path = self.topic_path(name)
        self.publisher.create_topic(name=path)
        return path

    def create_subscription(self, topic: str, name: str, ack_deadline_seconds: int = 60) -> str:
        """Create a pull subscription on topic; returns its full path."""
        path = name
        if not name.startswith("projects/"):
            path = f"projects/{self.project}/subscriptions/{name}"
        self.subscriber.create_subscription(
            name=path, topic=self.topic_path(topic), ack_deadline_seconds=ack_deadline_seconds
        )
        return path

    def close(self) -> None:
        """Close the clients and kill the emulator's whole process group."""
        try:
            if self._subscriber is not None:
                self._subscriber.close()
            if self._publisher is not None:
                self._publisher.stop()
                self._publisher.transport.close()
        finally:
            self.process.stop()


def start_pubsub_emulator(log_dir: Path, attempts: int = 3) -> PubSubEmulator:
    """Start the emulator on a free port and wait until it answers HTTP."""
    last: EmulatorStartError | None = None
    for attempt in range(attempts):
        port = free_port()
        host = f"127.0.0.1:{port}"
        cmd = emulator_command(port)
        started = time.monotonic()
        proc = ServiceProcess(cmd, log_dir / f"pubsub-emulator-{attempt}.log")
        deadline = started + STARTUP_TIMEOUT_S
        if wait_for_port("127.0.0.1", port, deadline, proc.running):
            while time.monotonic() < deadline and proc.running():
                if _http_ok(host):
                    return PubSubEmulator(host, PROJECT_ID, proc, time.monotonic() - started)
                time.sleep(0.1)
        died = proc.exited()
        last = EmulatorStartError(
            proc.describe_failure(f"Pub/Sub emulator not answering at {host}")
        )
        proc.stop()
        if not died:  # hung rather than lost a port race: retrying would just burn time
            break
    assert last is not None
    raise last
