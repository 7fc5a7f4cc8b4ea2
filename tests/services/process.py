"""A child service process with its output captured to a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class ServiceProcess:
    """Runs a command in its own process group so teardown can kill the whole tree.

    Wrappers such as ``gcloud beta emulators pubsub start`` leave their Java
    child running when only the wrapper is killed, hence the process group.
    """

    def __init__(
        self, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )

    def exited(self) -> bool:
        """True once the process has terminated (e.g. port already taken)."""
        return self.proc.poll() is not None

    def running(self) -> bool:
        """Negation of exited(), handy as a wait-loop predicate."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the captured output, for failure messages."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<could not read {self.log_path}: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def describe_failure(self, what: str) -> str:
        """A failure message with exit status and log tail."""
        status = self.proc.poll()
        state = "still running" if status is None else f"exit code {status}"
        return (
            f"{what}: {' '.join(self.cmd)} ({state}); log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, escalating to SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        # The leader may exit before its children (gcloud -> java): sweep the group.
        self._signal_group(signal.SIGKILL)
        self._log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # group already gone
            os.killpg(self.proc.pid, sig)
