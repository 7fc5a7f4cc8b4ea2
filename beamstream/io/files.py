"""JSON Lines files as a source (path or glob) and a sink (shard prefix).

The sink writes batch results as ``PREFIX-SSSSS-of-NNNNN.jsonl`` shards and
streaming results as new, never rewritten files per window and pane (see
``WriteJsonLines``); ``final_records`` reads back the final result per window.

The source splits files into byte ranges and reads each range in a DoFn, so a
batch run parallelises within one file and, in the batched shape, pays Beam's
per-element cost once per few thousand lines instead of once per line.
A line belongs to the range its first byte lies in. Offsets are byte offsets
of line starts: stable ids for dead letters and tests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN, WindowedValue

from beamstream import counters
from beamstream.io.elements import Message, MessageBatch, encode_payload

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

    @property
    def pattern(self) -> str:
        """The path or glob this reads."""
        return self._pattern

    def expand(self, pbegin):
        return (
            pbegin
            | "Match" >> fileio.MatchFiles(self._pattern, empty_match_treatment="DISALLOW")
            | "Split" >> beam.ParDo(_SplitFile(self._ranges))
            | "Distribute" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(_ReadRange(self._batched, self._batch_size))
        )


def _stamp(micros: int) -> str:
    """UTC time in ISO 8601 basic form, safe in file names: ``20231114T221320Z``."""
    seconds, rest = divmod(micros, 1_000_000)
    text = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{text}.{rest:06d}Z" if rest else f"{text}Z"


def _window_part(w) -> str:
    if isinstance(w, window.IntervalWindow):
        return f"{_stamp(w.start.micros)}-{_stamp(w.end.micros)}"
    return "global"


def new_run_id() -> str:
    """A name part unique to one run that sorts after every earlier run's:
    ``r`` + UTC start time to the microsecond + 4 random hex digits."""
    seconds, rest = divmod(time.time_ns() // 1000, 1_000_000)
    started = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"r{started}{rest:06d}Z{uuid.uuid4().hex[:4]}"


class _WritePaneFiles(beam.DoFn):
    """Streaming file sink: one new, immutable file per window, pane and bundle.

    Each bundle's records are grouped by (window, pane index) and written in
    ``finish_bundle`` to a hidden temporary file that is then renamed to
    ``PREFIX-<window start>-<window end>-<run>-<pane index>-<random>.jsonl``
    (``global`` instead of the window bounds in the global window), through
    Beam's ``FileSystems`` (local disk, GCS, S3, ... on every runner). No file
    is ever appended to, overwritten or deleted, so a restarted run (a new run
    id) cannot touch an earlier run's results, and a window that fires again
    lands in a new file that sorts after the earlier ones.

    Emits one ``fileio.FileResult`` per file, in the records' window and at
    their earliest timestamp, after the file is in place: the output
    watermark passes a time only once the files of the records before it are
    written (what the local streaming commit probe waits for).
    """

    def __init__(self, prefix: str, run_id: str):
        self._prefix = prefix
        self._run_id = run_id

    def setup(self):
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def start_bundle(self):
        # (window, pane index) -> [pane info, earliest timestamp, lines]
        self._panes: dict[tuple, list] = {}

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        w=beam.DoFn.WindowParam,
        pane=beam.DoFn.PaneInfoParam,
    ):
        index = pane.index if pane is not None else 0
        entry = self._panes.get((w, index))
        if entry is None:
            entry = self._panes[(w, index)] = [pane, timestamp, []]
        elif timestamp < entry[1]:
            entry[1] = timestamp
        entry[2].append(encode_payload(element) + b"\n")
        # Counted here: metrics reported from finish_bundle can miss the last
        # bundle of a streaming DirectRunner run. A failed write fails the
        # bundle, whose counts are then not committed.
        self._produced.inc()

    def finish_bundle(self):
        panes, self._panes = self._panes, {}
        for (w, index), (pane, earliest, lines) in panes.items():
            name = (
                f"{self._prefix}-{_window_part(w)}-{self._run_id}-{index:05d}"
                f"-{uuid.uuid4().hex[:12]}.jsonl"
            )
            directory, base = FileSystems.split(name)
            temp = FileSystems.join(directory, f".{base}.tmp") if directory else f".{base}.tmp"
            handle = FileSystems.create(
                temp, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED
            )
            try:
                handle.writelines(lines)
            finally:
                handle.close()
            FileSystems.rename([temp], [name])
            yield WindowedValue(
                fileio.FileResult(name, 0, 1, w, pane, None),
                earliest,
                (w,),
                pane if pane is not None else PANE_INFO_UNKNOWN,
            )


class _EncodeCounted(beam.DoFn):
    """One JSON line per element, counted as produced (batch: the files are
    committed when the run succeeds, and a failed run reports nothing)."""

    def setup(self):
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def process(self, element):
        self._produced.inc()
        yield encode_payload(element).decode("utf-8")


class WriteJsonLines(beam.PTransform):
    """Writes elements as JSON Lines files under ``prefix``.

    Bounded input: Beam's ``WriteToText``, shards ``PREFIX-SSSSS-of-NNNNN.jsonl``
    committed when the run succeeds. Unbounded input: one new file per window,
    pane and bundle (``_WritePaneFiles``), returned as ``FileResult``s; nothing
    under the prefix is ever overwritten or deleted. Read the results back in
    file-name order (``read_json_lines``); the last record per window there is
    the final one (``final_records``).

    Nothing is created or removed when the pipeline is built, only when it runs.
    """

    def __init__(self, prefix: str, num_shards: int = 0):
        super().__init__()
        self._prefix = prefix
        self._num_shards = num_shards

    def expand(self, pcoll):
        if not pcoll.is_bounded:
            return pcoll | "WritePanes" >> beam.ParDo(_WritePaneFiles(self._prefix, new_run_id()))
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


def result_files(prefix: str) -> list[str]:
    """The files a file sink wrote under ``prefix``, in name order.

    Name order is the order to read them in: batch shards, then per window the
    files of earlier runs before later runs' and, within a run, pane by pane.
    """
    matched = FileSystems.match([f"{prefix}-*.jsonl"])[0].metadata_list
    return sorted(m.path for m in matched)


def read_json_lines(prefix: str) -> Iterator[dict]:
    """Every record a file sink wrote under ``prefix``, file by file in name order."""
    for path in result_files(prefix):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def final_records(prefix: str, key: str = "window_start") -> dict[Any, dict]:
    """The final result per window: the last record per ``key`` in ``read_json_lines`` order.

    A window reported more than once (late panes, or again after a restart)
    has its last report last, so this is what a reader should keep.
    """
    return {record[key]: record for record in read_json_lines(prefix)}
