"""Inference requests and responses: the wire format of ``beamstream infer``.

Requests (JSON objects)::

    classifier: {"id": "...", "image": [[8 rows of 8 numbers]]}
                or {"id": "...", "features": [64 numbers]}
    detector:   a metric aggregate
                {"name", "count", "mean", "min", "max", "p50", "p90", "p99", ...}
                ("id" optional: the record's source position is used instead)

Responses::

    classifier: {"id", "label", "probabilities", "model": {"name", "version"}, "latency_ms"}
    detector:   {"id", "score", "anomaly", "model": {...}, "latency_ms"} (plus the aggregate's
                fields when ``keep_record``)

``latency_ms`` is the time from the request being parsed in the pipeline to its
response being formatted: batching wait plus inference.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, NamedTuple

import numpy as np

from beamstream.models.anomaly import FeatureError, feature_row, metric_name
from beamstream.models.artifacts import ModelMetadata


class RequestError(ValueError):
    """A request of the wrong shape or type; the message says what is wrong."""


class RequestKey(NamedTuple):
    """What travels with a request through RunInference, next to its input row."""

    id: str
    received_s: float
    record: dict[str, Any] | None = None  # the aggregate, when the response repeats it


def _flatten(value: Any, field: str, shape: tuple[int, ...]) -> list[Any]:
    """The values of a nested list of ``shape`` (1 or 2 dimensions), row-major."""
    if not isinstance(value, list):
        raise RequestError(f"{field!r} must be a list, got {type(value).__name__}")
    if len(shape) == 1:
        if len(value) != shape[0]:
            raise RequestError(f"{field!r} must have {shape[0]} values, got {len(value)}")
        return value
    rows, cols = shape
    if len(value) != rows or not all(type(r) is list and len(r) == cols for r in value):
        raise RequestError(f"{field!r} must be {rows} rows of {cols} numbers")
    return [x for r in value for x in r]


_NUMBER_TYPES = frozenset((int, float))


def _numeric_array(value: Any, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 row from a JSON list; numbers only (no bools, strings, NaN or infinities).

    Types are checked before numpy sees the data, because
    ``np.array(["1"], dtype=float)`` would quietly accept strings. This is the
    per-request hot path, hence C-level checks (``map(type, ...)``) only.
    """
    flat = _flatten(value, field, shape)
    types = set(map(type, flat))  # exact types: bool (a subclass of int) is refused
    if not types <= _NUMBER_TYPES:
        raise RequestError(f"{field!r} must hold finite numbers only")
    try:
        row = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise RequestError(f"{field!r} holds a number too large for float64") from None
    if float in types and not np.isfinite(row).all():
        raise RequestError(f"{field!r} must hold finite numbers only")
    return row


def _request_id(record: dict[str, Any], fallback: str | None) -> str:
    rid = record.get("id")
    if rid is None and fallback is not None:
        return fallback
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        raise RequestError("'id' must be a non-empty string or an integer")
    return str(rid)


class RequestParser:
    """Turns one request's bytes into ``(RequestKey, row)`` for the model in ``metadata``."""

    def __init__(self, metadata: ModelMetadata, keep_record: bool = False):
        self._kind = metadata.kind
        self._size = int(np.prod(metadata.input_shape))
        self._image_shape = tuple(metadata.extra.get("image_shape") or ())
        self._features = tuple(metadata.features)
        self._keep_record = keep_record

    def parse(self, value: bytes, position: str | None = None) -> tuple[RequestKey, Any]:
        """``(key, example)``: a feature row, or ``(metric name, row)`` for a detector."""
        try:
            # str, not bytes: json.loads would sniff the encoding of bytes first.
            record = json.loads(value.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError; nesting too deep
            raise RequestError(f"not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise RequestError(f"request must be a JSON object, got {type(record).__name__}")
        received = time.time()
        if self._kind == "detector":
            rid = _request_id(record, position)
            try:
                row = np.asarray(feature_row(record, self._features), dtype=np.float64)
            except FeatureError as exc:
                raise RequestError(str(exc)) from None
            key = RequestKey(rid, received, record if self._keep_record else None)
            return key, (metric_name(record), row)
        rid = _request_id(record, None)
        if "features" in record:
            row = _numeric_array(record["features"], "features", (self._size,))
        elif "image" in record and self._image_shape:
            row = _numeric_array(record["image"], "image", self._image_shape)
        else:
            wanted = "'features'" + (" or 'image'" if self._image_shape else "")
            raise RequestError(f"request needs {wanted}")
        return RequestKey(rid, received), row


class ResponseFormatter:
    """Builds the response dict for one prediction."""

    def __init__(self, metadata: ModelMetadata, digits: int = 6):
        self._classes = list(metadata.classes)
        self._digits = digits

    def format(self, key: RequestKey, inference: Any, model_id: str | None) -> dict[str, Any]:
        name, _, version = (model_id or "").partition(":")
        latency_ms = round((time.time() - key.received_s) * 1000.0, 3)
        model = {"name": name, "version": version}
        if isinstance(inference, np.ndarray):  # class probabilities
            index = int(inference.argmax())
            label = self._classes[index] if self._classes else index
            return {
                "id": key.id,
                "label": label,
                "probabilities": inference.round(self._digits).tolist(),
                "model": model,
                "latency_ms": latency_ms,
            }
        score = float(inference)
        response: dict[str, Any] = dict(key.record) if key.record is not None else {}
        response.update(
            id=key.id,
            score=round(score, self._digits) if math.isfinite(score) else score,
            anomaly=score < 0,
            model=model,
            latency_ms=latency_ms,
        )
        return response
