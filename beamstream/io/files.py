"""JSON Lines files as a source (path or glob) and a sink (shard prefix).

The source splits files into byte ranges and reads each range in a DoFn, so a
batch run parallelises within one file and, in the batched shape, pays Beam's
per-element cost once per few thousand lines instead of once per line.
A line belongs to the range its first byte lies in. Offsets are byte offsets
of line starts: stable ids for dead letters and tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from beamstream import counters
from beamstream.io.kafka import encode_value
from beamstream.io.message import Message, MessageBatch

_MIN_RANGE = 4 * 1024 * 1024


class _SplitFile(beam.DoFn):
    def __init__(self, ranges_per_file: int):
        self._ranges = ranges_per_file

    def process(self, metadata) -> Iterator[tuple[str, int, int]]:
        size = metadata.size_in_bytes
        step = max(_MIN_RANGE, -(-size // self._ranges))
        for start in range(0, max(size, 1), step):
            yield metadata.path, start, min(start + step, size)


class _ReadRange(beam.DoFn):
    """Reads the lines that start inside [start, end) of one file."""

    def __init__(self, batched: bool, batch_size: int):
        self._batched = batched
        self._batch_size = batch_size

    def process(self, file_range):
        path, start, end = file_range
        values: list[bytes] = []
        offsets: list[int] = []
        with FileSystems.open(path) as handle:
            position = start
            if start > 0:
                handle.seek(start - 1)
                skipped = handle.readline()  # finish the line the previous range owns
                position = start - 1 + len(skipped)
            while position < end:
                line = handle.readline()
                if not line:
                    break
                line_start, position = position, position + len(line)
                text = line.rstrip(b"\r\n")
                if not text.strip():
                    continue
                if not self._batched:
                    yield Message(value=text, source=path, offset=line_start)
                    continue
                values.append(text)
                offsets.append(line_start)
                if len(values) >= self._batch_size:
                    yield MessageBatch(path, 0, values, offsets)
                    values, offsets = [], []
        if values:
            yield MessageBatch(path, 0, values, offsets)


class ReadJsonLines(beam.PTransform):
    """Reads JSON Lines files matching ``pattern`` as Message or MessageBatch elements."""

    def __init__(
        self, pattern: str, *, batched: bool = False, batch_size: int = 5000, ranges: int = 16
    ):
        super().__init__()
        self._pattern = pattern
        self._batched = batched
        self._batch_size = batch_size
        self._ranges = ranges

    def expand(self, pbegin):
        return (
            pbegin
            | "Match" >> fileio.MatchFiles(self._pattern, empty_match_treatment="DISALLOW")
            | "Split" >> beam.ParDo(_SplitFile(self._ranges))
            | "Distribute" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(_ReadRange(self._batched, self._batch_size))
        )


class _AppendLines(beam.DoFn):
    """Streaming file sink: appends each bundle to one shard and flushes it.

    Windowed streaming writes through ``WriteToText`` would only appear once a
    window's pane fires file finalization; appending keeps results visible as
    they are produced, which is what a person tailing ``out/`` expects.
    """

    _locks: dict[str, threading.Lock] = {}

    def __init__(self, path: str):
        self._path = path

    def setup(self):
        self._lock = self._locks.setdefault(self._path, threading.Lock())
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def start_bundle(self):
        self._lines: list[bytes] = []

    def process(self, element):
        self._lines.append(encode_value(element) + b"\n")
        # Counted here: metrics reported from finish_bundle can miss the last
        # bundle of a streaming DirectRunner run. A failed write fails the
        # bundle, whose counts are then not committed.
        self._produced.inc()

    def finish_bundle(self):
        if self._lines:
            with self._lock, open(self._path, "ab") as handle:
                handle.writelines(self._lines)
                handle.flush()
            self._lines = []


class _EncodeCounted(beam.DoFn):
    """One JSON line per element, counted as produced (batch: the files are
    committed when the run succeeds, and a failed run reports nothing)."""

    def setup(self):
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def process(self, element):
        self._produced.inc()
        yield encode_value(element).decode("utf-8")


class WriteJsonLines(beam.PTransform):
    """Writes elements as JSON Lines shards ``PREFIX-SSSSS-of-NNNNN.jsonl``.

    Bounded input uses Beam's ``WriteToText``; unbounded input appends to the
    single shard ``PREFIX-00000-of-00001.jsonl`` as results are produced.
    """

    def __init__(self, prefix: str, num_shards: int = 0):
        super().__init__()
        self._prefix = prefix
        self._num_shards = num_shards

    def expand(self, pcoll):
        import os

        if not pcoll.is_bounded:
            directory = os.path.dirname(self._prefix)
            if directory:
                os.makedirs(directory, exist_ok=True)
            path = f"{self._prefix}-00000-of-00001.jsonl"
            if os.path.exists(path):
                os.remove(path)
            return pcoll | "Append" >> beam.ParDo(_AppendLines(path))
        return (
            pcoll
            | "Encode" >> beam.ParDo(_EncodeCounted())
            | "Write"
            >> beam.io.WriteToText(
                self._prefix,
                file_name_suffix=".jsonl",
                shard_name_template="-SSSSS-of-NNNNN",
                num_shards=self._num_shards,
            )
        )
