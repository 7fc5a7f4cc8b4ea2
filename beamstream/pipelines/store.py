"""``beamstream store``: metric samples from a broker or files into a SQL database.

Reads ``beamstream collect`` records ``{"host", "host_id", "name", "type",
"value", "timestamp" (epoch ms), "labels"}`` from ``--source`` and upserts
them into the table ``metric_samples`` of ``--sink``
(``sqlite:///path.db``, ``postgresql://user@host/db``, ``mysql://user@host/db``)
in batches of ``--batch_size`` per bundle. A sample is identified by
(host_id, name, labels, timestamp): replaying input inserts nothing twice.

The schema is versioned (``beamstream_schema_versions``) and created or
upgraded on start. Records that are not valid samples, and rows the database
refuses, go to ``--dead_letter_sink``; transient database errors (lost
connection, deadlock, lock timeout) are retried with backoff and then fail
the bundle so the runner retries it.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import sqlalchemy as sa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult
from sqlalchemy.engine import Connection, Engine

from beamstream import payload_json
from beamstream.argtypes import positive_int
from beamstream.collect.metrics import METRIC_TYPES
from beamstream.counters import MESSAGES_CONSUMED, counter, error_counter
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.event_time import EventTimeError, parse_time
from beamstream.io.elements import Message
from beamstream.io.sinks import Sink
from beamstream.io.sources import ReadMessages
from beamstream.io.sql import RetryPolicy, RowWithPayload, WriteRows, migrate
from beamstream.io.uris import SqlUri, UriError, parse_sink
from beamstream.launch.help import pipeline_main
from beamstream.launch.options import (
    DeadLetterOptions,
    EventTimeOptions,
    KafkaClientOptions,
    SinkOptions,
    SourceOptions,
    event_time_policy,
    kafka_config,
)
from beamstream.launch.outputs import write_outputs
from beamstream.launch.run import parse_options, run_pipeline

REQUIRED = ("source", "sink")
SCHEMA_NAME = "metric_samples"
TABLE_NAME = "metric_samples"
KEY_COLUMNS = ("host_id", "name", "labels_hash", "timestamp_ms")
MAX_HOST_ID = 64
MAX_NAME = 255


# --------------------------------------------------------------------------- schema

metadata = sa.MetaData()
metric_samples = sa.Table(
    TABLE_NAME,
    metadata,
    sa.Column("host_id", sa.String(MAX_HOST_ID), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), primary_key=True),
    # Labels are free-form JSON; the key uses their hash (MySQL cannot index TEXT).
    sa.Column("labels_hash", sa.String(40), primary_key=True),
    sa.Column("timestamp_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("host", sa.String(MAX_NAME), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("type", sa.String(16), nullable=False, server_default="gauge"),
    sa.Index("ix_metric_samples_name_time", "name", "timestamp_ms"),
)
"""The current (v2) layout: what the pipeline writes."""


def _v1_create_samples(conn: Connection) -> None:
    """v1: one row per sample, keyed for idempotent upserts. Frozen: never edit."""
    v1 = sa.Table(
        TABLE_NAME,
        sa.MetaData(),
        sa.Column("host_id", sa.String(MAX_HOST_ID), primary_key=True),
        sa.Column("name", sa.String(MAX_NAME), primary_key=True),
        sa.Column("labels_hash", sa.String(40), primary_key=True),
        sa.Column("timestamp_ms", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("host", sa.String(MAX_NAME), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=False),
    )
    v1.create(conn, checkfirst=True)


def _v2_type_and_name_time_index(conn: Connection) -> None:
    """v2: the metric type (gauge/counter/timer) and an index for "metric X over time"."""
    inspector = sa.inspect(conn)
    columns = {c["name"] for c in inspector.get_columns(TABLE_NAME)}
    quote = conn.dialect.identifier_preparer.quote
    if "type" not in columns:  # MySQL commits DDL at once: tolerate a half-done run
        conn.execute(
            sa.text(
                f"ALTER TABLE {quote(TABLE_NAME)} ADD COLUMN {quote('type')} "
                "VARCHAR(16) NOT NULL DEFAULT 'gauge'"
            )
        )
    indexes = {i["name"] for i in inspector.get_indexes(TABLE_NAME)}
    if "ix_metric_samples_name_time" not in indexes:
        sa.Index(
            "ix_metric_samples_name_time",
            metric_samples.c.name,
            metric_samples.c.timestamp_ms,
        ).create(conn)


MIGRATIONS = [_v1_create_samples, _v2_type_and_name_time_index]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate_schema(engine: Engine, steps: Sequence = MIGRATIONS) -> int:
    """Creates or upgrades the store's tables; safe to call from every worker."""
    return migrate(engine, SCHEMA_NAME, list(steps))


# --------------------------------------------------------------------------- parsing


class SampleError(ValueError):
    """A record that is not a valid metric sample."""


