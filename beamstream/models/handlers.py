"""A scikit-learn ``ModelHandler`` for Beam's ``RunInference`` that loads verified models.

``RunInference`` owns the model lifecycle: it calls :meth:`load_model` once
per worker process through Beam's ``shared.Shared`` handle (in ``setup``, not
per element or bundle), batches elements with ``BatchElements`` between
``min_batch_size`` and ``max_batch_size``, and swaps the model when a
``model_metadata_pcoll`` side input announces a new path
(:meth:`update_model_path`). :func:`keyed_handler` wraps the handler in
Beam's ``KeyedModelHandler`` so request ids travel with their predictions.
The pipelines use :func:`batch_handler` instead: their requests arrive in
batches from the source, already parsed into one feature matrix per batch
(``ParsedBatch``), so ``RunInference`` skips its own batching and the model
runs once per batch.

Beam ships ``SklearnModelHandlerNumpy`` for this, but its module imports
pandas at import time, which this package does not depend on; and its
``load_model`` unpickles whatever the path holds. This handler follows the
same contract (numpy rows in, ``PredictionResult`` out) and loads through
:func:`beamstream.models.artifacts.load_model`, which refuses files whose
sha256 or scikit-learn version differ from the metadata.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult
from threadpoolctl import threadpool_limits

from beamstream.models.artifacts import METADATA_FILE, MODEL_FILE, ModelMetadata, load_model
from beamstream.models.requests import ParsedBatch, PredictedBatch

ExampleT = TypeVar("ExampleT")
PredictionT = TypeVar("PredictionT")


class LoadedModel:
    """The estimator together with the metadata that vouched for it.

    A plain class: Beam's ``shared.Shared`` keeps a weak reference to it.
    """

    __slots__ = ("estimator", "metadata", "__weakref__")

    def __init__(self, estimator: Any, metadata: ModelMetadata):
        self.estimator = estimator
        self.metadata = metadata

    @property
    def model_id(self) -> str:
        return f"{self.metadata.name}:{self.metadata.version}"


# A classifier's example is a feature row; a detector's is (metric name, feature row),
# because what is normal depends on the metric (beamstream.models.anomaly).
Example = Any


class _VerifiedModelHandler(ModelHandler[ExampleT, PredictionT, LoadedModel]):
    """Loads the model in ``model_dir`` through the sha256 / version checks; swaps on update."""

    def __init__(
        self,
        model_dir: str,
        expected: ModelMetadata | None = None,
        *,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        max_batch_duration_secs: int | None = None,
        threads: int = 1,
    ):
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
        )
        self._model_dir = model_dir
        self._expected = expected
        if threads < 0:
            raise ValueError(f"threads must be 0 (the libraries' default) or more, got {threads}")
        self._threads = threads

    @property
    def model_dir(self) -> str:
        return self._model_dir

    def load_model(self) -> LoadedModel:
        estimator, metadata = load_model(self._model_dir, self._expected)
        if self._threads:
            # For the worker process, once: a limit per call would cost more
            # than a small batch's prediction. Idle BLAS/OpenMP pool threads
            # spin on the cores that read, parse and write (bench.infer on 2
            # cores: 19k -> 26k predictions/s with one thread).
            threadpool_limits(limits=self._threads)
        return LoadedModel(estimator, metadata)

    def update_model_path(self, model_path: str | None = None) -> None:
        """Side-input update: ``model_path`` is a model directory or a file in one.

        ``WatchFilePattern`` reports files; watch ``.../*/metadata.json`` (the
        metadata is written last, so a matched directory is complete).
        """
        if not model_path:
            return
        base = posixpath.basename(model_path.rstrip("/"))
        if base in (METADATA_FILE, MODEL_FILE):
            model_path = model_path.rstrip("/")[: -len(base)].rstrip("/")
        self._model_dir = model_path
        self._expected = None  # a new model vouches for itself through its own metadata

    def get_metrics_namespace(self) -> str:
        return "BeamstreamSklearn"


class VerifiedSklearnModelHandler(_VerifiedModelHandler[Example, PredictionResult]):
    """Examples -> ``PredictionResult``: class probabilities or an anomaly score.

    Classifiers (``kind == "classifier"``, numpy rows) give ``predict_proba``
    rows; detectors (``(name, row)`` pairs) give ``decision_function`` scores
    (below 0 = anomalous).
    """

    def run_inference(
        self,
        batch: Sequence[Example],
        model: LoadedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        outputs: Iterable[Any]
        if model.metadata.kind == "classifier":
            X = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
            outputs = model.estimator.predict_proba(X)
        else:
            names = [name for name, _ in batch]
            X = np.asarray([row for _, row in batch], dtype=np.float64).reshape(len(batch), -1)
            outputs = model.estimator.decision_function(X, names).tolist()
        model_id = model.model_id
        return [PredictionResult(x, y, model_id) for x, y in zip(batch, outputs)]

    def get_num_bytes(self, batch: Sequence[Example]) -> int:
        # Beam's default pickles the whole batch just to measure it.
        return sum(int(x.nbytes) if isinstance(x, np.ndarray) else int(x[1].nbytes) for x in batch)


class BatchSklearnModelHandler(_VerifiedModelHandler[ParsedBatch, PredictedBatch]):
    """``ParsedBatch`` -> ``PredictedBatch``: one model call per batch of requests.

    The batches are already made (one per source batch, see
    :class:`beamstream.models.requests.BatchParser`), so ``RunInference``
    skips its ``BatchElements`` and hands each element to :meth:`run_inference`
    as it is; its batch-size metrics count requests (``len(ParsedBatch)``).
    Classifiers give a ``predict_proba`` matrix, detectors a
    ``decision_function`` vector.
    """

    def should_skip_batching(self) -> bool:
        return True

    def run_inference(
        self,
        batch: Any,
        model: LoadedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictedBatch]:
        """``batch``: one ``ParsedBatch`` (not a sequence of examples: batching is skipped)."""
        if not isinstance(batch, ParsedBatch):
            raise TypeError(f"expected a ParsedBatch, got {type(batch).__name__}")
        if model.metadata.kind == "classifier":
            outputs = np.asarray(model.estimator.predict_proba(batch.features))
        else:
            names = batch.names if batch.names is not None else [""] * len(batch)
            outputs = np.asarray(model.estimator.decision_function(batch.features, names))
        if len(outputs) != len(batch):
            raise ValueError(f"the model gave {len(outputs)} outputs for {len(batch)} requests")
        return [PredictedBatch(batch, outputs, model.model_id)]

    def get_num_bytes(self, batch: Any) -> int:
        return int(batch.features.nbytes)


def batch_handler(
    model_dir: str, expected: ModelMetadata | None = None, *, threads: int = 1
) -> BatchSklearnModelHandler:
    """``ParsedBatch`` in, ``PredictedBatch`` out; the ids travel inside the batch."""
    return BatchSklearnModelHandler(model_dir, expected, threads=threads)


def keyed_handler(
    model_dir: str,
    expected: ModelMetadata | None = None,
    *,
    min_batch_size: int | None = None,
    max_batch_size: int | None = None,
    max_batch_duration_secs: int | None = None,
    threads: int = 1,
) -> KeyedModelHandler:
    """``(key, row)`` in, ``(key, PredictionResult)`` out."""
    return KeyedModelHandler(
        VerifiedSklearnModelHandler(
            model_dir,
            expected,
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
            threads=threads,
        )
    )
