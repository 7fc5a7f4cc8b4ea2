"""What a live feed is: steps of elements and watermarks, and its view of the pipeline.

A feed runs in the feed process (``feed_server``) and yields ``FeedStep``s;
``FeedProgress`` is what it sees of the pipeline through shared memory: the
last event the pipeline acknowledged, the sink watermark reported by the
probe behind the sinks (``commit_probe``), and whether a stop was requested.
The slot layout below is the contract between the two processes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from apache_beam.coders import coders

HEARTBEAT_S = 5.0


@dataclass
class FeedStep:
    """What a feed produced in one step: elements and/or a new watermark."""

    elements: list[tuple[Any, int]]  # (value, event-time micros)
    watermark_us: int | None = None
    seq: int = 0  # the event number of a step with elements, given out by the feed


class Feed(Protocol):
    """A source of steps; it commits what ``progress`` says the pipeline has done."""

    def steps(self, progress: FeedProgress) -> Iterator[FeedStep]: ...

    def close(self) -> None: ...


# Shared-memory slots between the pipeline process and the feed process.
_ACKED, _SINK_WATERMARK, _STOP, _STOPPED, _PROBE = range(5)
_SLOTS = 8
STOP_NONE, STOP_FINISH, STOP_FLUSH = 0, 1, 2


class FeedProgress:
    """The feed's view of the pipeline: called, it returns the last acknowledged event."""

    def __init__(self, slots):
        self._slots = slots

    def __call__(self) -> int:
        return self._slots[_ACKED]

    def sink_watermark(self) -> int | None:
        """Event time the sinks' output watermark has passed; None without a probe."""
        return self._slots[_SINK_WATERMARK] if self._slots[_PROBE] else None

    def stop_requested(self) -> int:
        return self._slots[_STOP]

    def mark_stopped(self) -> None:
        self._slots[_STOPPED] = 1


FeedFactory = Callable[[], Feed]


class BatchCoder(coders.Coder):
    """Pickle protocol 5: the fastest way to move batches of bytes here."""

    def encode(self, value):
        return pickle.dumps(value, protocol=5)

    def decode(self, encoded):
        return pickle.loads(encoded)

    def is_deterministic(self):
        return False


class ProgressMarker:
    """An element a feed sends only to move the sink probe to its timestamp.

    A feed that stops sends one timestamped at the time from which all it read
    is final; once the probe's timer fires there, every result is written.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProgressMarker)

    def __hash__(self) -> int:
        return 0


def failure_path(slots_path: str) -> str:
    """Where a feed that failed leaves its error for the run (``FeedProcess.failure``)."""
    return f"{slots_path}.failed"


def report_failure(slots_path: str, exc: BaseException) -> None:
    first = (str(exc).strip().splitlines() or [""])[0]
    with open(failure_path(slots_path), "w", encoding="utf-8") as handle:
        handle.write(f"{type(exc).__name__}: {first}")


def reported_failure(slots_path: str) -> str | None:
    try:
        with open(failure_path(slots_path), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
