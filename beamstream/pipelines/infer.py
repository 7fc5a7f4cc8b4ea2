"""``beamstream infer``: requests from a topic or file in, predictions out.

Requests from ``--source``::

    {"id": "...", "image": [[8 rows of 8 numbers]]}  or  {"id": "...", "features": [64 numbers]}

(for an anomaly model: metric aggregates, see ``beamstream detect``) become
responses on ``--sink``::

    {"id", "label", "probabilities", "model": {"name", "version"}, "latency_ms"}
    {"id", "score", "anomaly", "model": {...}, "latency_ms"}           (anomaly model)

through Beam's ``RunInference`` with a keyed scikit-learn handler. The model
in ``--model`` (written by ``beamstream train``) is checked against its
metadata (sha256, scikit-learn version) and loaded once per worker process.
Requests are read, parsed and predicted in the source's batches (one model
call per batch of at most ``--max_batch_size`` requests); requests of the
wrong shape or type go to ``--dead_letter_sink`` one by one, with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.sources import ReadMessages
from beamstream.launch.help import pipeline_main
from beamstream.launch.options import (
    DeadLetterOptions,
    KafkaClientOptions,
    SinkOptions,
    SourceOptions,
    kafka_config,
)
from beamstream.launch.outputs import write_outputs
from beamstream.launch.run import OptionsError, parse_options, run_pipeline
from beamstream.models.options import (
    ModelOptions,
    model_updates_unsupported,
    predict_transform,
)

REQUIRED = ("source", "sink", "model")


OPTION_CLASSES = (SourceOptions, SinkOptions, ModelOptions, DeadLetterOptions, KafkaClientOptions)
# Requests carry no event time: stamp them with the broker's (publish) time.
BROKER_TIME = EventTimePolicy(field=None)


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> dict[str, beam.PCollection]:
    labels = ("ReadRequests", "Predict", "WritePredictions")
    return score_stream(pipeline, options, predict_transform(options, encoded=True), labels)


def score_stream(
    pipeline: beam.Pipeline,
    options: PipelineOptions,
    predict: beam.PTransform,
    labels: tuple[str, str, str],
) -> dict[str, beam.PCollection]:
    """Requests from ``--source`` through ``predict`` to ``--sink`` (infer and detect).

    ``labels`` name the read, predict and write steps.
    """
    kafka = kafka_config(options)
    read_label, predict_label, write_label = labels
    # Batches, not single messages: parsing and the model then run once per batch.
    read = ReadMessages(
        options.view_as(SourceOptions).source,
        batched=True,
        event_time=BROKER_TIME,
        kafka_config=kafka,
    )
    outputs = pipeline | read_label >> read | predict_label >> predict
    sinks = {
        "predictions": (write_label, options.view_as(SinkOptions).sink),
        "dead_letters": ("WriteDeadLetters", options.view_as(DeadLetterOptions).dead_letter_sink),
    }
    write_outputs(outputs, sinks, kafka)
    return outputs


def run(argv: Sequence[str] | None = None, test_pipeline=None) -> PipelineResult:
    options = parse_options(argv, REQUIRED)
    problem = model_updates_unsupported(options)
    if problem:
        raise OptionsError(problem)
    return run_pipeline(build, options, test_pipeline)


def main(argv: Sequence[str]) -> int:
    return pipeline_main(sys.modules[__name__], argv)
