"""WindowedMetricStats and Prometheus rate(): hand-computed expectations, through TestStream."""

from __future__ import annotations

import math
import random

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from beamstream.transforms.metric_stats import (
    RateParts,
    WindowedMetricStats,
    extrapolated_rate,
    is_counter,
    percentile,
    rate_parts,
)
from beamstream.transforms.prometheus_records import (
    InvalidRecord,
    MetricRecord,
    parse_record,
    parse_value,
    series_id,
)

T0 = 1_700_000_040  # a multiple of 60
assert T0 % 60 == 0
US = 1_000_000


def _rec(name, t, value, **labels) -> MetricRecord:
    return MetricRecord(name, labels, int(t * US), value)


def _run(records, key_labels=(), **kwargs) -> list[dict]:
    """Streams records (in the given order), watermark to infinity; returns stats outputs."""
    stream = TestStream()
    for r in records:
        labels = {k: r.labels[k] for k in key_labels if k in r.labels}
        stream = stream.add_elements(
            [beam.window.TimestampedValue((series_id(r.name, labels), r), r.timestamp_us / US)]
        )
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    key = f"run{len(_OUT)}"
    _OUT[key] = []
    with TestPipeline(options=options) as p:
        _ = p | stream | WindowedMetricStats(**kwargs) | beam.Map(_collect, key)
    return sorted(_OUT[key], key=lambda o: (o["name"], str(o["labels"]), o["window_start"]))


_OUT: dict[str, list] = {}


def _collect(element, key):
    _OUT[key].append(element)


def test_sliding_windows_give_hand_computed_stats():
    records = [
        _rec("cpu", T0 + 12, 5.0),
        _rec("cpu", T0 + 1, 1.0),
        _rec("cpu", T0 + 15, math.nan),
        _rec("cpu", T0 + 5, 3.0),
    ]
    out = _run(records, duration_s=20, period_s=10)
    assert [(o["window_start"], o["window_end"]) for o in out] == [
        ((T0 - 10) * US, (T0 + 10) * US),
        (T0 * US, (T0 + 20) * US),
        ((T0 + 10) * US, (T0 + 30) * US),
    ]
    first, middle, last = out
    assert {k: first[k] for k in ("count", "count_nan", "sum", "min", "max", "mean", "last")} == {
        "count": 2, "count_nan": 0, "sum": 4.0, "min": 1.0, "max": 3.0, "mean": 2.0, "last": 3.0,
    }
    assert first["p50"] == pytest.approx(2.0)
    assert first["p90"] == pytest.approx(2.8)
    assert first["p99"] == pytest.approx(2.98)
    assert (middle["count"], middle["count_nan"], middle["sum"], middle["mean"]) == (3, 1, 9.0, 3.0)
    assert middle["last"] == 5.0  # the NaN at T0+15 is later but not a value
    assert (middle["p50"], middle["p90"], middle["p99"]) == pytest.approx((3.0, 4.6, 4.96))
    assert (last["count"], last["count_nan"], last["min"], last["max"]) == (1, 1, 5.0, 5.0)
    assert all(o["name"] == "cpu" and o["labels"] == {} for o in out)
    assert all("rate" not in o for o in out)  # not a counter


def test_counter_reset_inside_a_window_gives_prometheus_rate():
    # increase = (20 - 10) + 25 (reset after 25) = 35 over 45 s sampled; the gaps to the
    # window bounds (5 s, 10 s) are under 1.1 average intervals, so Prometheus extrapolates
    # to the full 60 s: 35 * 60/45 / 60 = 35/45 per second.
    records = [
        _rec("requests_total", T0 + 35, 5.0),
        _rec("requests_total", T0 + 5, 10.0),
        _rec("requests_total", T0 + 50, 20.0),
        _rec("requests_total", T0 + 20, 25.0),
    ]
    (out,) = _run(records, duration_s=60, period_s=60)
    assert out["rate"] == pytest.approx(35 / 45)
    assert out["count"] == 4


def test_rate_sums_series_when_labels_are_not_grouped_and_separates_them_when_grouped():
    a = [_rec("x_total", T0 + t, v, instance="a") for t, v in ((0, 0.0), (30, 30.0), (59, 59.0))]
    b = [_rec("x_total", T0 + t, v, instance="b") for t, v in ((0, 0.0), (30, 60.0), (59, 118.0))]
    (merged,) = _run(a + b, duration_s=60, period_s=60)
    # Each series alone: rate() = 1/s and 2/s (sampled 59 s, extrapolated by the 1 s gap).
    assert merged["rate"] == pytest.approx(3.0)
    assert merged["count"] == 6
    split = _run(a + b, key_labels=("instance",), duration_s=60, period_s=60)
    assert [(o["labels"], o["count"]) for o in split] == [
        ({"instance": "a"}, 3), ({"instance": "b"}, 3)
    ]
    assert [o["rate"] for o in split] == pytest.approx([1.0, 2.0])
    assert [o["max"] for o in split] == [59.0, 118.0]


def test_counter_with_one_sample_has_no_rate():
    (out,) = _run([_rec("y_count", T0 + 3, 7.0)], duration_s=60, period_s=60)
    assert out["rate"] is None


