"""A scikit-learn ``ModelHandler`` for Beam's ``RunInference`` that loads verified models.

``RunInference`` owns the model lifecycle: it calls :meth:`load_model` once
per worker process through Beam's ``shared.Shared`` handle (in ``setup``, not
per element or bundle), batches elements with ``BatchElements`` between
``min_batch_size`` and ``max_batch_size``, and swaps the model when a
``model_metadata_pcoll`` side input announces a new path
(:meth:`update_model_path`). :func:`keyed_handler` wraps the handler in
Beam's ``KeyedModelHandler`` so request ids travel with their predictions.

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
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult

from beamstream.models.artifacts import METADATA_FILE, MODEL_FILE, ModelMetadata, load_model


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


class VerifiedSklearnModelHandler(ModelHandler[Example, PredictionResult, LoadedModel]):
    """Examples -> ``PredictionResult``: class probabilities or an anomaly score.

    Classifiers (``kind == "classifier"``, numpy rows) give ``predict_proba``
    rows; detectors (``(name, row)`` pairs) give ``decision_function`` scores
    (below 0 = anomalous).
    """

    def __init__(
        self,
        model_dir: str,
        expected: ModelMetadata | None = None,
        *,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        max_batch_duration_secs: int | None = None,
    ):
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
        )
        self._model_dir = model_dir
        self._expected = expected

    @property
    def model_dir(self) -> str:
        return self._model_dir

    def load_model(self) -> LoadedModel:
        estimator, metadata = load_model(self._model_dir, self._expected)
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

    def get_metrics_namespace(self) -> str:
        return "BeamstreamSklearn"


def keyed_handler(
    model_dir: str,
    expected: ModelMetadata | None = None,
    *,
    min_batch_size: int | None = None,
    max_batch_size: int | None = None,
    max_batch_duration_secs: int | None = None,
) -> KeyedModelHandler:
    """``(key, row)`` in, ``(key, PredictionResult)`` out."""
    return KeyedModelHandler(
        VerifiedSklearnModelHandler(
            model_dir,
            expected,
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
        )
    )
