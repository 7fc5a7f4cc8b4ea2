"""``beamstream replay``: re-publish dead letters once their cause is fixed.

    beamstream replay --source DLQ_URI --sink URI [--error_type T ...] [--dry_run]

Reads dead letters (``{"error", "error_type", "step", "payload", "source",
"timestamp"}``, see ``beamstream.dead_letter``) from a Kafka topic, a Pub/Sub
subscription or JSON Lines files (a path, a glob, or the prefix a file
dead-letter sink wrote its shards under) and publishes each one's original
payload, byte for byte, to ``--sink`` (Kafka, Pub/Sub, or a JSON Lines file
``PREFIX-00000-of-00001.jsonl``). ``--error_type`` (repeatable) replays only
those types; ``--dry_run`` counts what would be replayed and publishes
nothing. Prints one summary line.

Acknowledgement: a replayed Pub/Sub dead letter is acked (removed from the
subscription) only after the sink confirmed it; letters of other error types
stay. A Kafka topic keeps its records; with ``?group=ID`` in the source URI
the replayed offsets are committed to that group, and ``start=committed``
continues from there next time. The tool stops once the source has been quiet
for ``--idle_timeout`` seconds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from beamstream.dead_letter import original_payload
from beamstream.io.clients import ClientError, open_publisher, open_subscriber
from beamstream.io.uris import FileUri, KafkaUri, Uri, UriError, parse_sink, parse_source

BATCH = 500


@dataclass
class ReplayReport:
    """What a replay read and did."""

    read: int = 0
    replayed: int = 0
    skipped: int = 0  # other error types
    unreadable: int = 0  # not a dead-letter record
    by_type: Counter = field(default_factory=Counter)

    def summary(self, source: str, sink: str, dry_run: bool) -> str:
        verb = "would replay" if dry_run else "replayed"
        types = ", ".join(f"{t}: {n}" for t, n in sorted(self.by_type.items())) or "none"
        return (
            f"{verb} {self.replayed} of {self.read} dead letter(s) from {source} to {sink} "
            f"({types}); skipped {self.skipped} of other error types, "
            f"{self.unreadable} unreadable"
        )


def read_letter(value: bytes) -> dict[str, Any] | None:
    """The dead-letter record in a message, or None when it is not one."""
    try:
        record = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or "payload" not in record or "error_type" not in record:
        return None
    return record


# ------------------------------------------------------------------ sources and sinks


def _shard_paths(uri: FileUri) -> list[str]:
    path = uri.path
    if glob.has_magic(path):
        return sorted(glob.glob(path))
    if os.path.isfile(path):
        return [path]
    shards = sorted(glob.glob(f"{glob.escape(path)}-*-of-*.jsonl"))
    if not shards:
        raise FileNotFoundError(f"no dead-letter file or shards at {path}")
    return shards


class _FileLetters:
    """Lines of JSON Lines files, with a no-op ack (files are not consumed)."""

    def __init__(self, uri: FileUri):
        self._paths = _shard_paths(uri)

    def batches(self, idle_timeout: float) -> Iterator[list[tuple[bytes, Any]]]:
        del idle_timeout
        for path in self._paths:
            with open(path, "rb") as handle:
                batch = [(line.rstrip(b"\r\n"), None) for line in handle if line.strip()]
            for i in range(0, len(batch), BATCH):
                yield batch[i : i + BATCH]

    def close(self) -> None:
        pass


class _BrokerLetters:
    """Messages of a Kafka topic (from the start) or a Pub/Sub subscription, until quiet."""

    def __init__(self, text: str, config: dict[str, Any]):
        self._subscriber = open_subscriber(text, from_beginning=True, **config)

    def batches(self, idle_timeout: float) -> Iterator[list[tuple[bytes, Any]]]:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_timeout:
            received = self._subscriber.receive(BATCH, timeout=1.0)
            if received:
                quiet_since = time.monotonic()
                yield [(m.value, m) for m in received]

    def close(self) -> None:
        self._subscriber.close()


class _FileSink:
    """One JSON Lines shard: ``PREFIX-00000-of-00001.jsonl``."""

    def __init__(self, uri: FileUri):
        self.path = f"{uri.path}-00000-of-00001.jsonl"
        self._lines: list[bytes] = []

    def publish(self, value: bytes) -> None:
        if b"\n" in value or b"\r" in value:  # one line per record: re-encode JSON compactly
            try:
                value = json.dumps(json.loads(value), separators=(",", ":")).encode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise ClientError(
                    f"{self.path}: a payload spans several lines and is not JSON; "
                    "replay it to a Kafka or Pub/Sub sink"
                ) from None
        self._lines.append(value)

    def flush(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(self.path, "wb") as handle:
            handle.writelines(line + b"\n" for line in self._lines)

    def close(self) -> None:
        pass


class _BrokerSink:
    def __init__(self, text: str, config: dict[str, Any]):
        self._publisher = open_publisher(text, **config)

    def publish(self, value: bytes) -> None:
        self._publisher.publish(value)

    def flush(self) -> None:
        self._publisher.flush(timeout=60)

    def close(self) -> None:
        self._publisher.close()


# ------------------------------------------------------------------ replay


def replay(
    source: str,
    sink: str,
    error_types: Sequence[str] = (),
    dry_run: bool = False,
    idle_timeout: float = 5.0,
    limit: int | None = None,
    kafka_config: dict[str, Any] | None = None,
) -> ReplayReport:
    """Re-publishes the original payloads of matching dead letters; returns the counts."""
    source_uri, sink_uri = parse_source(source), parse_sink(sink)
    if not isinstance(sink_uri, (FileUri, KafkaUri)) and sink_uri.scheme != "pubsub":
        raise UriError(f"{sink_uri.redacted()}: replay publishes to Kafka, Pub/Sub or a file")
    letters = (
        _FileLetters(source_uri)
        if isinstance(source_uri, FileUri)
        else _BrokerLetters(source, _config_for(source_uri, kafka_config))
    )
    report = ReplayReport()
    wanted = set(error_types)
    try:
        out = None if dry_run else _open_sink(sink, sink_uri, kafka_config)
        try:
            for batch in letters.batches(idle_timeout):
                acks = []
                for value, message in batch:
                    if limit is not None and report.replayed >= limit:
                        break
                    report.read += 1
                    record = read_letter(value)
                    if record is None:
                        report.unreadable += 1
                        continue
                    if wanted and record.get("error_type") not in wanted:
                        report.skipped += 1
                        continue
                    report.replayed += 1
                    report.by_type[str(record.get("error_type"))] += 1
                    if out is not None:
                        out.publish(original_payload(record))
                        acks.append(message)
                if out is not None and acks:
                    out.flush()  # raises before any ack when the sink refused something
                    for message in acks:
                        if message is not None:
                            message.ack()
                if limit is not None and report.replayed >= limit:
                    break
            if isinstance(out, _FileSink):
                out.flush()
        finally:
            if out is not None:
                out.close()
    finally:
        letters.close()
    return report


def _config_for(uri: Uri, kafka_config: dict[str, Any] | None) -> dict[str, Any]:
    return dict(kafka_config or {}) if isinstance(uri, KafkaUri) else {}


def _open_sink(text: str, uri: Uri, kafka_config: dict[str, Any] | None):
    if isinstance(uri, FileUri):
        return _FileSink(uri)
    return _BrokerSink(text, _config_for(uri, kafka_config))


# ------------------------------------------------------------------ command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream replay",
        description=(__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="Dead letters: kafka://, pubsub://, path.")
    parser.add_argument("--sink", required=True, help="Where the original payloads go.")
    parser.add_argument(
        "--error_type",
        "--error-type",
        action="append",
        default=[],
        help="Replay only dead letters of this error_type (repeatable).",
    )
    parser.add_argument(
        "--dry_run", "--dry-run", action="store_true", help="Count, publish nothing."
    )
    parser.add_argument(
        "--idle_timeout",
        type=float,
        default=5.0,
        help="Seconds without new dead letters after which a broker source is done.",
    )
    parser.add_argument("--limit", type=int, default=None, help="Replay at most this many.")
    parser.add_argument(
        "--kafka_config",
        action="append",
        default=None,
        help="kafka-python setting KEY=VALUE (repeatable; VALUE may be env:NAME or file:PATH).",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from apache_beam.options.pipeline_options import PipelineOptions

    from beamstream.launch.options import kafka_config

    flags = [f"--kafka_config={item}" for item in args.kafka_config or []]
    config = kafka_config(PipelineOptions(flags))
    try:
        report = replay(
            args.source,
            args.sink,
            args.error_type,
            args.dry_run,
            args.idle_timeout,
            args.limit,
            config,
        )
    except ClientError as exc:
        print(f"beamstream replay: error: {exc}", file=sys.stderr)
        return 1
    print(
        report.summary(
            parse_source(args.source).redacted(), parse_sink(args.sink).redacted(), args.dry_run
        )
    )
    return 0
