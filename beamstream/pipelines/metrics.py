"""``beamstream metrics``: Prometheus-style records → per-window statistics and last N.

Records ``{"name", "labels", "timestamp", "value"}`` from ``--source`` are
keyed by metric name, plus the labels named in ``--group_by_labels``. Per key
and sliding event-time window (``--duration`` seconds, every ``--period``
seconds) it writes to ``--sink``

    {"name", "labels", "window_start", "window_end", "count", "count_nan",
     "sum", "min", "max", "mean", "last", "p50", "p90", "p99"[, "rate"]}

``rate`` (per second, like Prometheus's ``rate()``, counter resets included)
for counters: names ending ``_total``, ``_count``, ``_sum``, ``_bucket`` or
matching ``--counter_pattern``. NaN values are left out of the statistics and
counted in ``count_nan``. With ``--last_n N --last_n_sink URI`` it also keeps
the last N records per key and writes ``{"name", "labels", "records",
"as_of"}`` whenever they change.

Sinks are message URIs (Kafka, Pub/Sub, files: times as ``--output_time_format``
epoch_ms or iso, non-finite values as "NaN"/"+Inf"/"-Inf") or databases
(``sqlite:///``, ``postgresql://``, ``mysql://``): tables ``metric_stats`` and
``metric_last_n``, upserted so replays do not duplicate, read by
``beamstream query``. Bad and too-late records go to ``--dead_letter_sink``.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult
from apache_beam.transforms import window

from beamstream.argtypes import positive, positive_int
from beamstream.dead_letter import DEAD_LETTER_TAG
from beamstream.io.sources import ReadMessages
from beamstream.launch.help import pipeline_main
from beamstream.launch.options import (
    DeadLetterOptions,
    EventTimeOptions,
    KafkaClientOptions,
    SinkOptions,
    SourceOptions,
    WindowingOptions,
    event_time_policy,
    kafka_config,
    sink_uri,
)
from beamstream.launch.outputs import write_outputs
from beamstream.launch.run import OptionsError, parse_options, run_pipeline
from beamstream.pipelines.metric_results import WriteMetricResults
from beamstream.transforms.last_n import KeepLastN
from beamstream.transforms.metric_stats import WindowedMetricStats
from beamstream.transforms.prometheus_records import (
    MetricRecord,
    ParseMetricRecords,
    group_by_key,
    series_id,
)

REQUIRED = ("source", "sink")
DEFAULT_DURATION_S = 60.0
DEFAULT_PERIOD_S = 10.0
def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from None
    return text


class MetricsOptions(PipelineOptions):
    """Options only the metrics pipeline has (shared ones are in options.py)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--duration",
            type=positive,
            default=DEFAULT_DURATION_S,
            help=f"Window length in seconds (default {DEFAULT_DURATION_S:g}).",
        )
        parser.add_argument(
            "--period",
            type=positive,
            default=DEFAULT_PERIOD_S,
            help=f"Seconds between window starts (default {DEFAULT_PERIOD_S:g}).",
        )
        parser.add_argument(
            "--group_by_labels",
            default="",
            help="Comma-separated labels added to the key, e.g. instance,job (default: name only).",
        )
        parser.add_argument(
            "--counter_pattern",
            type=_regex,
            default=None,
            help="Regex (searched in the name) marking counters besides "
            "_total/_count/_sum/_bucket.",
        )
        parser.add_argument(
            "--last_n",
            type=positive_int,
            default=None,
            help="Keep the last N records per key (needs --last_n_sink).",
        )
        parser.add_argument(
            "--last_n_sink", type=sink_uri, default=None, help="Where the last-N records go."
        )


OPTION_CLASSES = (
    SourceOptions,
    SinkOptions,
    MetricsOptions,
    WindowingOptions,
    EventTimeOptions,
    DeadLetterOptions,
    KafkaClientOptions,
)


def grouped_labels(text: str) -> tuple[str, ...]:
    return tuple(label.strip() for label in text.split(",") if label.strip())


def record_key(record: MetricRecord, group_by: tuple[str, ...]) -> str:
    """The name and the grouped labels the record has."""
    return series_id(record.name, {k: record.labels[k] for k in group_by if k in record.labels})