def canonical_labels(labels: dict[str, Any]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sample_row(record: Any) -> dict[str, Any]:
    """A ``collect`` record as a ``metric_samples`` row, or SampleError saying why."""
    if not isinstance(record, dict):
        raise SampleError(f"expected a JSON object, got {type(record).__name__}")
    host_id = record.get("host_id")
    if not isinstance(host_id, str) or not host_id or len(host_id) > MAX_HOST_ID:
        raise SampleError(f"host_id must be a non-empty string of at most {MAX_HOST_ID} chars")
    name = record.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise SampleError(f"name must be a non-empty string of at most {MAX_NAME} chars")
    host = record.get("host", "")
    if not isinstance(host, str) or len(host) > MAX_NAME:
        raise SampleError(f"host must be a string of at most {MAX_NAME} chars")
    kind = record.get("type")
    if kind not in METRIC_TYPES:
        raise SampleError(f"type {kind!r} is not one of {', '.join(METRIC_TYPES)}")
    value = record.get("value")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:
        raise SampleError("value is too large for a float")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SampleError(f"value {value!r} is not a finite number")
    if "timestamp" not in record:
        raise SampleError("no timestamp")
    try:
        timestamp_ms = parse_time(record["timestamp"]) // 1000
    except EventTimeError as exc:
        raise SampleError(str(exc)) from None
    labels = record.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(v, (str, int, float, bool)) for v in labels.values()
    ):
        raise SampleError("labels must be an object of string/number/boolean values")
    labels_text = canonical_labels({str(k): v for k, v in labels.items()})
    return {
        "host_id": host_id,
        "name": name,
        "labels_hash": hashlib.sha1(labels_text.encode("utf-8")).hexdigest(),
        "timestamp_ms": timestamp_ms,
        "host": host,
        "labels": labels_text,
        "value": float(value),
        "type": kind,
    }


class ParseSamples(beam.DoFn):
    """Message → RowWithPayload(row, text); invalid records → dead-letter output."""

    def setup(self) -> None:
        self._consumed = counter(MESSAGES_CONSUMED)

    def process(self, message: Message):
        self._consumed.inc()
        try:
            text = message.value.decode("utf-8")
            row = sample_row(payload_json.loads(text))
        except (ValueError, SampleError, RecursionError) as exc:  # JSON and UTF-8 errors too
            error_type = type(exc).__name__
            error_counter(error_type).inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                dead_letter(exc, message.value, step="parse_sample", source=message.describe()),
            )
            return
        yield RowWithPayload(row, text)


class StoreSamples(Sink):
    """Messages → ``metric_samples`` rows upserted in ``url``; returns all dead letters."""

    def __init__(self, url: str, batch_size: int = 500, retry: RetryPolicy = RetryPolicy()):
        super().__init__()
        self._url = url
        self._batch_size = batch_size
        self._retry = retry

    def expand(self, messages):
        parsed = messages | "Parse" >> beam.ParDo(ParseSamples()).with_outputs(
            DEAD_LETTER_TAG, main="rows"
        )
        refused = parsed.rows | "Upsert" >> WriteRows(
            self._url,
            metric_samples,
            KEY_COLUMNS,
            batch_size=self._batch_size,
            prepare=migrate_schema,
            retry=self._retry,
            step="store_sample",
            application_name="beamstream-store",
        )
        return (parsed[DEAD_LETTER_TAG], refused) | "DeadLetters" >> beam.Flatten()


# --------------------------------------------------------------------------- pipeline


class StoreOptions(PipelineOptions):
    """Options of the store pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--batch_size",
            type=positive_int,
            default=500,
            help="Rows per upsert statement/transaction (batched within a bundle).",
        )
        parser.add_argument(
            "--write_attempts",
            type=positive_int,
            default=6,
            help="Attempts per batch on transient database errors before the bundle fails.",
        )


OPTION_CLASSES = (
    SourceOptions,
    SinkOptions,
    StoreOptions,
    DeadLetterOptions,
    EventTimeOptions,
    KafkaClientOptions,
)


def database_sink(text: str) -> str:
    """The ``--sink`` of this pipeline must be a database URL."""
    if not isinstance(parse_sink(text), SqlUri):
        raise UriError(f"{text}: store writes to a database: use sqlite:///path.db, "
                       "postgresql://... or mysql://...")
    return text


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> beam.PCollection:
    o = options.view_as(StoreOptions)
    sink = database_sink(options.view_as(SinkOptions).sink)
    kafka = kafka_config(options)
    read = ReadMessages(
        options.view_as(SourceOptions).source,
        event_time=event_time_policy(options),
        kafka_config=kafka,
    )
    # What StoreSamples returns (its dead letters) moves on only after the
    # rows before it were written: a Sink, it tells a streaming read what to commit.
    dead_letters = (
        pipeline
        | "ReadSamples" >> read
        | "StoreSamples"
        >> StoreSamples(sink, o.batch_size, RetryPolicy(max_attempts=o.write_attempts))
    )
    sinks = {
        "dead_letters": ("WriteDeadLetters", options.view_as(DeadLetterOptions).dead_letter_sink)
    }
    write_outputs({"dead_letters": dead_letters}, sinks, kafka)
    return dead_letters


def run(argv: Sequence[str] | None = None, test_pipeline=None) -> PipelineResult:
    options = parse_options(argv, REQUIRED)
    database_sink(options.view_as(SinkOptions).sink)
    return run_pipeline(build, options, test_pipeline)


def main(argv: Sequence[str]) -> int:
    return pipeline_main(sys.modules[__name__], argv)
