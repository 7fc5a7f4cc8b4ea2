"""Per-window statistics of metric samples, and Prometheus's ``rate()``.

``MetricStatsFn`` is a CombineFn over ``MetricRecord``s of one key (a metric
name, optionally with grouped labels) in one window. It keeps the window's
samples (value, time, series): percentiles are exact (linear interpolation
between closest ranks, as Prometheus's ``quantile_over_time`` and numpy's
default), and ``rate()`` needs every sample to see counter resets. Memory per
key and window is proportional to its samples: at Prometheus scrape intervals
(seconds) a minute-long window holds a handful per series.

Semantics:

* NaN samples (Prometheus writes ``"NaN"``; staleness markers are NaN too)
  are excluded from every statistic and counted in ``count_nan``. ``+Inf`` and
  ``-Inf`` are values like any other. With no non-NaN sample, the statistics
  are ``None``.
* ``last`` is the value of the latest non-NaN sample by event time (ties:
  the larger value, so the result does not depend on arrival order).
* ``rate`` follows Prometheus's ``extrapolatedRate`` (promql/functions.go)
  per series (the full label set), over the window as the range: the increase
  from the first to the last sample with counter resets added back (a drop
  means the counter restarted from 0), extrapolated towards the window's
  bounds (at most half an average sample interval beyond the samples, never
  below zero for a counter), divided by the window's length in seconds.
  A series needs two samples in the window to have a rate. When a key merges
  several series (labels not grouped), ``rate`` is the sum of their rates,
  like ``sum(rate(m[d]))``. One simplification: Prometheus ranges are
  ``(start, end]``, Beam windows ``[start, end)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from beamstream.transforms.prometheus_records import MetricRecord, split_series

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def is_counter(name: str, pattern: str | re.Pattern[str] | None = None) -> bool:
    """Counters by Prometheus naming convention, or matching ``pattern`` (re.search)."""
    if name.endswith(COUNTER_SUFFIXES):
        return True
    return bool(pattern) and re.search(pattern, name) is not None  # type: ignore[arg-type]


# One sample: (event time in µs, value, series). A plain tuple, not a NamedTuple:
# Beam's coder writes tuples of numbers and text natively but pickles a
# NamedTuple one call per sample, and samples cross every shuffle.
Sample = tuple[int, float, str]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks of an ascending, non-empty sequence."""
    rank = q * (len(ordered) - 1)
    lower = math.floor(rank)
    upper = min(lower + 1, len(ordered) - 1)
    weight = rank - lower
    if weight == 0 or ordered[lower] == ordered[upper]:
        return ordered[lower]
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


class RateParts(NamedTuple):
    """What ``extrapolated_rate`` needs of one series' samples in a window."""

    first_us: int
    first_value: float
    last_us: int
    increase: float  # last - first, with counter resets added back
    samples: int


def rate_parts(samples: Iterable[Sample]) -> RateParts | None:
    """Increase of one series' counter samples, resets included; None below 2 samples."""
    ordered = sorted((t, value) for t, value, _ in samples if not math.isnan(value))
    if len(ordered) < 2:
        return None
    increase = ordered[-1][1] - ordered[0][1]
    previous = ordered[0][1]
    for _, value in ordered[1:]:
        if value < previous:  # a reset: the counter restarted from zero
            increase += previous
        previous = value
    return RateParts(ordered[0][0], ordered[0][1], ordered[-1][0], increase, len(ordered))


def extrapolated_rate(parts: RateParts, range_start_us: int, range_end_us: int) -> float:
    """Per-second rate of one series as Prometheus's rate() computes it over the range."""
    sampled = (parts.last_us - parts.first_us) / 1e6
    if sampled <= 0:
        return 0.0
    to_start = (parts.first_us - range_start_us) / 1e6
    to_end = (range_end_us - parts.last_us) / 1e6
    average_interval = sampled / (parts.samples - 1)
    result = parts.increase
    if result > 0 and parts.first_value >= 0:
        # A counter cannot be extrapolated below zero before the first sample.
        to_zero = sampled * (parts.first_value / result)
        to_start = min(to_start, to_zero)
    threshold = average_interval * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_interval / 2
    interval += to_end if to_end < threshold else average_interval / 2
    return result * (interval / sampled) / ((range_end_us - range_start_us) / 1e6)


