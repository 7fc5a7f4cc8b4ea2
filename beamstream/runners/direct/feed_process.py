"""The pipeline's side of a feed process: start it, share progress slots with it, stop it.

Started with ``python -m`` rather than multiprocessing's spawn, which would
re-run the user's main script in the child.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
from multiprocessing import shared_memory

from beamstream.io.elements import NO_WATERMARK
from beamstream.runners.direct.feed import (
    _ACKED,
    _PROBE,
    _SINK_WATERMARK,
    _SLOTS,
    _STOP,
    _STOPPED,
    STOP_FINISH,
    STOP_FLUSH,
    STOP_NONE,
    FeedFactory,
)

_FEEDS: dict[str, _FeedProcess] = {}


class _FeedProcess:
    """The child process serving one feed, and the shared progress slots.

    Started with ``python -m`` rather than multiprocessing's spawn, which would
    re-run the user's main script in the child.
    """

    def __init__(self, factory: FeedFactory, max_in_flight: int):
        self._shared: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=8 * _SLOTS
        )
        assert self._shared.buf is not None
        self._slots = self._shared.buf.cast("q")
        for slot in range(_SLOTS):
            self._slots[slot] = 0
        self._slots[_SINK_WATERMARK] = NO_WATERMARK
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beamstream.runners.direct.feed_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(
            pickle.dumps((factory, self._shared.name, max_in_flight, os.getpid()))
        )
        self.process.stdin.close()
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the live feed process failed to start (see its error above)")
        self.endpoint = f"127.0.0.1:{line.split()[1]}"

    def ack(self, seq: int) -> None:
        if self._shared is not None and seq > self._slots[_ACKED]:
            self._slots[_ACKED] = seq

    def attach_probe(self) -> None:
        if self._shared is not None:
            self._slots[_PROBE] = 1

    def report_sink_watermark(self, micros: int) -> None:
        if self._shared is not None and micros > self._slots[_SINK_WATERMARK]:
            self._slots[_SINK_WATERMARK] = micros

    def request_stop(self, mode: int) -> None:
        if self._shared is not None:
            self._slots[_STOP] = mode

    @property
    def stop_mode(self) -> int:
        return self._slots[_STOP] if self._shared is not None else STOP_NONE

    @property
    def stopped(self) -> bool:
        if self._shared is None or self.process.poll() is not None:
            return True
        return bool(self._slots[_STOPPED])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._shared is not None:
            self._slots.release()
            self._shared.close()
            self._shared.unlink()
            self._shared = None


def request_stop(flush: bool = False) -> int:
    """Asks every live feed of this process to stop reading; returns how many."""
    feeds = [feed for feed in _FEEDS.values() if not feed.stopped]
    for feed in feeds:
        feed.request_stop(STOP_FLUSH if flush else STOP_FINISH)
    return len(feeds)


def stop_requested() -> bool:
    """Whether ``request_stop`` has asked the live feeds of this process to stop."""
    return any(feed.stop_mode != STOP_NONE for feed in _FEEDS.values())


def all_stopped() -> bool:
    return all(feed.stopped for feed in _FEEDS.values())


@atexit.register
def _stop_all() -> None:
    for feed in list(_FEEDS.values()):
        feed.stop()
