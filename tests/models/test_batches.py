"""Inference on batches: one feature matrix and one model call per batch of requests.

The batch path must give exactly what the per-request path gives (same
rows, same reasons, same responses), call the model once per batch, and
still dead-letter request by request, both what does not parse and what the
model fails on.
"""

from __future__ import annotations

import dataclasses
import json
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beamstream.io.elements import Message, MessageBatch, encode_payload
from beamstream.models import digits
from beamstream.models.handlers import (
    BatchSklearnModelHandler,
    LoadedModel,
    VerifiedSklearnModelHandler,
    batch_handler,
)
from beamstream.models.predict import Predict, failed_batch_letters
from beamstream.models.requests import (
    BatchParser,
    ParsedBatch,
    PredictedBatch,
    RequestError,
    RequestParser,
    ResponseFormatter,
)
from tests.models.helpers import normal_aggregates, outlier_aggregates
from tests.models.test_requests import DETECTOR, DIGITS

TOPIC = "requests"

# Every reason a request can be refused for, among valid ones, in one batch.
INVALID = [
    b"{not json",
    b"\xff\xfe",
    b"[1, 2]",
    json.dumps({"features": [0] * 64}).encode(),
    json.dumps({"id": True, "features": [0] * 64}).encode(),
    json.dumps({"id": "x"}).encode(),
    json.dumps({"id": "x", "features": [0] * 63}).encode(),
    json.dumps({"id": "x", "features": "0" * 64}).encode(),
    json.dumps({"id": "x", "features": ["1"] * 64}).encode(),
    json.dumps({"id": "x", "features": [None] * 64}).encode(),
    b'{"id": "inf", "features": [1e400' + b", 0" * 63 + b"]}",
    b'{"id": "nan", "image": [[NaN' + b", 0" * 7 + b"]" + b", [0, 0, 0, 0, 0, 0, 0, 0]" * 7 + b"]}",
    ('{"id": "big", "features": [' + str(10**400) + ", 0" * 63 + "]}").encode(),
    json.dumps({"id": "x", "image": [[0] * 8] * 7}).encode(),
]


def digit_requests(n: int, prefix: str = "r") -> list[bytes]:
    X, _ = digits.held_out()
    out = []
    for i in range(n):
        pixels = X[i % len(X)].astype(int)
        if i % 2:
            record = {"id": f"{prefix}{i}", "features": pixels.tolist()}
        else:
            record = {"id": f"{prefix}{i}", "image": pixels.reshape(8, 8).tolist()}
        out.append(json.dumps(record).encode())
    return out


def interleave(valid: list[bytes], invalid: list[bytes]) -> list[bytes]:
    out = list(valid)
    for k, value in enumerate(invalid):
        out.insert(min(3 * k + 1, len(out)), value)
    return out


def batch_of(values: list[bytes], partition: int = 0, first_offset: int = 100) -> MessageBatch:
    offsets = list(range(first_offset, first_offset + len(values)))
    return MessageBatch(TOPIC, partition, values, offsets)


def per_request(parser: RequestParser, values: list[bytes], positions: list[str]):
    """The reference: RequestParser request by request (row or reason)."""
    results = []
    for value, position in zip(values, positions):
        try:
            results.append(parser.parse(value, position))
        except RequestError as exc:
            results.append(exc)
    return results


def test_batch_parser_gives_the_rows_and_reasons_of_the_per_request_parser():
    values = interleave(digit_requests(20), INVALID)
    parsed, errors = BatchParser(DIGITS).parse(values, TOPIC, 3, range(len(values)))
    reference = per_request(RequestParser(DIGITS), values, [""] * len(values))
    wanted_errors = [(i, str(r)) for i, r in enumerate(reference) if isinstance(r, RequestError)]
    assert [(i, str(e)) for i, e in errors] == wanted_errors
    assert len(errors) == len(INVALID)  # each invalid request refused, for its own reason
    valid = [r for r in reference if not isinstance(r, RequestError)]
    assert parsed.ids == [key.id for key, _ in valid]
    assert parsed.features.shape == (20, 64) and parsed.features.dtype == np.float64
    assert np.array_equal(parsed.features, np.stack([row for _, row in valid]))
    # What a failing model call needs to dead-letter each request: its bytes and place.
    kept = [i for i in range(len(values)) if i not in dict(errors)]
    assert parsed.payloads == [values[i] for i in kept]
    assert [parsed.position(j) for j in range(len(parsed))] == [f"{TOPIC}[3]@{i}" for i in kept]