def key_records(records: list[MetricRecord], group_by: tuple[str, ...]):
    """A batch's records as ``(key, [records])`` per key (see ``record_key``)."""
    return group_by_key(records, functools.partial(record_key, group_by=group_by))


# --------------------------------------------------------------------------- output shapes


class Settings(NamedTuple):
    """The metrics pipeline's options, validated, with its defaults applied."""

    source: str
    sink: str
    duration: float
    period: float
    allowed_lateness: float
    group_by: tuple[str, ...]
    counter_pattern: str | None
    last_n: int | None
    last_n_sink: str | None
    output_time_format: str


def validate(options: PipelineOptions) -> Settings:
    o = options.view_as(MetricsOptions)
    duration = float(o.duration)
    period = float(o.period)
    if duration <= 0 or period <= 0:
        raise OptionsError("--duration and --period must be > 0")
    if period > duration:
        raise OptionsError(f"--period {period:g} is longer than --duration {duration:g}")
    if (o.last_n is None) != (o.last_n_sink is None):
        raise OptionsError("--last_n and --last_n_sink go together")
    windowing = options.view_as(WindowingOptions)
    time_format = windowing.output_time_format or "epoch_ms"
    if time_format not in ("epoch", "epoch_ms", "iso"):
        raise OptionsError(f"--output_time_format {time_format}: use epoch_ms or iso")
    return Settings(
        source=options.view_as(SourceOptions).source,
        sink=options.view_as(SinkOptions).sink,
        duration=duration,
        period=period,
        allowed_lateness=windowing.allowed_lateness,
        group_by=grouped_labels(o.group_by_labels),
        counter_pattern=o.counter_pattern,
        last_n=o.last_n,
        last_n_sink=o.last_n_sink,
        output_time_format="epoch_ms" if time_format == "epoch" else time_format,
    )


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> dict[str, Any]:
    o = validate(options)
    events = event_time_policy(options)
    kafka = kafka_config(options)
    group_by = o.group_by
    read = ReadMessages(
        o.source,
        batched=True,
        event_time=events,
        kafka_config=kafka,
    )
    parsed = (
        pipeline
        | "ReadRecords" >> read
        | "Parse"
        >> beam.ParDo(
            ParseMetricRecords(
                event_time_field=events.field,
                time_format=events.time_format,
                period_us=int(o.period * 1_000_000),
                duration_us=int(o.duration * 1_000_000),
                allowed_lateness_us=int(o.allowed_lateness * 1_000_000),
                batches=True,
            )
        ).with_outputs(DEAD_LETTER_TAG, main="records")
    )
    keyed = parsed.records | "Key" >> beam.FlatMap(key_records, group_by)
    stats = keyed | "WindowStats" >> WindowedMetricStats(
        o.duration, o.period, o.allowed_lateness, o.counter_pattern
    )
    dead_letters = [parsed[DEAD_LETTER_TAG]]
    write_stats = WriteMetricResults(o.sink, "stats", o.output_time_format, kafka)
    writes = [(stats, "WriteStats", write_stats)]
    outputs: dict[str, Any] = {"stats": stats}
    if o.last_n and o.last_n_sink:
        last = keyed | "KeepLastN" >> KeepLastN(o.last_n)
        outputs["last_n"] = last
        write = WriteMetricResults(o.last_n_sink, "last_n", o.output_time_format, kafka)
        writes.append((last, "WriteLastN", write))
    written = []
    for pcoll, label, write in writes:
        written.append(pcoll | label >> write)
        if write.returns_dead_letters:
            dead_letters.append(written[-1])
    dead = [
        d | f"DeadLettersGlobal{n}" >> beam.WindowInto(window.GlobalWindows())
        for n, d in enumerate(dead_letters)
    ] | "AllDeadLetters" >> beam.Flatten()
    outputs["dead_letters"] = dead
    sinks = {
        "dead_letters": ("WriteDeadLetters", options.view_as(DeadLetterOptions).dead_letter_sink)
    }
    write_outputs(outputs, sinks, kafka)
    return outputs


def run(argv: Sequence[str] | None = None, test_pipeline=None) -> PipelineResult:
    options = parse_options(argv, REQUIRED)
    validate(options)
    return run_pipeline(build, options, test_pipeline)


def main(argv: Sequence[str]) -> int:
    return pipeline_main(sys.modules[__name__], argv)
