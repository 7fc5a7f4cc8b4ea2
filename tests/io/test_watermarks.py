"""PartitionWatermarks: minimum over partitions, sustained idleness, and outages."""

from __future__ import annotations

from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK
from beamstream.io.watermarks import PartitionWatermarks

S = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, wall_s: float = 1000.0) -> PartitionWatermarks:
    marks = PartitionWatermarks(
        max_out_of_orderness_s=2, idle_timeout_s=5, clock=clock, wall_clock=lambda: wall_s
    )
    marks.add_partition("a")
    marks.add_partition("b")
    return marks


def test_the_slowest_partition_holds_the_watermark():
    clock = Clock()
    marks = make(clock)
    marks.observe("a", 100 * S)
    assert marks.advance() == NO_WATERMARK  # b has delivered nothing yet
    marks.observe("b", 50 * S)
    assert marks.advance() == 48 * S


def _b_behind_and_caught_up(clock: Clock) -> PartitionWatermarks:
    marks = make(clock)
    marks.observe("a", 100 * S)
    marks.observe("b", 50 * S)
    marks.set_caught_up("b", True)
    return marks


def test_an_idle_partition_is_released_only_when_caught_up_and_quiet_long_enough():
    clock = Clock()
    marks = _b_behind_and_caught_up(clock)
    clock.now = 4.9
    marks.observe("a", 101 * S)
    assert marks.advance() == 48 * S  # b quiet for less than the idle timeout
    clock.now = 5.0
    assert marks.advance(lambda p: True) == 99 * S


def test_a_partition_whose_idleness_is_not_confirmed_keeps_holding():
    clock = Clock()
    marks = _b_behind_and_caught_up(clock)
    clock.now = 6.0
    assert marks.advance(lambda p: False) == 48 * S
    assert not marks.is_idle("b")  # it has to be caught up and quiet again


def _all_idle(clock: Clock) -> PartitionWatermarks:
    """Both partitions caught up and quiet past the idle timeout, wall clock at 1000 s."""
    marks = make(clock, wall_s=1000.0)
    marks.observe("a", 100 * S)
    marks.observe("b", 50 * S)
    for p in ("a", "b"):
        marks.set_caught_up(p, True)
    clock.now = 6.0
    return marks


def test_all_partitions_idle_follow_the_wall_clock():
    marks = _all_idle(Clock())
    assert marks.advance(lambda p: True) == 998 * S


def test_an_unreachable_partition_is_not_idle_and_stops_the_wall_clock():
    clock = Clock()
    marks = _all_idle(clock)
    assert marks.advance(lambda p: True) == 998 * S
    # The broker becomes unreachable: records may be written that this reader
    # cannot see, so the watermark must not run on with the wall clock.
    marks.hold("b")
    clock.now = 60.0
    assert marks.advance(lambda p: True) == 998 * S  # never backwards, never further


def test_finished_partitions_stop_holding_and_all_finished_is_the_end():
    clock = Clock()
    marks = make(clock)
    marks.observe("a", 100 * S)
    marks.observe("b", 50 * S)
    marks.finish("b")
    assert marks.advance() == 98 * S
    marks.finish("a")
    assert marks.advance() == MAX_WATERMARK


def test_a_restored_watermark_is_never_undercut():
    clock = Clock()
    marks = make(clock)
    marks.restore(500 * S)
    marks.observe("a", 100 * S)
    marks.observe("b", 100 * S)
    assert marks.advance() == 500 * S


def test_a_source_that_never_delivered_a_record_holds_its_watermark():
    """A replay of history into a running, idle pipeline must not be all late."""
    clock = Clock()
    marks = make(clock)
    for p in ("a", "b"):
        marks.set_caught_up(p, True)
    clock.now = 60.0  # idle far beyond the timeout, but nothing was ever read
    assert marks.advance(lambda p: True) == NO_WATERMARK
    marks.observe("a", 10 * S)  # year-old data arrives: still on time
    marks.set_caught_up("a", False)
    assert marks.advance(lambda p: True) == 8 * S


def test_an_empty_partition_beside_one_with_data_is_released_when_idle():
    clock = Clock()
    marks = make(clock)
    marks.observe("a", 10 * S)
    marks.set_caught_up("b", True)  # "b" never has data
    clock.now = 6.0
    assert marks.advance(lambda p: True) == 8 * S


def test_a_restored_partition_goes_on_from_its_event_time_but_must_stay_quiet_again():
    """A reader rebuilt from a checkpoint mark: the partitions' event times come back,
    so drained partitions can be released, but only after a full idle timeout."""
    clock = Clock()
    marks = make(clock)
    marks.restore(8 * S)
    marks.restore_partition("a", 10 * S)
    marks.restore_partition("b", 20 * S)
    assert marks.advance() == 8 * S  # min(10, 20) - 2: not above the restored watermark
    marks.set_caught_up("a", True)
    marks.set_caught_up("b", True)
    clock.now = 4.9
    assert marks.advance() == 8 * S
    clock.now = 5.0
    assert marks.advance() == 998 * S  # both idle: the wall clock (1000) minus the bound