class MetricStatsFn(beam.CombineFn):
    """Samples of one key and window → count, sum, min, max, mean, last, percentiles.

    Inputs are lists of samples (``FoldIntoWindows``' partials), so that a batch
    of records reaches the combine as a few elements rather than one per
    record and window.

    The output also carries ``rate_parts`` (per series) when ``counter`` says
    the key is a counter; ``window_rate`` turns them into ``rate`` once the
    window is known (a CombineFn does not see its window).
    """

    def __init__(self, counter_pattern: str | None = None):
        self._pattern = counter_pattern

    def create_accumulator(self) -> list[Sample]:
        return []

    def add_input(self, accumulator: list[Sample], samples: list[Sample]) -> list[Sample]:
        accumulator.extend(samples)
        return accumulator

    def add_inputs(self, accumulator, partials):
        for samples in partials:
            accumulator.extend(samples)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[Sample]]) -> list[Sample]:
        merged: list[Sample] = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        return merged

    def compact(self, accumulator: list[Sample]) -> list[Sample]:
        return accumulator

    def extract_output(self, accumulator: list[Sample]) -> dict[str, Any]:
        return summarize(accumulator)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Statistics of samples (see the module docstring), plus per-series rate parts."""
    values = sorted(value for _, value, _ in samples if not math.isnan(value))
    out: dict[str, Any] = {"count": len(values), "count_nan": len(samples) - len(values)}
    if values:
        total = math.fsum(values) if all(map(math.isfinite, values)) else sum(values)
        latest = max((t, value) for t, value, _ in samples if not math.isnan(value))
        out.update(
            sum=total,
            min=values[0],
            max=values[-1],
            mean=total / len(values),
            last=latest[1],
        )
        for label, q in PERCENTILES:
            out[label] = percentile(values, q)
    else:
        out.update({k: None for k in ("sum", "min", "max", "mean", "last")})
        out.update({label: None for label, _ in PERCENTILES})
    by_series: dict[str, list[Sample]] = {}
    for s in samples:
        by_series.setdefault(s[2], []).append(s)
    parts = [rate_parts(group) for group in by_series.values()]
    out["rate_parts"] = [p for p in parts if p is not None]
    return out


def window_rate(stats: dict[str, Any], start_us: int, end_us: int) -> float | None:
    """``sum(rate())`` over the series in ``stats`` for the window [start, end); None if none."""
    parts = stats.get("rate_parts") or []
    if not parts:
        return None
    return sum(extrapolated_rate(RateParts(*p), start_us, end_us) for p in parts)


class _WindowStats(beam.DoFn):
    """Adds the window bounds, the key's name and grouped labels, and ``rate`` for counters.

    The result goes out in its sliding window ``[start, start + duration)``.
    """

    def __init__(self, counter_pattern: str | None, duration_us: int):
        self._pattern = counter_pattern
        self._duration = duration_us

    def process(
        self,
        keyed,
        timestamp=beam.DoFn.TimestampParam,
        pane=beam.DoFn.PaneInfoParam,
    ) -> Iterable[WindowedValue]:
        (key, start), stats = keyed
        name, labels = split_series(key)
        end = start + self._duration
        out: dict[str, Any] = {
            "name": name,
            "labels": labels,
            "window_start": start,
            "window_end": end,
        }
        out.update((k, v) for k, v in stats.items() if k != "rate_parts")
        if is_counter(name, self._pattern):
            out["rate"] = window_rate(stats, start, end)
        # In its sliding window again, not the slot it was combined in, so that
        # sinks naming files or rows by window see the statistics' own window.
        sliding = window.IntervalWindow(Timestamp(micros=start), Timestamp(micros=end))
        yield WindowedValue(out, timestamp, (sliding,), pane)


def slot_us(duration_us: int, period_us: int) -> int:
    """The longest span whose records all fall in the same sliding windows.

    Windows start at multiples of the period and last the duration, so any
    span aligned to the greatest common divisor of the two lies in exactly
    the windows its start lies in (60 s windows every 10 s: 10 s slots).
    """
    return math.gcd(duration_us, period_us)


KeyedRecords = tuple[str, MetricRecord | Sequence[MetricRecord]]


class FoldIntoWindows(beam.DoFn):
    """``(key, record or records)`` → ``((key, window start), [Sample, ...])`` per window.

    Why not ``SlidingWindows``: it makes every record an element of each of
    its windows (six for 60 s windows every 10 s), and Beam's per-element cost
    is most of a run (design.md); and under one key Beam's trigger driver
    scans all the key's windows at each timer, quadratic in a run's windows.
    So records are folded into slots (``slot_us``) whose records share their
    windows, and each slot's samples are sent once per window, keyed by the
    window's start: each key holds one window, as in ``FrameMetrics``.

    Each copy is stamped in the last slot of its window, so that it lands in
    the fixed window of ``slot_us`` that ends where the sliding window ends:
    it fires, and expires for allowed lateness, exactly when the sliding
    window would.
    """

    def __init__(self, duration_us: int, period_us: int):
        self._duration = duration_us
        self._period = period_us
        self._slot = slot_us(duration_us, period_us)

    def process(self, keyed: KeyedRecords) -> Iterable[window.TimestampedValue]:
        key, records = keyed
        if isinstance(records, MetricRecord):
            records = (records,)
        slot, period, duration = self._slot, self._period, self._duration
        slots: dict[int, list[Sample]] = {}
        for record in records:
            t = record.timestamp_us
            start = t - t % slot
            samples = slots.get(start)
            if samples is None:
                samples = slots[start] = []
            samples.append((t, record.value, record.series))
        for start, samples in slots.items():
            first = start - start % period  # the latest window holding the slot
            for window_start in range(first, start - duration, -period):
                stamp = Timestamp(micros=window_start + duration - slot)
                yield window.TimestampedValue(((key, window_start), samples), stamp)


class WindowedMetricStats(beam.PTransform):
    """``(key, MetricRecord)`` → per key and sliding window, the statistics record.

    The input may also hold ``(key, [MetricRecord, ...])``, a batch's records
    of one key (the metrics pipeline's shape), which is much faster.

    Keys come from ``prometheus_records.series_id(name, grouped_labels)``. Windows slide by
    ``period_s`` over ``duration_s``; a window fires when the watermark passes
    its end and again (accumulating) for each record arriving within
    ``allowed_lateness_s``, so the last record per (key, window) is final.
    Window bounds in the output are epoch microseconds.
    """

    def __init__(
        self,
        duration_s: float = 60,
        period_s: float = 10,
        allowed_lateness_s: float = 0,
        counter_pattern: str | None = None,
    ):
        super().__init__()
        self._duration = duration_s
        self._period = period_s
        self._lateness = allowed_lateness_s
        self._pattern = counter_pattern
        # The windows results are in, for a local streaming read's commits
        # (runners.direct.finality): the inner FixedWindows are only slots.
        self.results_windowing = (
            window.SlidingWindows(duration_s, period_s),
            Duration.of(allowed_lateness_s).micros,
        )

    def expand(self, keyed):
        # Late panes need Beam's trigger driver, which costs ~200 us per record and
        # window; a bounded input has no late data (its watermark passes every window
        # only at the end), so it gets the default trigger and the same one pane.
        late_panes: dict[str, Any] = {}
        if not keyed.is_bounded:
            late_panes = dict(
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            )
        duration_us = Duration.of(self._duration).micros
        period_us = Duration.of(self._period).micros
        return (
            keyed
            | "Fold" >> beam.ParDo(FoldIntoWindows(duration_us, period_us))
            | "Window"
            >> beam.WindowInto(
                window.FixedWindows(Duration(micros=slot_us(duration_us, period_us))),
                allowed_lateness=Duration(micros=int(self._lateness * 1_000_000)),
                **late_panes,
            )
            | "Stats" >> beam.CombinePerKey(MetricStatsFn(self._pattern))
            | "WithWindow" >> beam.ParDo(_WindowStats(self._pattern, duration_us))
        )
