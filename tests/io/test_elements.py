"""The leaf element module: Beam's time bounds, the one payload encoder, batch timestamps."""

from __future__ import annotations

import ast
from pathlib import Path

from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP

from beamstream.io import elements
from beamstream.io.elements import (
    MAX_WATERMARK,
    NO_WATERMARK,
    Message,
    MessageBatch,
    as_elements,
    batch_timestamp,
    encode_payload,
)


def test_time_bounds_are_beams():
    assert MIN_TIMESTAMP.micros == NO_WATERMARK
    assert MAX_TIMESTAMP.micros == MAX_WATERMARK


def _imports(path: str) -> list[str]:
    tree = ast.parse(Path(path).read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_elements_and_errors_are_leaves():
    import beamstream.errors

    for module in (elements, beamstream.errors):
        assert module.__file__ is not None
        ours = [n for n in _imports(module.__file__) if n.startswith(("beamstream", "apache_beam"))]
        assert ours == [], f"{module.__name__} imports {ours}"


def test_encode_payload():
    assert encode_payload(b"\x00raw") == b"\x00raw"
    assert encode_payload("é") == "é".encode()
    assert encode_payload({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def _batch(times, watermark=NO_WATERMARK):
    return MessageBatch.of(
        [Message(b"v%d" % i, offset=i, event_time_us=t) for i, t in enumerate(times)], watermark
    )


def test_batch_timestamp_is_the_earliest_known_event_time():
    assert batch_timestamp(_batch([5_000_000, 2_000_000, None])) == 2_000_000
    assert batch_timestamp(_batch([None], watermark=7)) == 7
    assert batch_timestamp(_batch([None])) == 0


def test_as_elements_keeps_batches_or_splits_them():
    batch = _batch([3, None, 1])
    assert as_elements([batch], batched=True) == [(batch, 1)]
    singles = as_elements([batch], batched=False)
    assert [(m.value, ts) for m, ts in singles] == [(b"v0", 3), (b"v1", 1), (b"v2", 1)]
