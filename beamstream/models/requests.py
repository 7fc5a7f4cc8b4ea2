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

import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from json.encoder import encode_basestring as _json_string  # C; what the sinks' encoder uses
from typing import Any, NamedTuple

import numpy as np

from beamstream import payload_json
from beamstream.io.elements import encode_payload, json_text
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


def _numeric_values(value: Any, field: str, shape: tuple[int, ...]) -> tuple[list[Any], bool]:
    """The numbers of a JSON list, row-major, and whether any is a float.

    Types are checked before numpy sees the data, because
    ``np.array(["1"], dtype=float)`` would quietly accept strings. This is the
    per-request hot path, hence C-level checks (``map(type, ...)``) only.
    """
    flat = _flatten(value, field, shape)
    types = set(map(type, flat))  # exact types: bool (a subclass of int) is refused
    if not types <= _NUMBER_TYPES:
        raise RequestError(f"{field!r} must hold finite numbers only")
    return flat, float in types


def _too_large(field: str) -> RequestError:
    return RequestError(f"{field!r} holds a number too large for float64")


def _not_finite(field: str) -> RequestError:
    return RequestError(f"{field!r} must hold finite numbers only")


def _numeric_array(value: Any, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 row from a JSON list; numbers only (no bools, strings, NaN or infinities)."""
    flat, has_float = _numeric_values(value, field, shape)
    try:
        row = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise _too_large(field) from None
    if has_float and not np.isfinite(row).all():
        raise _not_finite(field)
    return row


def _request_id(record: dict[str, Any], fallback: str | None) -> str:
    rid = record.get("id")
    if rid is None and fallback is not None:
        return fallback
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        raise RequestError("'id' must be a non-empty string or an integer")
    return str(rid)


def _decode(value: bytes) -> dict[str, Any]:
    """The request object in ``value``; raises RequestError."""
    try:
        # str, not bytes: the request must be UTF-8, whatever json.loads would sniff.
        record = payload_json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError; nesting too deep
        raise RequestError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise RequestError(f"request must be a JSON object, got {type(record).__name__}")
    return record


class RequestParser:
    """Turns one request's bytes into ``(RequestKey, row)`` for the model in ``metadata``."""

    def __init__(self, metadata: ModelMetadata, keep_record: bool = False):
        self.kind = metadata.kind
        self._size = int(np.prod(metadata.input_shape))
        self._image_shape = tuple(metadata.extra.get("image_shape") or ())
        self._features = tuple(metadata.features)
        self.keep_record = keep_record

    def parse(self, value: bytes, position: str | None = None) -> tuple[RequestKey, Any]:
        """``(key, example)``: a feature row, or ``(metric name, row)`` for a detector."""
        record = _decode(value)
        received = time.time()
        if self.kind == "detector":
            rid, values, name = self.detector_values(record, position)
            row = np.asarray(values, dtype=np.float64)
            key = RequestKey(rid, received, record if self.keep_record else None)
            return key, (name, row)
        rid, flat, field, has_float = self.classifier_values(record)
        try:
            row = np.array(flat, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            raise _too_large(field) from None
        if has_float and not np.isfinite(row).all():
            raise _not_finite(field)
        return RequestKey(rid, received), row

    def detector_values(
        self, record: dict[str, Any], position: str | None
    ) -> tuple[str, list[float], str]:
        """``(id, finite feature values, metric name)`` of an aggregate; raises RequestError."""
        rid = _request_id(record, position)
        try:
            values = feature_row(record, self._features)
        except FeatureError as exc:
            raise RequestError(str(exc)) from None
        return rid, values, metric_name(record)

    def classifier_values(self, record: dict[str, Any]) -> tuple[str, list[Any], str, bool]:
        """``(id, flat numbers, field, any float)``; finiteness is the caller's check."""
        rid = _request_id(record, None)
        if "features" in record:
            field, shape = "features", (self._size,)
        elif "image" in record and self._image_shape:
            field, shape = "image", self._image_shape
        else:
            wanted = "'features'" + (" or 'image'" if self._image_shape else "")
            raise RequestError(f"request needs {wanted}")
        flat, has_float = _numeric_values(record[field], field, shape)
        return rid, flat, field, has_float


def describe_position(source: str, partition: int, offset: int) -> str:
    """A record's place in its source, as ``Message.describe`` writes it."""
    return f"{source}[{partition}]@{offset}" if offset >= 0 else source


@dataclasses.dataclass
class ParsedBatch:
    """The valid requests of one source batch: one feature matrix for one model call.

    Columnar, like ``MessageBatch``: row ``i`` of ``features`` is request
    ``ids[i]``; ``payloads`` and ``offsets`` keep the original bytes and their
    place in the source, so a batch the model fails on can still be
    dead-lettered request by request, replayable. ``len()`` is the number of
    requests (what ``RunInference`` counts as the batch size).
    """

    ids: list[str]
    features: np.ndarray  # (n, model inputs), float64
    received_s: float  # when the batch was parsed (responses' latency_ms starts here)
    payloads: list[bytes]
    source: str = ""
    partition: int = 0
    offsets: list[int] = dataclasses.field(default_factory=list)
    names: list[str] | None = None  # detector: each aggregate's metric name
    records: list[dict[str, Any]] | None = None  # detector with keep_record

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, i: int) -> str:
        """Where request ``i`` came from, as ``Message.describe`` says it."""
        return describe_position(
            self.source, self.partition, self.offsets[i] if self.offsets else -1
        )

    def chunks(self, size: int | None) -> Iterator[ParsedBatch]:
        """At most ``size`` requests per batch (all of them when ``size`` is None)."""
        n = len(self)
        if size is None or n <= size:
            yield self
            return
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            yield dataclasses.replace(
                self,
                ids=self.ids[lo:hi],
                features=self.features[lo:hi],
                payloads=self.payloads[lo:hi],
                offsets=self.offsets[lo:hi],
                names=None if self.names is None else self.names[lo:hi],
                records=None if self.records is None else self.records[lo:hi],
            )


class PredictedBatch(NamedTuple):
    """A ``ParsedBatch`` with the model's outputs, row for row."""

    requests: ParsedBatch
    outputs: np.ndarray  # classifier: (n, classes) probabilities; detector: (n,) scores
    model_id: str


class BatchParser:
    """Turns a batch of request bytes into one ``ParsedBatch`` and the reasons for the rest.

    The same rules and messages as :class:`RequestParser`, request by
    request; what is done once per batch is the conversion to float64 and the
    finiteness check.
    """

    def __init__(self, metadata: ModelMetadata, keep_record: bool = False):
        self._one = RequestParser(metadata, keep_record)
        self._width = int(np.prod(metadata.input_shape))

    def parse(
        self,
        values: Sequence[bytes],
        source: str = "",
        partition: int = 0,
        offsets: Sequence[int] = (),
    ) -> tuple[ParsedBatch, list[tuple[int, RequestError]]]:
        """``(valid requests, [(index in values, why), ...])``, errors in input order."""
        offsets = list(offsets) or [-1] * len(values)
        detector = self._one.kind == "detector"
        keep = self._one.keep_record
        errors: list[tuple[int, RequestError]] = []
        index: list[int] = []  # positions in values of the rows below
        ids: list[str] = []
        rows: list[list[Any]] = []
        fields: list[str] = []
        names: list[str] = []
        records: list[dict[str, Any]] = []
        floats: list[bool] = []
        for i, value in enumerate(values):
            try:
                record = _decode(value)
                if detector:
                    fallback = None  # only an aggregate without an id needs its position
                    if record.get("id") is None:
                        fallback = describe_position(source, partition, offsets[i])
                    rid, row, name = self._one.detector_values(record, fallback)
                    names.append(name)
                    if keep:
                        records.append(record)
                else:
                    rid, row, field, has_float = self._one.classifier_values(record)
                    fields.append(field)
                    floats.append(has_float)
            except RequestError as exc:
                errors.append((i, exc))
                continue
            index.append(i)
            ids.append(rid)
            rows.append(row)
        features, bad = self._matrix(rows, fields, floats)
        if bad:
            errors.extend((index[j], exc) for j, exc in bad.items())
            errors.sort(key=lambda e: e[0])
            keep_rows = [j for j in range(len(rows)) if j not in bad]
            features = features[keep_rows]
            index = [index[j] for j in keep_rows]
            ids = [ids[j] for j in keep_rows]
            names = [names[j] for j in keep_rows] if names else names
            records = [records[j] for j in keep_rows] if records else records
        parsed = ParsedBatch(
            ids=ids,
            features=features,
            received_s=time.time(),
            payloads=[values[i] for i in index],
            source=source,
            partition=partition,
            offsets=[offsets[i] for i in index],
            names=names if detector else None,
            records=records if detector and keep else None,
        )
        return parsed, errors

    def _matrix(
        self, rows: list[list[Any]], fields: list[str], floats: list[bool]
    ) -> tuple[np.ndarray, dict[int, RequestError]]:
        """One float64 matrix of ``rows``, and the rows that cannot be in it (with why)."""
        bad: dict[int, RequestError] = {}
        try:
            X = np.array(rows, dtype=np.float64).reshape(len(rows), self._width)
        except OverflowError:  # some integer beyond float64: find it row by row
            X = np.zeros((len(rows), self._width), dtype=np.float64)
            for j, row in enumerate(rows):
                try:
                    X[j] = row
                except OverflowError:
                    bad[j] = _too_large(fields[j])
        if fields and any(floats):  # classifier rows; detector values are checked already
            finite = np.isfinite(X).all(axis=1)
            for j in np.flatnonzero(~finite).tolist():
                bad.setdefault(j, _not_finite(fields[j]))
        return X, bad


class ResponseFormatter:
    """Builds the response dict for one prediction, or a batch's responses as JSON bytes."""

    def __init__(self, metadata: ModelMetadata, digits: int = 6):
        self._classes = list(metadata.classes)
        self._digits = digits
        self._label_json = [json_text(c) for c in self._classes]

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

    def format_batch(
        self, predicted: PredictedBatch, now: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """The responses of a batch, in its order: the same dicts as :meth:`format`.

        ``now``: the time the responses are formatted at (default: the clock).
        """
        requests, outputs = predicted.requests, predicted.outputs
        name, _, version = (predicted.model_id or "").partition(":")
        latency_ms = _latency_ms(requests.received_s, now)
        if outputs.ndim == 2:  # class probabilities
            labels = outputs.argmax(axis=1).tolist()
            if self._classes:
                labels = [self._classes[i] for i in labels]
            for rid, label, probabilities in zip(
                requests.ids, labels, outputs.round(self._digits).tolist()
            ):
                yield {
                    "id": rid,
                    "label": label,
                    "probabilities": probabilities,
                    "model": {"name": name, "version": version},
                    "latency_ms": latency_ms,
                }
            return
        records: Sequence[dict[str, Any] | None] = [None] * len(requests)
        if requests.records is not None:
            records = requests.records
        for rid, score, record in zip(requests.ids, outputs.tolist(), records):
            response: dict[str, Any] = dict(record) if record is not None else {}
            response.update(
                id=rid,
                score=round(score, self._digits) if math.isfinite(score) else score,
                anomaly=score < 0,
                model={"name": name, "version": version},
                latency_ms=latency_ms,
            )
            yield response

    def encode_batch(self, predicted: PredictedBatch, now: float | None = None) -> list[bytes]:
        """The responses of a batch as the bytes ``encode_payload`` makes of :meth:`format_batch`.

        For a classifier the JSON is written once per batch, not per response:
        the probabilities of all rows in one encoder call, split into rows, and
        the fields every response shares encoded once. Building a dict per
        response and encoding it on its own cost 11 us per request, half the
        time of a request in the pipeline.
        """
        requests, outputs = predicted.requests, predicted.outputs
        if outputs.ndim != 2 or not len(requests):
            return [encode_payload(r) for r in self.format_batch(predicted, now)]
        name, _, version = (predicted.model_id or "").partition(":")
        model = json_text({"name": name, "version": version})
        latency = json_text(_latency_ms(requests.received_s, now))
        indexes = outputs.argmax(axis=1).tolist()
        labels = [self._label_json[i] for i in indexes] if self._classes else map(str, indexes)
        # "[[p,p,...],[p,p,...]]": no number's text holds a bracket or "],[".
        matrix = json_text(outputs.round(self._digits).tolist())
        rows = matrix[2:-2].split("],[")
        tail = f'],"model":{model},"latency_ms":{latency}}}'
        return [
            f'{{"id":{_json_string(rid)},"label":{label},"probabilities":[{row}{tail}'.encode()
            for rid, label, row in zip(requests.ids, labels, rows)
        ]


def _latency_ms(received_s: float, now: float | None) -> float:
    return round(((time.time() if now is None else now) - received_s) * 1000.0, 3)
