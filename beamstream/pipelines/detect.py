"""``beamstream detect``: metric aggregates in, anomalies out.

Reads the metric aggregation pipeline's records (``beamstream metrics``:
``{"name", "labels", "window_start", "window_end", "count", "mean", "min",
"max", "p50", "p90", "p99", ...}``) from ``--source``, scores each with the
IsolationForest in ``--model`` (``beamstream train anomaly``) through Beam's
``RunInference``, and writes the anomalous ones to ``--sink`` as the
aggregate plus ``{"id", "score", "anomaly": true, "model", "latency_ms"}``.
``score`` is the forest's ``decision_function``: below 0 is anomalous, more
negative is more so. ``--all_scores`` writes every aggregate with its score.
``id`` is the record's own ``id`` or its source position (topic[partition]@offset,
file@byte). Aggregates lacking a numeric feature go to ``--dead_letter_sink``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from beamstream.launch.help import pipeline_main
from beamstream.launch.options import (
    DeadLetterOptions,
    KafkaClientOptions,
    SinkOptions,
    SourceOptions,
)
from beamstream.launch.run import OptionsError, parse_options, run_pipeline
from beamstream.models.options import (
    ModelOptions,
    model_updates_unsupported,
    predict_transform,
)
from beamstream.pipelines.infer import score_stream

REQUIRED = ("source", "sink", "model")


class DetectOptions(PipelineOptions):
    """Options only the detect pipeline has (--source/--sink are shared)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--all_scores",
            action="store_true",
            default=False,
            help="Write every aggregate with its score, not only the anomalies.",
        )


OPTION_CLASSES = (
    SourceOptions,
    SinkOptions,
    DetectOptions,
    ModelOptions,
    DeadLetterOptions,
    KafkaClientOptions,
)


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> dict[str, beam.PCollection]:
    o = options.view_as(DetectOptions)
    predict = predict_transform(
        options, keep_record=True, only_anomalies=not o.all_scores, encoded=True
    )
    if predict.kind != "detector":
        raise OptionsError(
            f"--model {options.view_as(ModelOptions).model} is a {predict.kind}; "
            "detect needs an anomaly model (beamstream train anomaly)"
        )
    return score_stream(pipeline, options, predict, ("ReadAggregates", "Score", "WriteAnomalies"))


def run(argv: Sequence[str] | None = None, test_pipeline=None) -> PipelineResult:
    options = parse_options(argv, REQUIRED)
    problem = model_updates_unsupported(options)
    if problem:
        raise OptionsError(problem)
    return run_pipeline(build, options, test_pipeline)


def main(argv: Sequence[str]) -> int:
    return pipeline_main(sys.modules[__name__], argv)
