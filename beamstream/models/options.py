"""Pipeline options that configure a model for ``RunInference`` (infer, detect)."""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beamstream import runners
from beamstream.argtypes import non_negative_int, positive_int
from beamstream.models.artifacts import verified_bytes
from beamstream.models.predict import Predict

# Batch runs: big batches amortise Beam's per-batch and per-element costs.
BATCH_MAX_BATCH_SIZE = 2000


class ModelOptions(PipelineOptions):
    """Which model serves the requests, and how ``RunInference`` batches them."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--model",
            help="Model directory (model.joblib + metadata.json), local or gs://; "
            "written by `beamstream train`.",
        )
        parser.add_argument(
            "--min_batch_size",
            type=positive_int,
            default=None,
            help="Unused: requests reach the model in the source's batches "
            "(accepted so existing command lines and templates still run).",
        )
        parser.add_argument(
            "--max_batch_size",
            type=positive_int,
            default=None,
            help="Most requests per model call (default 2000 for batch runs, "
            "Beam's default when streaming).",
        )
        parser.add_argument(
            "--model_updates",
            default=None,
            help="Streaming on Dataflow/Flink/Prism: file pattern of new model versions, "
            "e.g. gs://b/models/*/metadata.json; the newest is swapped in without a restart.",
        )
        parser.add_argument(
            "--model_update_interval",
            type=positive_int,
            default=300,
            help="Seconds between checks of --model_updates.",
        )
        parser.add_argument(
            "--model_threads",
            type=non_negative_int,
            default=1,
            help="BLAS/OpenMP threads per worker process for the model (0: the "
            "libraries' default, one per core). One is fastest here: batches are "
            "small matrices, and idle pool threads spin on the cores that read, "
            "parse and write.",
        )
        parser.add_argument(
            "--max_batch_duration_secs",
            type=positive_int,
            default=None,
            help="Unused: requests reach the model in the source's batches, which "
            "wait for nothing (accepted so existing command lines and templates still run).",
        )


def predict_transform(options: PipelineOptions, **kwargs: Any) -> Predict:
    """``Predict`` for ``--model``, verified here so a bad model fails before any worker starts."""
    m = options.view_as(ModelOptions)
    _, metadata = verified_bytes(m.model)
    max_batch = m.max_batch_size
    if max_batch is None and not options.view_as(StandardOptions).streaming:
        max_batch = BATCH_MAX_BATCH_SIZE
    min_batch = m.min_batch_size
    if min_batch is not None and max_batch is not None and min_batch > max_batch:
        max_batch = min_batch
    return Predict(
        m.model,
        metadata,
        min_batch_size=min_batch,
        max_batch_size=max_batch,
        max_batch_duration_secs=m.max_batch_duration_secs,
        watch_pattern=m.model_updates,
        watch_interval_s=float(m.model_update_interval),
        model_threads=m.model_threads,
        **kwargs,
    )


def model_updates_unsupported(options: PipelineOptions) -> str | None:
    """Why ``--model_updates`` cannot work with these options, or None if it can."""
    if not options.view_as(ModelOptions).model_updates:
        return None
    standard = options.view_as(StandardOptions)
    runner = runners.runner_name(options)
    if runner in runners.DIRECT_RUNNERS:
        return f"--model_updates needs Dataflow, Flink or Prism (not the {runner})"
    if not standard.streaming:
        return "--model_updates needs --streaming (the watch never ends)"
    return None