def test_extrapolation_is_limited_to_half_an_interval_beyond_samples():
    # Samples at +30 s (100) and +40 s (110) in [T0, T0+60): gaps of 30 s and 20 s exceed
    # 1.1 x the 10 s interval, so Prometheus extends by 5 s on each side: 10 * 20/10 / 60.
    parts = rate_parts([((T0 + 30) * US, 100.0, "s"), ((T0 + 40) * US, 110.0, "s")])
    assert parts == RateParts((T0 + 30) * US, 100.0, (T0 + 40) * US, 10.0, 2)
    assert extrapolated_rate(parts, T0 * US, (T0 + 60) * US) == pytest.approx(20 / 60)


def test_extrapolation_stops_at_zero_for_a_young_counter():
    # First sample 2 at +20 s, then 12 at +30 s: extrapolating 20 s back would go below
    # zero; Prometheus stops where the counter would have been 0 (2 s before).
    parts = rate_parts([((T0 + 20) * US, 2.0, "s"), ((T0 + 30) * US, 12.0, "s")])
    assert parts is not None
    # to_start = min(20, 10 * 2/10 = 2) = 2 < 11 → +2; to_end = 30 ≥ 11 → +5; interval 17
    assert extrapolated_rate(parts, T0 * US, (T0 + 60) * US) == pytest.approx(10 * 17 / 10 / 60)


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.0) == 1.0


@pytest.mark.parametrize(
    "raw, expected",
    [(12, 12.0), ("3.5", 3.5), ("+Inf", math.inf), ("-Inf", -math.inf), (1e300, 1e300)],
)
def test_values_as_prometheus_writes_them(raw, expected):
    assert parse_value(raw) == expected


def test_nan_string_is_a_value_and_garbage_is_not():
    assert math.isnan(parse_value("NaN"))
    for bad in ("abc", None, True, [1], {}):
        with pytest.raises(InvalidRecord):
            parse_value(bad)


def test_record_parsing_takes_name_from_labels_and_time_in_any_format():
    r = parse_record(
        b'{"labels": {"__name__": "up", "job": "node"}, "timestamp": 1572384034838, "value": 1}'
    )
    assert (r.name, r.labels, r.timestamp_us, r.value) == ("up", {"job": "node"},
                                                           1572384034838000, 1.0)
    iso = parse_record(b'{"name": "up", "timestamp": "2019-10-29T21:20:34.838Z", "value": "1"}')
    assert iso.timestamp_us == 1572384034838000
    with pytest.raises(InvalidRecord, match="name"):
        parse_record(b'{"labels": {}, "timestamp": 1, "value": 1}')


def test_counter_names():
    assert is_counter("http_requests_total")
    assert is_counter("go_gc_duration_seconds_count")
    assert is_counter("le_bucket")
    assert not is_counter("node_load1")
    assert is_counter("node_cpu_seconds", r"_seconds$")


def test_a_late_record_updates_its_window_in_a_stream():
    """Unbounded input: a record after the watermark passed its window, within the
    allowed lateness, gives the window a second, accumulated result."""
    on_time = [_rec("cpu", T0 + 1, 1.0), _rec("cpu", T0 + 2, 3.0)]
    key_of = series_id("cpu", {})
    stream = TestStream().add_elements(
        [beam.window.TimestampedValue((key_of, r), r.timestamp_us / US) for r in on_time]
    )
    stream = stream.advance_watermark_to(T0 + 45)  # past every window of the two
    late = _rec("cpu", T0 + 3, 8.0)
    stream = stream.add_elements(
        [beam.window.TimestampedValue((key_of, late), late.timestamp_us / US)]
    )
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    key = "late"
    _OUT[key] = []
    with TestPipeline(options=options) as p:
        stats = p | stream | WindowedMetricStats(20, 10, allowed_lateness_s=60)
        _ = stats | beam.Map(_collect, key)
    window = [o for o in _OUT[key] if o["window_start"] == T0 * US]
    assert [(o["count"], o["sum"]) for o in window] == [(2, 4.0), (3, 12.0)]


def test_late_panes_are_asked_for_only_on_unbounded_input():
    """A bounded input has no late data: Beam's default trigger, not its trigger driver."""
    keyed = [(series_id("cpu", {}), _rec("cpu", T0 + 1, 1.0))]
    p = TestPipeline()
    bounded = p | beam.Create(keyed) | "Bounded" >> WindowedMetricStats(20, 10, 60)
    unbounded = (
        p | TestStream().add_elements(keyed) | "Unbounded" >> WindowedMetricStats(20, 10, 60)
    )
    assert type(bounded.windowing.triggerfn).__name__ == "DefaultTrigger"
    assert type(unbounded.windowing.triggerfn).__name__ == "AfterWatermark"


