"""CommitLedger, MarkerSchedule, Finality: offset order, when to ask the sinks, when final."""

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


def test_a_partition_is_committed_only_up_to_its_first_batch_not_yet_safe():
    ledger = CommitLedger()
    first = ledger.record(batch(0, [0, 1], [100, 101]))
    second = ledger.record(batch(0, [2], [10]))
    other = ledger.record(batch(1, [7], [10]))
    ledger.release(second)
    ledger.release(other)
    assert ledger.safe_offsets() == {("t", 1): 8}  # offsets 0-1 of partition 0 still wait
    ledger.release(first)
    assert ledger.safe_offsets() == {("t", 0): 3}
    assert ledger.safe_offsets() == {}  # each offset is reported once


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


def test_a_composite_declares_the_windows_its_results_are_in():
    """WindowedMetricStats windows fixed slots inside; its results are in sliding windows,
    so a record is final only when its last 60 s window (plus lateness) is."""
    import apache_beam as beam

    from beamstream.transforms.metric_stats import WindowedMetricStats

    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create([("k", [])]) | WindowedMetricStats(60, 10, allowed_lateness_s=5)
    finality = Finality.of_pipeline(pipeline)
    assert finality.final_at(70 * S) == (70 + 60 + 5) * S  # windows [20, 80) ... [70, 130)
    assert finality.final_at(79 * S) == (70 + 60 + 5) * S
