"""Input hardening: arbitrary bytes and JSON thrown at every pipeline's parsing step.

Property, for each parser: it raises nothing, and every input ends up either
as a valid output or as exactly one dead letter in the shared format whose
payload gives back the input's bytes. The generators mix arbitrary bytes,
arbitrary JSON (``st.recursive``) and objects with the fields the pipelines
read (timestamp, uid, name, value, labels, id, image, features, ...) holding
values of wild types and sizes, next to nearly valid ones so the valid path
is exercised too.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamstream.collect.metrics import METRIC_TYPES
from beamstream.dead_letter import DEAD_LETTER_TAG, original_payload
from beamstream.io.elements import Message, MessageBatch
from beamstream.models.artifacts import ModelMetadata
from beamstream.models.predict import _ParseRequests
from beamstream.pipelines.store import ParseSamples
from beamstream.transforms.frame_metrics import FoldFrames
from beamstream.transforms.prometheus_records import MetricRecord, ParseMetricRecords

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LETTER_FIELDS = {"error", "error_type", "step", "payload", "source", "timestamp"}

# ------------------------------------------------------------------ generators

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)  # beyond float64
    | st.floats(allow_nan=True, allow_infinity=True)  # json.dumps writes NaN/Infinity
    | st.sampled_from([1e305, -1e305, 1.7e308, 5e-324, -0.0, 1e11, 1e17, 9.2e18])
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "NaN",
            "+Inf",
            "-inf",
            "1e400",
            "1e305",
            "-1e305",
            "0x10",
            "1_000",
            " 12 ",
            "2024-01-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59.999999-14:00",
            "2024-01-01T00:00:00",
            "1700000000",
            "1700000000000",
            "-",
            ".",
            "+",
            "",
            "\x00",
            "\ud800",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
numbers = st.integers(-100, 100) | st.floats(-1e6, 1e6) | scalars
wild = (
    json_values
    | st.lists(numbers, min_size=64, max_size=64)  # a features row, maybe poisoned
    | st.lists(st.lists(numbers, min_size=8, max_size=8), min_size=8, max_size=8)  # an image
    | st.dictionaries(st.text(max_size=8), scalars, max_size=4)  # labels
)
FIELDS = (
    "timestamp",
    "ts",
    "uid",
    "name",
    "value",
    "labels",
    "id",
    "image",
    "features",
    "host_id",
    "host",
    "type",
    "count",
    "mean",
    "min",
    "max",
    "p50",
    "p90",
    "p99",
)
records = st.fixed_dictionaries(
    {}, optional={name: wild for name in FIELDS} | {"type": st.sampled_from(METRIC_TYPES) | wild}
)


@st.composite
def payloads(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "record", "record"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    value = draw(json_values if kind == "json" else records)
    text = json.dumps(value)
    return text.encode("utf-8", errors="surrogatepass")  # lone surrogates: invalid UTF-8


batches = st.lists(payloads(), min_size=1, max_size=8)
_SAMPLE = {
    "host_id": "h",
    "name": "m",
    "type": "gauge",
    "value": 1.0,
    "uid": "u",
    "timestamp": 1_700_000_000_000,
}
_AGGREGATE = {"count": 1, "mean": 1, "min": 1, "max": 1, "p50": 1, "p90": 1, "p99": 1}
_DEEP = b"[" * 5000 + b"]" * 5000  # deeper than the interpreter's recursion limit
NASTY = {
    "deep_nesting": _DEEP,
    "deep_nesting_in_object": b'{"uid": "u", "timestamp": 1, "labels": ' + _DEEP + b"}",
    "float_time_overflow": json.dumps(_SAMPLE | {"timestamp": 1.7e308}).encode(),
    "string_time_overflow": json.dumps(_SAMPLE | {"timestamp": "-1.7e308"}).encode(),
    "huge_int_time": json.dumps(_SAMPLE | {"timestamp": 10**400}).encode(),
    "huge_int_value": json.dumps(_SAMPLE | {"value": 10**400}).encode(),
    "huge_int_feature": json.dumps(_AGGREGATE | {"id": "a", "mean": 10**400}).encode(),
    "huge_int_features": json.dumps({"id": "a", "features": [10**400] * 64}).encode(),
    "utf8_bom": b"\xef\xbb\xbf" + json.dumps(_SAMPLE).encode(),
    "utf16": json.dumps(_SAMPLE).encode("utf-16"),
    "lone_surrogate": json.dumps(_SAMPLE | {"uid": "\ud800", "name": "\ud800"}).encode(
        "utf-8", errors="surrogatepass"
    ),
    "escaped_surrogate": json.dumps(_SAMPLE | {"uid": "\ud800", "host_id": "\ud800"}).encode(),
    "nan_value": json.dumps(_SAMPLE | {"value": float("nan")}).encode(),
    "iso_extremes": json.dumps(_SAMPLE | {"timestamp": "0001-01-01T00:00:00+14:00"}).encode(),
}


# ------------------------------------------------------------------ running a DoFn


def _run(dofn, element) -> tuple[list, list[dict]]:
    """(main outputs, dead letters) of one process() call, after setup()."""
    dofn.setup()
    main, dead = [], []
    for out in dofn.process(element) or ():
        tag = getattr(out, "tag", None)
        if tag == DEAD_LETTER_TAG:
            dead.append(out.value)
        elif tag is None:
            main.append(out)
        else:
            main.append((tag, out.value))
    return main, dead


def _check_letters(dead: list[dict], inputs: list[bytes]) -> None:
    for letter in dead:
        assert set(letter) >= LETTER_FIELDS, letter
        assert isinstance(letter["error"], str) and letter["error"]
        json.dumps(letter, allow_nan=False)  # the sink can write it
    assert sorted(original_payload(d) for d in dead) == sorted(
        v for v in inputs if v in {original_payload(d) for d in dead}
    )
    remaining = list(inputs)
    for letter in dead:  # each dead letter is one of the inputs, byte for byte
        remaining.remove(original_payload(letter))


def _messages(values: list[bytes]) -> list[Message]:
    return [Message(v, source="fuzz", offset=i) for i, v in enumerate(values)]


# ------------------------------------------------------------------ the parsers


def check_frames_fold(values: list[bytes]) -> None:
    fold = FoldFrames(30.0, "timestamp", "auto", approximate=False, passthrough=False)
    main, dead = _run(fold, MessageBatch.of(_messages(values)))
    _check_letters(dead, values)
    counted = sum(v.value[1] for tag, v in main if tag == "seconds")
    assert counted + len(dead) == len(values)  # each frame is counted or dead-lettered


def check_frames_fold_single(values: list[bytes]) -> None:
    fold = FoldFrames(30.0, "ts", "epoch_ms", approximate=True, passthrough=True)
    for value in values:
        main, dead = _run(fold, Message(value, source="fuzz"))
        _check_letters(dead, [value])
        frames = [v for tag, v in main if tag == "frames"]
        assert len(frames) + len(dead) == 1


def check_metric_records(values: list[bytes]) -> None:
    parse = ParseMetricRecords("timestamp", "auto")
    main, dead = _run(parse, MessageBatch.of(_messages(values)))
    _check_letters(dead, values)
    assert len(main) + len(dead) == len(values)
    for stamped in main:
        record = stamped.value
        assert isinstance(record, MetricRecord) and isinstance(record.name, str)
        assert isinstance(record.value, float)
        json.dumps(record.labels)


def check_store_samples(values: list[bytes]) -> None:
    main, dead = [], []
    for message in _messages(values):
        m, d = _run(ParseSamples(), message)
        main += m
        dead += d
    _check_letters(dead, values)
    assert len(main) + len(dead) == len(values)
    for row_with_payload in main:
        row = row_with_payload[0]
        assert math.isfinite(row["value"]) and isinstance(row["timestamp_ms"], int)
        assert row["type"] in METRIC_TYPES


CLASSIFIER = ModelMetadata(
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
    name="anomaly",
    version="1",
    kind="detector",
    input_shape=[7],
    sha256="0" * 64,
    sklearn_version="x",
    created="now",
    features=["count", "mean", "min", "max", "p50", "p90", "p99"],
)


def _check_requests(metadata: ModelMetadata, values: list[bytes]) -> None:
    # All at once, as the source delivers them: bulk validation must refuse
    # exactly what the per-request rules refuse, and never crash.
    parse = _ParseRequests(metadata, keep_record=True, max_batch_size=7)
    main, dead = _run(parse, MessageBatch.of(_messages(values)))
    _check_letters(dead, values)
    assert sum(len(chunk) for chunk in main) + len(dead) == len(values)
    for chunk in main:
        features = chunk.features
        assert len(chunk) <= 7
        assert features.dtype == np.float64 and np.isfinite(features).all()
        assert features.shape == (len(chunk), int(np.prod(metadata.input_shape)))


def check_classifier_requests(values: list[bytes]) -> None:
    _check_requests(CLASSIFIER, values)


def check_detector_requests(values: list[bytes]) -> None:
    _check_requests(DETECTOR, values)


PARSERS = {
    "frames_fold": check_frames_fold,
    "frames_fold_single": check_frames_fold_single,
    "metric_records": check_metric_records,
    "store_samples": check_store_samples,
    "classifier_requests": check_classifier_requests,
    "detector_requests": check_detector_requests,
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_arbitrary_input(parser):
    check = PARSERS[parser]

    @FUZZ
    @given(values=batches)
    def run(values):
        check(values)

    run()


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("case", sorted(NASTY))
def test_nasty_input(parser, case):
    """Inputs random generation rarely hits; each one is a crash seen or feared."""
    PARSERS[parser]([NASTY[case]])
