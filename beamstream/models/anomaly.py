"""Anomaly detector over metric aggregates (an IsolationForest).

Input records are the metric aggregation pipeline's output, e.g.
``{"name", "count", "sum", "min", "max", "mean", "p50", "p90", "p99", "rate"?}``.
The features are the scale-bearing fields in :data:`FEATURES`; ``sum`` is
``count * mean`` and ``rate`` is optional, so neither is used.

What is normal differs per metric (a count of 6 is a collapse for one metric
and a flood for another), so the model (:class:`MetricAnomalyModel`) first
puts each record on its own metric's scale: ``arcsinh`` (log-like for large
values, defined at 0 and below), then a robust z-score with that metric
name's median and MAD from training. One IsolationForest then scores the
z-scores. Names unseen in training (or seen fewer than ``min_samples``
times) use the statistics of all training records.

An IsolationForest cannot tell a point far outside the training range from
the most extreme training point (its splits lie inside that range), so a
collapse of traffic to 1% would score as normal. The score is therefore the
smaller of the forest's score and a z-score envelope: ``1 - max|z| / z_limit``,
negative once any feature lies beyond ``z_limit`` (the larger of 8 and 1.5x
the training records' ``1 - contamination`` quantile of ``max|z|``).

Output per record: ``score`` = ``decision_function`` (below 0 is anomalous;
more negative, more anomalous) and ``anomaly`` = ``score < 0``. Where 0 sits is
set by ``contamination``: the share of training records treated as outliers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

NAME = "metrics-anomaly"
FEATURES = ("count", "mean", "min", "max", "p50", "p90", "p99")
DEFAULT_CONTAMINATION = 0.001


class FeatureError(ValueError):
    """A record that lacks a feature or carries a non-numeric one."""


def feature_row(record: Mapping[str, Any], features: Iterable[str] = FEATURES) -> list[float]:
    """The model's input for one aggregate record; raises FeatureError."""
    row = []
    for name in features:
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FeatureError(f"field {name!r} must be a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float64
            raise FeatureError(f"field {name!r} is too large") from None
        if not math.isfinite(value):
            raise FeatureError(f"field {name!r} is not finite")
        row.append(value)
    return row


def feature_matrix(
    records: Iterable[Mapping[str, Any]],
) -> tuple[np.ndarray, list[str], int]:
    """(X, names, skipped): rows and metric names of every usable record, and how many were not."""
    rows, names, skipped = [], [], 0
    for record in records:
        try:
            rows.append(feature_row(record))
        except FeatureError:
            skipped += 1
            continue
        names.append(metric_name(record))
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)), names, skipped


def metric_name(record: Mapping[str, Any]) -> str:
    name = record.get("name")
    return name if isinstance(name, str) else ""


class MetricAnomalyModel:
    """arcsinh -> per-metric robust z-score -> IsolationForest."""

    def __init__(
        self,
        contamination: float = DEFAULT_CONTAMINATION,
        n_estimators: int = 200,
        min_samples: int = 20,
        seed: int = 0,
    ):
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.min_samples = min_samples
        self.seed = seed
        self.stats_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.global_stats_: tuple[np.ndarray, np.ndarray] | None = None
        self.forest_: Any = None
        self.z_limit_: float = 8.0

    @staticmethod
    def _robust_stats(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        center = np.median(Z, axis=0)
        mad = np.median(np.abs(Z - center), axis=0) * 1.4826
        return center, np.maximum(mad, 1e-3 * np.maximum(np.abs(center), 1.0))

    def _standardize(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        assert self.global_stats_ is not None, "fit first"
        Z = np.arcsinh(np.asarray(X, dtype=np.float64))
        centers = np.empty_like(Z)
        scales = np.empty_like(Z)
        for i, name in enumerate(names):
            centers[i], scales[i] = self.stats_.get(name, self.global_stats_)
        return (Z - centers) / scales

    def fit(self, X: np.ndarray, names: Sequence[str]) -> MetricAnomalyModel:
        from sklearn.ensemble import IsolationForest

        Z = np.arcsinh(np.asarray(X, dtype=np.float64))
        labels = np.asarray(names, dtype=object)
        self.global_stats_ = self._robust_stats(Z)
        self.stats_ = {}
        for name in sorted(set(names)):
            rows = Z[labels == name]
            if len(rows) >= self.min_samples:
                self.stats_[name] = self._robust_stats(rows)
        standardized = self._standardize(X, names)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            random_state=self.seed,
        ).fit(standardized)
        spread = np.quantile(np.abs(standardized).max(axis=1), 1.0 - self.contamination)
        self.z_limit_ = float(max(8.0, 1.5 * spread))
        return self

    def decision_function(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Below 0: anomalous (more negative, more so)."""
        standardized = self._standardize(X, names)
        forest = self.forest_.decision_function(standardized)
        envelope = 1.0 - np.abs(standardized).max(axis=1) / self.z_limit_
        return np.minimum(forest, envelope)

    def predict(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """-1 for anomalies, 1 for normal records (scikit-learn's convention)."""
        return np.where(self.decision_function(X, names) < 0, -1, 1)


def train(
    X: np.ndarray,
    names: Sequence[str],
    contamination: float = DEFAULT_CONTAMINATION,
    n_estimators: int = 200,
    seed: int = 0,
) -> MetricAnomalyModel:
    """Fits the detector on ``X`` (rows from :func:`feature_matrix`) and their metric names."""
    if len(X) < 16:
        raise ValueError(f"need at least 16 aggregate records to train, got {len(X)}")
    return MetricAnomalyModel(contamination, n_estimators, seed=seed).fit(X, names)
