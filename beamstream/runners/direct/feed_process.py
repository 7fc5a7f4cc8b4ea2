"""The pipeline's side of a feed process: start it, share progress slots with it, stop it.

Started with ``python -m`` rather than multiprocessing's spawn, which would
re-run the user's main script in the child. The run that starts a feed owns
it (``RunContext``) and stops it when the run ends; a feed process whose
pipeline process is gone stops by itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterable

from beamstream.runners.direct.feed import (
    _PROBE,
    _STOP,
    _STOPPED,
    STOP_FINISH,
    STOP_FLUSH,
    STOP_NONE,
    FeedFactory,
    failure_path,
    reported_failure,
)
from beamstream.runners.direct.slots import FeedSlots


class FeedProcess:
    """The child process serving one feed, and the progress slots shared with it."""

    def __init__(self, factory: FeedFactory, max_in_flight: int = 8):
        self.max_in_flight = max_in_flight
        self._slots = FeedSlots.create()
        self.slots_path = self._slots.path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beamstream.runners.direct.feed_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(
            pickle.dumps((factory, self.slots_path, max_in_flight, os.getpid()))
        )
        self.process.stdin.close()
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the live feed process failed to start (see its error above)")
        self.endpoint = f"127.0.0.1:{line.split()[1]}"

    def attach_probe(self) -> None:
        """Says a probe behind the sinks will report the sink watermark: commit by it."""
        if not self._slots.closed:
            self._slots[_PROBE] = 1

    def request_stop(self, mode: int) -> None:
        if not self._slots.closed:
            self._slots[_STOP] = mode

    @property
    def stop_mode(self) -> int:
        return STOP_NONE if self._slots.closed else self._slots[_STOP]

    @property
    def stopped(self) -> bool:
        if self._slots.closed or self.process.poll() is not None:
            return True
        return bool(self._slots[_STOPPED])

    def failure(self) -> str | None:
        """The error that ended the feed (its stream), None while it has not failed."""
        return reported_failure(self.slots_path)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._slots.close(delete=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(failure_path(self.slots_path))


def request_stop(feeds: Iterable[FeedProcess], flush: bool = False) -> int:
    """Asks these feeds to stop reading; returns how many were still reading."""
    reading = [feed for feed in feeds if not feed.stopped]
    for feed in reading:
        feed.request_stop(STOP_FLUSH if flush else STOP_FINISH)
    return len(reading)


def all_stopped(feeds: Iterable[FeedProcess]) -> bool:
    return all(feed.stopped for feed in feeds)
