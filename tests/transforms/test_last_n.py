"""LastN: exactly the last N by event time, whatever the arrival order; emitted on change."""

from __future__ import annotations

import math

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from beamstream.transforms.last_n import KeepLastN, keep_last
from beamstream.transforms.prometheus_records import MetricRecord, series_id

T0 = 1_700_000_040
US = 1_000_000
KEY = series_id("temp", {})


def _rec(t, value=None, name="temp", **labels) -> MetricRecord:
    return MetricRecord(name, labels, int((T0 + t) * US), float(t if value is None else value))


def _run(script, n) -> list[dict]:
    """script: ("records", [MetricRecord...]) | ("lists", [[MetricRecord...]...])
    | ("watermark", seconds after T0)."""
    stream = TestStream()
    for kind, value in script:
        if kind == "watermark":
            stream = stream.advance_watermark_to(T0 + value)
        elif kind == "lists":  # one element per list, as the metrics pipeline sends a batch
            stream = stream.add_elements(
                [
                    beam.window.TimestampedValue((KEY, group), group[0].timestamp_us / US)
                    for group in value
                ]
            )
        else:
            stream = stream.add_elements(
                [
                    beam.window.TimestampedValue(
                        (series_id(r.name, {}), r), r.timestamp_us / US
                    )
                    for r in value
                ]
            )
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    key = f"run{len(_OUT)}"
    _OUT[key] = []
    with TestPipeline(options=options) as p:
        _ = p | stream | KeepLastN(n) | beam.Map(_collect, key)
    return _OUT[key]


_OUT: dict[str, list] = {}


def _collect(element, key):
    _OUT[key].append(element)


def _times(emitted: dict) -> list[float]:
    return [r["timestamp"] / US - T0 for r in emitted["records"]]


def test_keeps_exactly_the_last_n_by_event_time_with_out_of_order_arrival():
    arrivals = [_rec(t) for t in (5, 1, 9, 3, 7, 2, 8)]
    (emitted,) = _run([("records", arrivals)], n=3)
    assert _times(emitted) == [7, 8, 9]
    assert [r["value"] for r in emitted["records"]] == [7.0, 8.0, 9.0]
    assert (emitted["name"], emitted["labels"], emitted["key"]) == ("temp", {}, KEY)
    assert emitted["as_of"] == (T0 + 9) * US


def test_lists_of_records_keep_the_same_last_n_as_records_one_by_one():
    arrivals = [_rec(t) for t in (5, 1, 9, 3, 7, 2, 8, 4)]
    lists = [arrivals[0:3], arrivals[3:4], arrivals[4:8]]
    (emitted,) = _run([("lists", lists)], n=3)
    assert _times(emitted) == [7, 8, 9]
    # A later list: its old record changes nothing, its new one does.
    emitted_twice = _run(
        [("lists", lists[:2]), ("watermark", 20), ("lists", [[_rec(1), _rec(12)]])], n=3
    )
    assert [_times(e) for e in emitted_twice] == [[3, 5, 9], [5, 9, 12]]


def test_emits_when_the_records_change_and_not_otherwise():
    script = [
        ("records", [_rec(2), _rec(1)]),
        ("watermark", 10),
        ("records", [_rec(0)]),  # older than both kept: no change, no output
        ("watermark", 20),
        ("records", [_rec(15), _rec(4)]),  # 4 arrives after 15, still in the last 2
        ("watermark", 30),
        ("records", [_rec(12)]),  # older than the newest, newer than the oldest kept
        ("watermark", 40),
    ]
    emitted = _run(script, n=2)
    assert [_times(e) for e in emitted] == [[1, 2], [4, 15], [12, 15]]


def test_records_keep_their_full_labels_and_nan_values():
    emitted = _run([("records", [_rec(1, math.nan, instance="a"), _rec(2, 3.0, instance="b")])],
                   n=5)
    (only,) = emitted
    assert [r["labels"] for r in only["records"]] == [{"instance": "a"}, {"instance": "b"}]
    assert math.isnan(only["records"][0]["value"])


def test_keep_last_is_bounded_and_ignores_duplicates():
    kept: list = []
    for t in range(100):
        updated = keep_last(kept, (t, "s", float(t), {}), 4)
        assert updated is not None
        kept = updated
        assert len(kept) <= 4
    assert [k[0] for k in kept] == [96, 97, 98, 99]
    assert keep_last(kept, (99, "s", 99.0, {}), 4) is None  # a replayed record
    assert keep_last(kept, (10, "s", 10.0, {}), 4) is None  # too old
    nan_kept = keep_last([], (1, "s", math.nan, {}), 2)
    assert nan_kept is not None
    assert keep_last(nan_kept, (1, "s", math.nan, {}), 2) is None
