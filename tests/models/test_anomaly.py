"""The anomaly detector flags injected incidents and leaves normal windows alone.

Thresholds: ``anomaly`` is ``decision_function < 0`` with the model's
contamination of 0.001; every injected outlier must be flagged, and at most
1% of fresh normal aggregates (not seen in training) may be.
"""

from __future__ import annotations

import numpy as np

from beamstream.models import anomaly
from beamstream.models.artifacts import load_model
from beamstream.models.train import train_anomaly
from tests.models.helpers import normal_aggregates, outlier_aggregates, write_jsonl


def _scores(model, records):
    X, names, skipped = anomaly.feature_matrix(records)
    assert skipped == 0
    return model.decision_function(X, names)


def test_flags_injected_outliers_not_normal_points(anomaly_model):
    model, _ = load_model(str(anomaly_model[0]))
    normal = _scores(model, normal_aggregates(1000, seed=99))
    outliers = _scores(model, outlier_aggregates(seed=5))
    assert (outliers < 0).all(), outliers
    assert (normal < 0).mean() <= 0.01
    # Outliers are clearly separated, not just past the line.
    assert np.median(outliers) < np.percentile(normal, 1)


def test_records_without_features_are_skipped():
    records = [{"count": 1}, {"name": "x", **dict.fromkeys(anomaly.FEATURES, 1.0)}]
    X, names, skipped = anomaly.feature_matrix(records)
    assert skipped == 1 and X.shape == (1, len(anomaly.FEATURES)) and names == ["x"]


def test_train_anomaly_from_a_file(tmp_path):
    from beamstream.models.datasets import read_records

    path = write_jsonl(tmp_path / "aggs.jsonl", normal_aggregates(200, seed=3) + ["not json"])
    metadata = train_anomaly(list(read_records(str(path))), str(tmp_path / "m"))
    assert metadata.extra["training_records"] == 200