def _reference_windows(records, duration_s, period_s) -> dict:
    """(window start, count, sum) per window with Beam's own SlidingWindows, in batch."""
    _OUT["reference"] = []
    with TestPipeline() as p:
        got = (
            p
            | beam.Create([beam.window.TimestampedValue(r, r.timestamp_us / US) for r in records])
            | beam.WindowInto(beam.window.SlidingWindows(duration_s, period_s))
            | beam.Map(lambda r: r.value)
            | beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
            | beam.Map(lambda vs: (len(vs), sum(vs)))
            | beam.ParDo(_WithStart())
        )
        got | beam.Map(_collect, "reference")
    return dict(_OUT.pop("reference"))


class _WithWindow(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam):
        yield {**element, "in_window": (win.start.micros, win.end.micros)}


class _WithStart(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam):
        yield win.start.micros, element


@pytest.mark.parametrize("duration_s, period_s", [(60, 10), (60, 25), (7.5, 2.5)])
def test_batches_of_records_land_in_the_same_windows_as_beams_sliding_windows(
    duration_s, period_s
) -> None:
    """Records of a key passed as lists (the pipeline's shape) or one by one, against
    Beam's SlidingWindows: same windows, counts and sums, also where the period does
    not divide the duration (slots of their greatest common divisor)."""
    rng = random.Random(7)
    records = [_rec("cpu", T0 + rng.uniform(-100, 100), float(i)) for i in range(300)]
    want = _reference_windows(records, duration_s, period_s)
    key_of = series_id("cpu", {})
    batches = [records[i : i + 37] for i in range(0, len(records), 37)]
    for shape, elements in (
        ("lists", [(key_of, batch) for batch in batches]),
        ("records", [(key_of, r) for r in records]),
    ):
        _OUT[shape] = []
        with TestPipeline() as p:
            _ = (
                p
                | f"Create{shape}" >> beam.Create(elements)
                | WindowedMetricStats(duration_s, period_s)
                | beam.ParDo(_WithWindow())
                | beam.Map(_collect, shape)
            )
        out = _OUT.pop(shape)
        # Each result is in its own sliding window (not the slot it was combined in).
        assert all(o["in_window"] == (o["window_start"], o["window_end"]) for o in out)
        assert {o["window_end"] - o["window_start"] for o in out} == {int(duration_s * US)}
        got = {o["window_start"]: (o["count"], o["sum"]) for o in out}
        assert got.keys() == want.keys(), shape
        for start, (count, total) in want.items():
            assert got[start][0] == count and got[start][1] == pytest.approx(total), shape


def _panes_of(stream: TestStream, key: str) -> dict[int, list[tuple[int, float]]]:
    """Streams into 20 s windows every 10 s, 60 s lateness; (count, sum) of each pane
    per window start (seconds after T0), in firing order."""
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    _OUT[key] = []
    with TestPipeline(options=options) as p:
        stats = p | stream | WindowedMetricStats(20, 10, allowed_lateness_s=60)
        _ = stats | beam.Map(_collect, key)
    panes: dict[int, list[tuple[int, float]]] = {}
    for o in _OUT.pop(key):
        panes.setdefault((o["window_start"] // US) - T0, []).append((o["count"], o["sum"]))
    return panes


def test_a_late_batch_updates_its_windows_and_a_too_late_one_is_dropped() -> None:
    """Lists of records stream like single records: an accumulated late pane within
    the allowed lateness; nothing for windows already expired."""
    key_of = series_id("cpu", {})
    stream = TestStream().add_elements(
        [beam.window.TimestampedValue((key_of, [_rec("cpu", T0 + 1, 1.0)]), T0 + 1)]
    )
    stream = stream.advance_watermark_to(T0 + 45)  # past [T0-10, T0+10) and [T0, T0+20)
    late = [_rec("cpu", T0 + 3, 8.0), _rec("cpu", T0 + 12, 2.0)]
    stream = stream.add_elements([beam.window.TimestampedValue((key_of, late), T0 + 3)])
    stream = stream.advance_watermark_to(T0 + 100)  # [T0+10, T0+30) expires (lateness 60)
    too_late = [_rec("cpu", T0 + 15, 100.0)]
    stream = stream.add_elements([beam.window.TimestampedValue((key_of, too_late), T0 + 15)])
    panes = _panes_of(stream, "late-batch")
    assert panes == {
        -10: [(1, 1.0), (2, 9.0)],
        0: [(1, 1.0), (3, 11.0)],
        10: [(1, 2.0)],  # a late pane of the +12 s record; the +15 s one came too late
    }


def test_a_window_fires_once_when_the_watermark_passes_its_end_not_before() -> None:
    """The watermark inside [T0, T0+20) (at T0+12): a record at T0+15 is still on time
    there, so that window has one pane with both records; [T0-10, T0+10) has ended."""
    key_of = series_id("cpu", {})
    stream = TestStream().add_elements(
        [beam.window.TimestampedValue((key_of, [_rec("cpu", T0 + 1, 1.0)]), T0 + 1)]
    )
    stream = stream.advance_watermark_to(T0 + 12)
    stream = stream.add_elements(
        [beam.window.TimestampedValue((key_of, [_rec("cpu", T0 + 15, 2.0)]), T0 + 15)]
    )
    panes = _panes_of(stream, "on-time")
    assert panes == {-10: [(1, 1.0)], 0: [(2, 3.0)], 10: [(1, 2.0)]}
