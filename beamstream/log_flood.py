"""Keeping a client library's retry loop from flooding the log.

While a broker is unreachable kafka-python logs every reconnect attempt at
ERROR: tens of thousands of lines in a few seconds here, which buries the one
line that matters and, written to a pipe nobody drains, blocks the process.
beamstream reports outages itself (``io/outage.py``), so repeats of the same
library message are let through once per interval and counted.
"""

from __future__ import annotations

import logging
import re
import threading
import time

_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Passes a message shape of ``prefix`` loggers once per ``interval_s``.

    The next one that passes says how many repeats were held back.
    """

    def __init__(self, prefix: str, interval_s: float = 30.0):
        super().__init__()
        self._prefix = prefix
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # shape -> (passed at, held)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefix):
            return True
        # Ports, ids and object addresses differ between repeats of one message.
        shape = (record.name, _DIGITS.sub("#", str(record.msg)))
        now = time.monotonic()
        with self._lock:
            passed_at, held = self._seen.get(shape, (float("-inf"), 0))
            if now - passed_at < self._interval_s:
                self._seen[shape] = (passed_at, held + 1)
                return False
            self._seen[shape] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} similar in the last {self._interval_s:g} s]"
        return True


def quiet_kafka_client_logs(interval_s: float = 30.0) -> None:
    """Filters kafka-python's repeats on the root handlers (call after configuring logging).

    On handlers, not the ``kafka`` logger: a logger's filters do not see what
    its children (``kafka.net.transport``, ...) log.
    """
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter("kafka.", interval_s))
