"""CommitLedger and MarkerSchedule: which offsets are safe, and when to ask the sinks."""

from __future__ import annotations

from apache_beam.transforms.window import FixedWindows

from beamstream.io.elements import NO_WATERMARK, MessageBatch
from beamstream.runners.direct.commit_ledger import CommitLedger, MarkerSchedule
from beamstream.runners.direct.finality import Finality

S = 1_000_000


def fixed(size_s: int, lateness_s: int = 0) -> Finality:
    return Finality([(FixedWindows(size_s), lateness_s * S)])


def batch(partition: int, offsets: list[int], times_s: list[float]) -> MessageBatch:
    return MessageBatch(
        source="t",
        partition=partition,
        values=[b"{}"] * len(offsets),
        offsets=offsets,
        timestamps_ms=[0] * len(offsets),
        event_times_us=[int(t * S) for t in times_s],
        keys=[None] * len(offsets),
        headers=[()] * len(offsets),
        watermark_us=NO_WATERMARK,
    )


def test_a_batch_is_safe_once_the_sink_watermark_passes_its_newest_window_and_lateness():
    ledger = CommitLedger(fixed(60, 2))
    ledger.record(1, batch(0, [0, 1, 2], [10, 70, 65]))  # newest window [60, 120)
    assert ledger.oldest_final_at() == 122 * S
    assert ledger.safe_offsets(acked=1, sink_watermark=121 * S) == {}
    assert ledger.safe_offsets(acked=1, sink_watermark=122 * S) == {("t", 0): 3}
    assert ledger.oldest_final_at() is None


def test_nothing_is_safe_before_the_pipeline_took_the_batch_in():
    ledger = CommitLedger(fixed(1))
    ledger.record(2, batch(0, [5], [1]))
    assert ledger.safe_offsets(acked=1, sink_watermark=100 * S) == {}
    assert ledger.safe_offsets(acked=2, sink_watermark=100 * S) == {("t", 0): 6}


def test_a_later_safe_batch_does_not_commit_past_an_earlier_unsafe_one():
    ledger = CommitLedger(fixed(60))
    ledger.record(1, batch(0, [0], [100]))  # final at 120
    ledger.record(2, batch(0, [1], [10]))  # final at 60, but behind offset 0's batch
    assert ledger.safe_offsets(acked=2, sink_watermark=60 * S) == {}
    assert ledger.safe_offsets(acked=2, sink_watermark=120 * S) == {("t", 0): 2}


def test_a_marker_is_due_once_the_announced_watermark_passes_a_pending_finality():
    markers = MarkerSchedule()
    # No probe behind the sinks: nothing waits on a sink watermark.
    assert not markers.due(200 * S, None, 122 * S)
    # The watermark has not reached the finality yet.
    assert not markers.due(100 * S, NO_WATERMARK, 122 * S)
    assert markers.due(130 * S, NO_WATERMARK, 122 * S)
    # The marker in flight covers it: no second one until it came back.
    assert not markers.due(140 * S, NO_WATERMARK, 122 * S)
    # It came back short of a newer finality: a new one is due.
    assert markers.due(200 * S, 130 * S, 150 * S)
    # The sink watermark already covers what is pending.
    assert not markers.due(300 * S, 200 * S, 150 * S)


def test_finality_of_fixed_and_sliding_windows_is_the_last_window_end_plus_lateness():
    from apache_beam.transforms.window import GlobalWindows, SlidingWindows

    assert fixed(60, 2).final_at(70 * S) == 122 * S
    assert fixed(60).final_at(60 * S) == 120 * S  # a window's start belongs to it
    # 300 s windows every 60 s: the last window holding t=70 is [60, 360).
    sliding = Finality([(SlidingWindows(300, 60), 5 * S)])
    assert sliding.final_at(70 * S) == 365 * S
    # The latest horizon of all aggregations wins; the global window is none.
    both = Finality([(FixedWindows(1), 0), (FixedWindows(60), 3 * S), (GlobalWindows(), 0)])
    assert both.final_at(61_500_000) == 123 * S
    assert Finality([(GlobalWindows(), 0)]).final_at(7 * S) == 7 * S
    assert not Finality([(GlobalWindows(), 0)]).windowed


def test_finality_of_a_pipeline_comes_from_its_window_steps():
    import apache_beam as beam
    from apache_beam.transforms.window import GlobalWindows, SlidingWindows

    pipeline = beam.Pipeline()
    values = pipeline | beam.Create([1, 2])
    _ = values | "Fixed" >> beam.WindowInto(FixedWindows(60), allowed_lateness=2)
    _ = values | "Sliding" >> beam.WindowInto(SlidingWindows(300, 60), allowed_lateness=5)
    _ = values | "Global" >> beam.WindowInto(GlobalWindows())
    finality = Finality.of_pipeline(pipeline)
    assert finality.final_at(70 * S) == 365 * S
    assert finality.final_at(10 * S) == max(62, 305) * S
