"""``beamstream frames``: frames per second and unique users per minute.

Frames ``{"timestamp": ..., "uid": ...}`` (``ts`` accepted; epoch s, epoch ms
or ISO-8601) from ``--source`` become

* per-second records ``{"window_start", "window_end", "frames", "pane"}``
* per-minute records ``{"window_start", "window_end", "unique_users", "pane"}``

in event-time fixed windows aligned to the epoch, emitted when the watermark
passes the window end (``ON_TIME``) and updated by accumulating ``LATE`` panes
for frames within ``--allowed_lateness``. Frames later than that, and frames
that are not valid, go to ``--dead_letter_sink`` with the reason. The last
record per ``window_start`` is the final answer. ``--fill_gaps`` reports
seconds without frames as 0 between the first and last frame seen.

Runs in batch on files or bounded Kafka reads, and streams with
``--streaming`` (or any never-ending Kafka / Pub/Sub source); on the
DirectRunner streaming reads go through the local live feed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from beamstream.io.sources import ReadMessages
from beamstream.launch.help import pipeline_main
from beamstream.launch.options import (
    DeadLetterOptions,
    EventTimeOptions,
    KafkaClientOptions,
    SourceOptions,
    WindowingOptions,
    event_time_policy,
    kafka_config,
    sink_uri,
)
from beamstream.launch.outputs import write_outputs
from beamstream.launch.run import parse_options, run_pipeline
from beamstream.transforms.frame_metrics import FrameMetrics

REQUIRED = ("source", "per_second_sink", "per_minute_sink")


class FrameOptions(PipelineOptions):
    """Options only the frames pipeline has (shared ones are in options.py)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--per_second_sink", type=sink_uri, help="Where per-second counts go.")
        parser.add_argument(
            "--per_minute_sink", type=sink_uri, help="Where per-minute unique users go."
        )
        parser.add_argument(
            "--passthrough_sink",
            type=sink_uri,
            default=None,
            help="Optional: valid, normalized frames re-published here.",
        )
        parser.add_argument(
            "--unique_users",
            choices=("exact", "approximate"),
            default="exact",
            help="approximate: HyperLogLog, about 1.6%% standard error.",
        )
        parser.add_argument(
            "--fill_gaps",
            action="store_true",
            default=False,
            help="Report seconds without frames as 0 between the first and last frame.",
        )


OPTION_CLASSES = (
    SourceOptions,
    FrameOptions,
    WindowingOptions,
    EventTimeOptions,
    DeadLetterOptions,
    KafkaClientOptions,
)


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> dict[str, beam.PCollection]:
    o = options.view_as(FrameOptions)
    source = options.view_as(SourceOptions).source
    windowing = options.view_as(WindowingOptions)
    output_time_format = windowing.output_time_format or "epoch"
    events = event_time_policy(options)
    metrics = FrameMetrics(
        allowed_lateness_s=windowing.allowed_lateness,
        event_time_field=events.field or "timestamp",
        time_format=events.time_format,
        unique_users=o.unique_users,
        fill_gaps=o.fill_gaps,
        output_time_format=output_time_format,
        passthrough=o.passthrough_sink is not None,
    )
    kafka = kafka_config(options)
    read = ReadMessages(
        source,
        batched=FrameMetrics.wants_batches,
        event_time=events,
        kafka_config=kafka,
    )
    outputs = pipeline | "ReadFrames" >> read | "FrameMetrics" >> metrics
    sinks = {  # output -> (step label, sink URI)
        "per_second": ("WritePerSecond", o.per_second_sink),
        "per_minute": ("WritePerMinute", o.per_minute_sink),
        "dead_letters": ("WriteDeadLetters", options.view_as(DeadLetterOptions).dead_letter_sink),
        "frames": ("WritePassthrough", o.passthrough_sink),
    }
    write_outputs(outputs, sinks, kafka)
    return outputs


def run(argv: Sequence[str] | None = None, test_pipeline=None) -> PipelineResult:
    options = parse_options(argv, REQUIRED)
    return run_pipeline(build, options, test_pipeline)


def main(argv: Sequence[str]) -> int:
    return pipeline_main(sys.modules[__name__], argv)
