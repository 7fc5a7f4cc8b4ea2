"""Saying once that a service went away, and once that it came back.

A reader that retries through an outage would otherwise log every failed
attempt (or nothing): operators need one line when it starts, how long it
lasted when it ends, and a reminder while it goes on.
"""

from __future__ import annotations

import logging
import time

_LOG = logging.getLogger("beamstream")

REMIND_S = 30.0


class Outage:
    """Tracks failures of one service and logs their start, progress and end."""

    def __init__(self, service: str):
        self.service = service
        self.since: float | None = None
        self._reminded = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = self._reminded = now
            _LOG.warning("%s unreachable (%s); retrying", self.service, _short(exc))
        elif now - self._reminded >= REMIND_S:
            self._reminded = now
            _LOG.warning(
                "%s still unreachable after %.0f s (%s); retrying",
                self.service,
                now - self.since,
                _short(exc),
            )

    def succeeded(self) -> None:
        if self.since is not None:
            _LOG.warning(
                "%s reachable again after %.1f s", self.service, time.monotonic() - self.since
            )
            self.since = None


def _short(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    if not text.startswith(name):  # kafka-python's errors already start with it
        text = f"{name}: {text}"
    return text.splitlines()[0][:200]
