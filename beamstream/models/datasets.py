"""JSON records from a source URI, in memory, for training.

Training is a single-process fit, so it reads a bounded source directly rather
than through a pipeline: JSON Lines files (path or glob, any Beam filesystem)
or a Kafka topic read up to its end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from beamstream.io.uris import FileUri, KafkaUri, UriError, parse_source

_LOG = logging.getLogger(__name__)


def read_records(uri: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """JSON objects from ``uri``; lines that are not JSON objects are skipped and logged."""
    parsed = parse_source(uri)
    if isinstance(parsed, FileUri):
        values = _file_values(parsed.path)
    elif isinstance(parsed, KafkaUri):
        values = _kafka_values(parsed)
    else:
        raise UriError(f"{parsed.redacted()}: training reads files or kafka:// (a bounded read)")
    bad = seen = 0
    for value in values:
        try:
            record = json.loads(value)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            bad += 1
            continue
        yield record
        seen += 1
        if limit is not None and seen >= limit:
            break
    if bad:
        _LOG.warning("%s: skipped %d value(s) that are not JSON objects", uri, bad)


def _file_values(pattern: str) -> Iterator[bytes]:
    from apache_beam.io.filesystems import FileSystems

    matches = FileSystems.match([pattern])[0].metadata_list
    if not matches:
        raise FileNotFoundError(f"no files match {pattern}")
    for metadata in sorted(matches, key=lambda m: m.path):
        with FileSystems.open(metadata.path, compression_type="uncompressed") as handle:
            for line in handle:
                if line.strip():
                    yield line


def _kafka_values(uri: KafkaUri) -> Iterator[bytes]:
    from dataclasses import replace

    from beamstream.io.kafka import read_spec
    from beamstream.io.kafka.reader import KafkaBatchReader

    spec = read_spec(uri)
    if spec.stop == "never" and spec.max_records is None and spec.max_read_time is None:
        spec = replace(spec, stop="end")  # training needs a bounded read
    reader = KafkaBatchReader(spec)
    try:
        while not reader.done:
            for batch in reader.read(timeout_s=0.5):
                yield from batch.values
    finally:
        reader.close()
