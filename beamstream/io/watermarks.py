"""Event-time watermarks for partitioned sources, with sustained idleness.

A partition's watermark is the highest event time it has delivered minus the
allowed out-of-orderness. The source watermark is the minimum over partitions
that are still active. A partition only stops holding the watermark back when
it is *idle*: caught up with its broker and silent for ``idle_timeout_s``.
Idleness must be sustained (design.md): releasing a partition on one empty
poll in the middle of a backlog made every later record late in a probe.
And a source that has delivered no record at all holds its watermark: it has
no window to close, and releasing it to the wall clock would make a replay of
history published after the start all late (a backfill into a running pipeline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK


class PartitionWatermarks:
    """Tracks per-partition event time and derives one monotonic watermark."""

    def __init__(
        self,
        max_out_of_orderness_s: float = 2.0,
        idle_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self._bound_us = int(max_out_of_orderness_s * 1_000_000)
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_event: dict[Hashable, int] = {}
        self._last_data: dict[Hashable, float] = {}
        self._caught_up: dict[Hashable, bool] = {}
        self._finished: set[Hashable] = set()
        self._confirmed_idle: set[Hashable] = set()
        self._current = NO_WATERMARK

    def add_partition(self, partition: Hashable) -> None:
        self._max_event.setdefault(partition, NO_WATERMARK)
        self._last_data.setdefault(partition, self._clock())
        self._caught_up.setdefault(partition, False)

    def observe(self, partition: Hashable, max_event_time_us: int | None) -> None:
        """Records that ``partition`` delivered data, up to that event time."""
        self._last_data[partition] = self._clock()
        self._confirmed_idle.discard(partition)
        if max_event_time_us is not None and max_event_time_us > self._max_event.get(
            partition, NO_WATERMARK
        ):
            self._max_event[partition] = max_event_time_us

    def hold(self, partition: Hashable) -> None:
        """The partition cannot be read now (broker unreachable): not caught up, not idle.

        A partition released as idle before stops being released, so the
        watermark does not follow the wall clock past records that producers
        may still be writing where this reader cannot see them.
        """
        self._last_data[partition] = self._clock()
        self._caught_up[partition] = False
        self._confirmed_idle.discard(partition)

    def set_caught_up(self, partition: Hashable, caught_up: bool) -> None:
        """Whether the partition has nothing more to read right now."""
        self._caught_up[partition] = caught_up

    def finish(self, partition: Hashable) -> None:
        """The partition will deliver nothing more (bounded read ended)."""
        self._finished.add(partition)

    def is_idle(self, partition: Hashable) -> bool:
        return self._caught_up.get(partition, False) and (
            self._clock() - self._last_data.get(partition, 0.0) >= self._idle_timeout_s
        )

    def restore(self, watermark_us: int) -> None:
        """Starts from a watermark announced before (resuming a committed read)."""
        self._current = max(self._current, watermark_us)

    def restore_partition(self, partition: Hashable, max_event_time_us: int) -> None:
        """Starts a partition from the highest event time delivered before (a rebuilt reader).

        Unlike ``observe`` it is no news of data: the partition still has to be
        quiet for ``idle_timeout_s`` before it may be released.
        """
        self.add_partition(partition)
        if max_event_time_us > self._max_event[partition]:
            self._max_event[partition] = max_event_time_us

    @property
    def current(self) -> int:
        return self._current

    def advance(self, confirm_idle: Callable[[Hashable], bool] | None = None) -> int:
        """Recomputes the watermark (never moving it backwards) and returns it.

        ``confirm_idle(partition)`` is asked once before a partition that looks
        idle is released; False (data found) keeps it holding for another
        idle timeout.
        """
        active = [p for p in self._max_event if p not in self._finished]
        if not active:
            self._current = MAX_WATERMARK
            return self._current
        for p in active:
            if self.is_idle(p) and p not in self._confirmed_idle:
                if confirm_idle is None or confirm_idle(p):
                    self._confirmed_idle.add(p)
                else:
                    self._caught_up[p] = False
                    self._last_data[p] = self._clock()
        holding = [p for p in active if p not in self._confirmed_idle]
        if holding:
            candidate = min(self._max_event[p] for p in holding)
            if candidate != NO_WATERMARK:
                candidate -= self._bound_us
        else:
            # Every partition is caught up and quiet: event time may follow the
            # wall clock, so windows of a drained backlog or a paused feed close.
            seen = max(self._max_event[p] for p in active)
            if seen == NO_WATERMARK:
                return self._current  # nothing read yet: nothing to close
            candidate = max(seen - self._bound_us, int(self._wall_clock() * 1e6) - self._bound_us)
        if candidate > self._current:
            self._current = candidate
        return self._current
