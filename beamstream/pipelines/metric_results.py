"""What the metrics pipeline writes: messages or database rows, and the tables they go to.

Message sinks (Kafka, Pub/Sub, files) get formatted records; databases get
``metric_stats`` and ``metric_last_n`` rows, upserted so replays do not
duplicate, created and upgraded by versioned migrations, read by
``beamstream query``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam

from beamstream.event_time import format_time
from beamstream.io.sinks import Sink, WriteMessages
from beamstream.io.uris import SqlUri, parse_sink
from beamstream.transforms.metric_stats import PERCENTILES
from beamstream.transforms.prometheus_records import (
    format_value,
)

STATS_TABLE = "metric_stats"
LAST_N_TABLE = "metric_last_n"
STAT_COLUMNS = (
    ("count", "count_nan", "sum", "min", "max", "mean", "last")
    + tuple(label for label, _ in PERCENTILES)
    + ("rate",)
)


def stats_message(stats: dict[str, Any], time_format: str) -> dict[str, Any]:
    """A statistics record for message sinks: formatted times, JSON-safe values."""
    out = dict(stats)
    out["window_start"] = format_time(stats["window_start"], time_format)
    out["window_end"] = format_time(stats["window_end"], time_format)
    for column in STAT_COLUMNS:
        if isinstance(out.get(column), float):
            out[column] = format_value(out[column])
    return out


def last_n_message(last: dict[str, Any], time_format: str) -> dict[str, Any]:
    return {
        "name": last["name"],
        "labels": last["labels"],
        "records": [
            {
                "timestamp": format_time(r["timestamp"], time_format),
                "value": format_value(r["value"]),
                "labels": r["labels"],
            }
            for r in last["records"]
        ],
        "as_of": format_time(last["as_of"], time_format),
    }


def _sql_number(value: Any) -> Any:
    """Non-finite floats are stored as NULL (MySQL has no NaN/Inf; SQLite turns NaN into NULL)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def labels_text(labels: dict[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def stats_row(stats: dict[str, Any]) -> dict[str, Any]:
    row = {
        "name": stats["name"],
        "labels": labels_text(stats["labels"]),
        "window_start_ms": stats["window_start"] // 1000,
        "window_end_ms": stats["window_end"] // 1000,
        "updated_at_ms": int(time.time() * 1000),
    }
    for column in STAT_COLUMNS:
        row[column] = _sql_number(stats.get(column))
    return row


def last_n_row(last: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": last["name"],
        "labels": labels_text(last["labels"]),
        "records": json.dumps(last_n_message(last, "epoch_ms")["records"], separators=(",", ":")),
        "as_of_ms": last["as_of"] // 1000,
        "updated_at_ms": int(time.time() * 1000),
    }


# --------------------------------------------------------------------------- SQL tables


def _tables():
    import sqlalchemy as sa

    metadata = sa.MetaData()
    stats = sa.Table(
        STATS_TABLE,
        metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("labels", sa.String(512), primary_key=True),
        sa.Column("window_start_ms", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("window_end_ms", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("count_nan", sa.BigInteger, nullable=False),
        *(sa.Column(c, sa.Float(precision=53)) for c in STAT_COLUMNS[2:]),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    last_n = sa.Table(
        LAST_N_TABLE,
        metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("labels", sa.String(512), primary_key=True),
        sa.Column("records", sa.Text, nullable=False),
        sa.Column("as_of_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    return stats, last_n


def _create_stats_v1(conn) -> None:
    _tables()[0].create(conn, checkfirst=True)


def _create_last_n_v1(conn) -> None:
    _tables()[1].create(conn, checkfirst=True)


def prepare_stats(engine) -> None:
    from beamstream.io.sql import migrate

    migrate(engine, STATS_TABLE, [_create_stats_v1])


def prepare_last_n(engine) -> None:
    from beamstream.io.sql import migrate

    migrate(engine, LAST_N_TABLE, [_create_last_n_v1])


class WriteMetricResults(Sink):
    """Message sinks get formatted records; databases get upserted rows.

    Returns what the write returns: for a database, its dead letters.
    """

    def __init__(self, uri: str, kind: str, time_format: str, kafka: dict[str, Any]):
        super().__init__()
        self._uri = uri
        self.returns_dead_letters = isinstance(parse_sink(uri), SqlUri)
        self._kind = kind
        self._format = time_format
        self._kafka = kafka

    def expand(self, pcoll):
        if self.returns_dead_letters:
            from beamstream.io.sql import WriteRows

            stats_table, last_n_table = _tables()
            to_row: Callable[[dict[str, Any]], dict[str, Any]]
            if self._kind == "stats":
                table, keys, to_row, prepare = (
                    stats_table,
                    ["name", "labels", "window_start_ms", "window_end_ms"],
                    stats_row,
                    prepare_stats,
                )
            else:
                table, keys, to_row, prepare = (
                    last_n_table,
                    ["name", "labels"],
                    last_n_row,
                    prepare_last_n,
                )
            return (
                pcoll
                | "ToRows" >> beam.Map(to_row)
                | "Upsert"
                >> WriteRows(self._uri, table, keys, prepare=prepare, step=f"metrics_{self._kind}")
            )
        to_message = stats_message if self._kind == "stats" else last_n_message
        return (
            pcoll
            | "ToMessages" >> beam.Map(to_message, self._format)
            | "Write" >> WriteMessages(self._uri, kafka_config=self._kafka)
        )


# --------------------------------------------------------------------------- the pipeline
