"""Request validation: what reaches the model, and the reason for what does not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beamstream.models.artifacts import ModelMetadata
from beamstream.models.requests import RequestError, RequestParser, ResponseFormatter

DIGITS = ModelMetadata(
    name="digits",
    version="1",
    kind="classifier",
    input_shape=[64],
    sha256="0" * 64,
    sklearn_version="x",
    created="now",
    classes=list(range(10)),
    extra={"image_shape": [8, 8]},
)
DETECTOR = ModelMetadata(
    name="anom",
    version="2",
    kind="detector",
    input_shape=[2],
    sha256="0" * 64,
    sklearn_version="x",
    created="now",
    features=["count", "mean"],
)


def parse(record, metadata=DIGITS, **kw):
    value = record if isinstance(record, bytes) else json.dumps(record).encode()
    return RequestParser(metadata, **kw).parse(value, "topic[0]@5")


def test_image_and_features_give_the_same_row():
    pixels = list(range(64))
    key_a, row_a = parse({"id": "a", "features": pixels})
    key_b, row_b = parse({"id": 7, "image": [pixels[i : i + 8] for i in range(0, 64, 8)]})
    assert key_a.id == "a" and key_b.id == "7"
    assert row_a.dtype == np.float64 and row_a.shape == (64,)
    assert np.array_equal(row_a, row_b)


@pytest.mark.parametrize(
    "record, reason",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ([1, 2], "JSON object"),
        ({"features": [0] * 64}, "'id'"),
        ({"id": True, "features": [0] * 64}, "'id'"),
        ({"id": "x"}, "needs 'features' or 'image'"),
        ({"id": "x", "features": [0] * 63}, "64 values"),
        ({"id": "x", "features": "0" * 64}, "must be a list"),
        ({"id": "x", "features": ["1"] * 64}, "finite numbers"),
        ({"id": "x", "features": [True] * 64}, "finite numbers"),
        ({"id": "x", "features": [None] * 64}, "finite numbers"),
        ({"id": "x", "features": [1e400] + [0] * 63}, "finite numbers"),
        ({"id": "x", "features": [10**400] + [0] * 63}, "too large"),
        ({"id": "x", "image": [[0] * 8] * 7}, "8 rows of 8"),
        ({"id": "x", "image": [[0] * 8] * 7 + [[0] * 7]}, "8 rows of 8"),
        ({"id": "x", "image": [list(range(64))]}, "8 rows of 8"),
    ],
)
def test_bad_requests_say_why(record, reason):
    with pytest.raises(RequestError, match=reason):
        parse(record)


def test_detector_requests_use_named_features_and_fall_back_to_position():
    key, (name, row) = parse({"name": "m", "count": 3, "mean": 1.5, "p99": 9}, DETECTOR)
    assert key.id == "topic[0]@5" and name == "m" and row.tolist() == [3.0, 1.5]
    with pytest.raises(RequestError, match="'mean' must be a number"):
        parse({"name": "m", "count": 3}, DETECTOR)


def test_responses():
    key, _ = parse({"id": "a", "features": [0] * 64})
    probabilities = np.array([0.1, 0.0, 0.7, 0.2, 0, 0, 0, 0, 0, 0])
    response = ResponseFormatter(DIGITS).format(key, probabilities, "digits:1")
    assert response["id"] == "a" and response["label"] == 2
    assert response["probabilities"][2] == 0.7
    assert response["model"] == {"name": "digits", "version": "1"}
    assert response["latency_ms"] >= 0
    record = {"name": "m", "count": 3, "mean": 1.5}
    key, _ = parse(record, DETECTOR, keep_record=True)
    scored = ResponseFormatter(DETECTOR).format(key, -0.25, "anom:2")
    assert scored["anomaly"] is True and scored["score"] == -0.25 and scored["name"] == "m"