def test_batch_parser_detector_rows_names_and_position_ids():
    records = normal_aggregates(6, seed=3)
    records[2]["id"] = "own-id"
    records[4]["count"] = "many"
    values = [json.dumps(r).encode() for r in records]
    parsed, errors = BatchParser(DETECTOR, keep_record=True).parse(values, TOPIC, 1, range(7, 13))
    assert [(i, str(e)) for i, e in errors] == [(4, "field 'count' must be a number, got str")]
    assert parsed.ids == [
        "requests[1]@7",
        "requests[1]@8",
        "own-id",
        "requests[1]@10",
        "requests[1]@12",
    ]
    assert parsed.names == [records[i]["name"] for i in (0, 1, 2, 3, 5)]
    assert parsed.records == [records[i] for i in (0, 1, 2, 3, 5)]
    one = RequestParser(DETECTOR)
    expected = [one.parse(values[i], "p")[1][1] for i in (0, 1, 2, 3, 5)]
    assert np.array_equal(parsed.features, np.stack(expected))


def test_chunks_split_every_column_alike():
    values = digit_requests(7)
    parsed, _ = BatchParser(DIGITS).parse(values, TOPIC, 0, range(7))
    chunks = list(parsed.chunks(3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert sum((c.ids for c in chunks), []) == parsed.ids
    assert sum((c.payloads for c in chunks), []) == values
    assert np.array_equal(np.concatenate([c.features for c in chunks]), parsed.features)
    assert chunks[2].position(0) == f"{TOPIC}[0]@6"
    assert [c is parsed for c in parsed.chunks(None)] == [True]


class CountingEstimator:
    """Wraps a fitted estimator and counts its calls (picklable, kept in one process)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.calls: list[int] = []

    def predict_proba(self, X):
        self.calls.append(len(X))
        return self.estimator.predict_proba(X)


def test_handler_calls_the_model_once_per_batch_and_matches_per_request(digits_model):
    model_dir, metadata = digits_model
    loaded = BatchSklearnModelHandler(str(model_dir), metadata).load_model()
    counting = LoadedModel(CountingEstimator(loaded.estimator), loaded.metadata)
    parsed, _ = BatchParser(metadata).parse(digit_requests(50))
    (predicted,) = BatchSklearnModelHandler(str(model_dir)).run_inference(parsed, counting)
    assert counting.estimator.calls == [50]
    single = VerifiedSklearnModelHandler(str(model_dir))
    rows = [single.run_inference([row], loaded)[0].inference for row in parsed.features]
    assert np.allclose(predicted.outputs, np.stack(rows))
    assert predicted.model_id == "digits:test-1" and predicted.requests is parsed


def _without_latency(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "latency_ms"}


def _reference_responses(model_dir, metadata, values: list[bytes]) -> list[dict]:
    """The per-request path: RequestParser -> one-row model call -> ResponseFormatter.format."""
    loaded = VerifiedSklearnModelHandler(str(model_dir)).load_model()
    parser, formatter = RequestParser(metadata), ResponseFormatter(metadata)
    out = []
    for value in values:
        try:
            key, row = parser.parse(value)
        except RequestError:
            continue
        probabilities = loaded.estimator.predict_proba(row.reshape(1, -1))[0]
        out.append(_without_latency(formatter.format(key, probabilities, loaded.model_id)))
    return out


def _distribution(result, name: str):
    (found,) = result.metrics().query(MetricsFilter().with_name(name))["distributions"]
    return found.committed


def _counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed for c in found)


def test_predict_answers_valid_requests_once_and_dead_letters_each_invalid_one(digits_model):
    model_dir, metadata = digits_model
    first = interleave(digit_requests(60, "a"), INVALID)
    second = digit_requests(30, "b")
    batches = [batch_of(first, partition=0), batch_of(second, partition=1, first_offset=0)]
    p = TestPipeline()
    outputs = p | beam.Create(batches) | Predict(str(model_dir), metadata, max_batch_size=25)
    predictions = outputs["predictions"] | "NoLatency" >> beam.Map(_without_latency)
    expected = _reference_responses(model_dir, metadata, first + second)
    assert len(expected) == 90
    assert_that(predictions, equal_to(expected), label="ResponsesAsPerRequest")
    wanted_letters = []
    for i, value in enumerate(first):
        if value in INVALID:
            try:
                RequestParser(metadata).parse(value)
            except RequestError as exc:
                reason = str(exc)
            wanted_letters.append((f"{TOPIC}[0]@{100 + i}", reason, value))
    letters = outputs["dead_letters"] | beam.Map(
        lambda d: (d["source"], d["error"], d["payload"], d["step"], d["error_type"])
    )
    assert_that(
        letters,
        equal_to(
            [
                (
                    source,
                    reason,
                    value.decode() if value != b"\xff\xfe" else "//4=",
                    "parse_request",
                    "RequestError",
                )
                for source, reason, value in wanted_letters
            ]
        ),
        label="OneDeadLetterPerInvalid",
    )
    result = p.run()
    result.wait_until_finish()
    # One model call per batch piece: 60 valid -> 25+25+10, 30 -> 25+5.
    sizes = _distribution(result, "inference_request_batch_size")
    assert (sizes.count, sizes.sum, sizes.max) == (5, 90, 25)
    assert _counter(result, "messages_consumed") == 60 + len(INVALID) + 30
    assert _counter(result, "messages_produced") == 0  # a transform: sinks count writes
    assert _counter(result, "dead_letters") == len(INVALID)
    assert _counter(result, "message_errors:RequestError") == len(INVALID)


def test_predict_still_takes_single_messages(digits_model):
    model_dir, metadata = digits_model
    values = digit_requests(4)
    messages = [Message(v, source=TOPIC, offset=i) for i, v in enumerate(values)]
    with TestPipeline() as p:
        outputs = p | beam.Create(messages) | Predict(str(model_dir), metadata)
        ids = outputs["predictions"] | beam.Map(lambda r: r["id"])
        assert_that(ids, equal_to(["r0", "r1", "r2", "r3"]))


def test_detector_batches_score_as_the_per_request_path(anomaly_model):
    model_dir, metadata = anomaly_model
    records = normal_aggregates(40, seed=11) + outlier_aggregates(seed=2)
    values = [json.dumps(r).encode() for r in records]
    loaded = VerifiedSklearnModelHandler(str(model_dir)).load_model()
    parser = RequestParser(metadata, keep_record=True)
    formatter = ResponseFormatter(metadata)
    expected = []
    for i, value in enumerate(values):
        key, (name, row) = parser.parse(value, f"{TOPIC}[0]@{i}")
        score = loaded.estimator.decision_function(row.reshape(1, -1), [name])[0]
        expected.append(_without_latency(formatter.format(key, score, loaded.model_id)))
    with TestPipeline() as p:
        outputs = (
            p
            | beam.Create([batch_of(values, first_offset=0)])
            | Predict(str(model_dir), metadata, keep_record=True, only_anomalies=True)
        )
        anomalies = outputs["predictions"] | beam.Map(_without_latency)
        flagged = [e for e in expected if e["anomaly"]]
        assert len(flagged) >= len(outlier_aggregates(seed=2))
        assert_that(anomalies, equal_to(flagged))


def test_a_batch_the_model_fails_on_gives_one_dead_letter_per_request(digits_model):
    model_dir, metadata = digits_model
    good, _ = BatchParser(metadata).parse(digit_requests(5, "ok"), TOPIC, 0, range(5))
    values = digit_requests(3, "bad")
    bad = ParsedBatch(
        ids=["bad0", "bad1", "bad2"],
        features=np.zeros((3, 63)),  # the model wants 64 inputs: predict_proba raises
        received_s=0.0,
        payloads=values,
        source=TOPIC,
        partition=2,
        offsets=[40, 41, 42],
    )
    with TestPipeline() as p:
        results, failures = (
            p
            | beam.Create([good, bad])
            | RunInference(batch_handler(str(model_dir), metadata)).with_exception_handling()
        )
        letters = failures.failed_inferences | beam.FlatMap(failed_batch_letters)
        summary = letters | beam.Map(
            lambda d: (d["request_id"], d["source"], d["payload"], d["step"], d["error_type"])
        )
        assert_that(
            summary,
            equal_to(
                [
                    (
                        f"bad{i}",
                        f"{TOPIC}[2]@{40 + i}",
                        values[i].decode(),
                        "inference",
                        "ValueError",
                    )
                    for i in range(3)
                ]
            ),
            label="OnePerRequest",
        )
        assert_that(
            letters | "Reasons" >> beam.Map(lambda d: "features" in d["error"]),
            equal_to([True] * 3),
            label="ModelReason",
        )
        answered = results | beam.FlatMap(lambda r: r.requests.ids)
        assert_that(answered, equal_to([f"ok{i}" for i in range(5)]), label="GoodBatchAnswered")


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_responses_of_a_batch_equal_the_single_formatter(digits_model, size):
    model_dir, metadata = digits_model
    values = digit_requests(size)
    parsed, _ = BatchParser(metadata).parse(values)
    loaded = BatchSklearnModelHandler(str(model_dir)).load_model()
    (predicted,) = BatchSklearnModelHandler(str(model_dir)).run_inference(parsed, loaded)
    batch = [_without_latency(r) for r in ResponseFormatter(metadata).format_batch(predicted)]
    single = ResponseFormatter(metadata)
    keys = [RequestParser(metadata).parse(v)[0] for v in values]
    one_by_one = [
        _without_latency(single.format(k, out, predicted.model_id))
        for k, out in zip(keys, predicted.outputs)
    ]
    assert batch == one_by_one
    assert all(math.isclose(sum(r["probabilities"]), 1.0, abs_tol=1e-4) for r in batch)


def _encoded_and_dicts(formatter: ResponseFormatter, predicted: PredictedBatch):
    now = predicted.requests.received_s + 0.0125
    dicts = list(formatter.format_batch(predicted, now=now))
    return formatter.encode_batch(predicted, now=now), [encode_payload(d) for d in dicts]


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_an_encoded_batch_is_what_the_sinks_write_for_its_dicts(digits_model, size):
    model_dir, metadata = digits_model
    parsed, _ = BatchParser(metadata).parse(digit_requests(size))
    handler = BatchSklearnModelHandler(str(model_dir))
    (predicted,) = handler.run_inference(parsed, handler.load_model())
    encoded, from_dicts = _encoded_and_dicts(ResponseFormatter(metadata), predicted)
    assert encoded == from_dicts
    assert [json.loads(e)["id"] for e in encoded] == parsed.ids


def test_encoded_batch_escapes_ids_and_labels_as_json_does():
    metadata = dataclasses.replace(DIGITS, classes=["cat", 'say "hi"', "dög", "a\\b"])
    ids = ['q"1', "back\\slash", "ünïcode ☃", "],[", "\n\t", "plain"]
    rng = np.random.default_rng(3)
    outputs = rng.dirichlet([0.05] * 4, size=len(ids))  # many tiny probabilities
    outputs[0] = [1.0, 0.0, 0.0, 0.0]
    parsed = ParsedBatch(
        ids=ids, features=np.zeros((len(ids), 64)), received_s=1000.0, payloads=[b""] * len(ids)
    )
    predicted = PredictedBatch(parsed, outputs, "digits:7")
    encoded, from_dicts = _encoded_and_dicts(ResponseFormatter(metadata), predicted)
    assert encoded == from_dicts
    assert [json.loads(e)["id"] for e in encoded] == ids
    assert json.loads(encoded[0])["label"] == "cat" and json.loads(encoded[0])["latency_ms"] == 12.5


def test_encoded_empty_and_detector_batches_match_their_dicts(anomaly_model):
    model_dir, metadata = anomaly_model
    formatter = ResponseFormatter(metadata)
    values = [json.dumps(r).encode() for r in normal_aggregates(5, seed=1)]
    parsed, _ = BatchParser(metadata, keep_record=True).parse(values, TOPIC, 0, range(5))
    handler = BatchSklearnModelHandler(str(model_dir))
    (predicted,) = handler.run_inference(parsed, handler.load_model())
    encoded, from_dicts = _encoded_and_dicts(formatter, predicted)
    assert encoded == from_dicts and len(encoded) == 5
    nothing = ParsedBatch(ids=[], features=np.zeros((0, 2)), received_s=0.0, payloads=[])
    empty = PredictedBatch(nothing, np.zeros((0, 10)), "m:1")
    assert formatter.encode_batch(empty) == []


def test_predict_encoded_gives_the_bytes_of_the_responses(digits_model):
    model_dir, metadata = digits_model
    values = interleave(digit_requests(40), INVALID)
    with TestPipeline() as p:
        outputs = (
            p
            | beam.Create([batch_of(values)])
            | Predict(str(model_dir), metadata, max_batch_size=15, encoded=True)
        )
        kinds = outputs["predictions"] | "Kinds" >> beam.Map(lambda r: type(r).__name__)
        assert_that(kinds, equal_to(["bytes"] * 40), label="Bytes")
        decoded = outputs["predictions"] | beam.Map(lambda r: _without_latency(json.loads(r)))
        expected = _reference_responses(model_dir, metadata, values)
        assert_that(decoded, equal_to(expected), label="SameResponses")
