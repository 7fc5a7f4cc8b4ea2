"""Graceful shutdown of a streaming run.

On the DirectRunner the first SIGINT or SIGTERM asks the run's live feeds to
stop reading; each lets
the pipeline process what it already read, commits what the sinks have
written for good, and then either keeps open windows open (``finish``: the
run is cancelled, their records are read again after a restart) or closes
them (``flush``: the run ends by itself). On Prism, Flink or Dataflow the
runner reads the sources itself, and the run is cancelled. A second signal
cancels at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Protocol

from apache_beam.runners.runner import PipelineResult

_LOG = logging.getLogger(__name__)


class LiveFeeds(Protocol):
    """The run's live feeds (``RunContext``): none off the DirectRunner."""

    def request_stop(self, flush: bool) -> int: ...

    def all_stopped(self) -> bool: ...
STOP_TIMEOUT_S = 120.0


class GracefulStop:
    """Context manager installing the signal handlers around ``wait_until_finish``."""

    def __init__(
        self,
        result: PipelineResult,
        feeds: LiveFeeds,
        flush: bool = False,
        enabled: bool = True,
    ):
        self._result = result
        self._live = feeds
        self._flush = flush
        self._enabled = enabled
        self.signal_name: str | None = None
        self._feeds = 0
        self.cancel_issued = False  # set before this stop cancels the run
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if self._enabled and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second signal: stop now
        self.signal_name = signal.Signals(signum).name
        feeds = self._feeds = self._live.request_stop(flush=self._flush)
        if feeds:
            _LOG.warning(
                "%s: stopping %d live source(s) (%s)",
                self.signal_name,
                feeds,
                "flushing open windows" if self._flush else "finishing what was read",
            )
        else:  # Prism, Flink: the runner reads the sources itself
            _LOG.warning("%s: cancelling the run", self.signal_name)
        threading.Thread(target=self._cancel_when_stopped, daemon=True).start()

    def _cancel_when_stopped(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not self._live.all_stopped() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._flush:
            # The feeds end their streams; the run finishes by itself. Give it time.
            end = time.monotonic() + 30
            while str(self._result.state) == "RUNNING" and time.monotonic() < end:
                time.sleep(0.1)
            if str(self._result.state) != "RUNNING":
                return
        self.cancel_issued = True
        try:
            self._result.cancel()
        except Exception as exc:  # cancelling a finishing run may race with its end
            _LOG.warning("cancel after stop: %s", exc)

    def summary(self) -> str:
        if not self._feeds:
            return (
                f"stopped on {self.signal_name}: run cancelled, open windows left to the "
                "next run, offsets of finalized read bundles committed"
            )
        what = "open windows flushed" if self._flush else "open windows left to the next run"
        return (
            f"stopped on {self.signal_name}: reading stopped, {what}, "
            "offsets of written results committed"
        )
