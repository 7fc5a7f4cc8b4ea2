"""``WriteRows``: batches of rows upserted in one transaction each; bad rows to dead letters."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import apache_beam as beam
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from beamstream.counters import MESSAGES_PRODUCED, counter, error_counter
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.io.sql.engines import (
    engine_for,
    redacted,
)
from beamstream.io.sql.retries import RetryPolicy, error_text, with_retries
from beamstream.io.sql.upserts import upsert
from beamstream.io.uris import parse_sql_uri

_LOG = logging.getLogger(__name__)


class RowWithPayload(NamedTuple):
    """A row plus the original message text, for its dead letter."""

    row: Mapping[str, Any]
    payload: str | bytes | None


def _split(element: Any) -> tuple[Mapping[str, Any], str | bytes | None]:
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[0], Mapping):
        return element[0], element[1]
    return element, None


class _WriteBatchFn(beam.DoFn):
    """Upserts one batch per element in one transaction; isolates bad rows on failure."""

    def __init__(
        self,
        url: str,
        table: sa.Table,
        key_columns: Sequence[str],
        prepare: Callable[[Engine], Any] | None,
        retry: RetryPolicy,
        step: str,
        application_name: str,
    ):
        self._url = url
        self._application_name = application_name
        self._table = table
        self._keys = list(key_columns)
        self._prepare = prepare
        self._retry = retry
        self._step = step
        self._engine: Engine | None = None

    def setup(self) -> None:
        self._engine = engine_for(self._url, application_name=self._application_name)
        prepare, engine = self._prepare, self._engine
        if prepare is not None:
            with_retries(lambda: prepare(engine), self._retry, "schema migration")
        self._written = counter(MESSAGES_PRODUCED)
        self._rows = counter("rows_written")

    def process(self, batch: list[Any]):
        parts = [_split(element) for element in batch]
        rows = [row for row, _ in parts]
        try:
            with_retries(lambda: self._write(rows), self._retry, f"write to {self._where()}")
        except sa.exc.StatementError as exc:
            # A row broke the batch: write rows one by one to find which.
            _LOG.info("batch of %d failed (%s); isolating bad rows", len(rows), error_text(exc))
            yield from self._write_one_by_one(parts)
            return
        self._written.inc(len(rows))
        self._rows.inc(len(rows))

    def _write(self, rows: list[Mapping[str, Any]]) -> None:
        assert self._engine is not None
        with self._engine.begin() as conn:
            upsert(conn, self._table, rows, self._keys)

    def _write_one_by_one(self, parts: list[tuple[Mapping[str, Any], Any]]):
        for row, payload in parts:
            try:
                with_retries(partial(self._write, [row]), self._retry, self._where())
            except sa.exc.StatementError as exc:
                error_counter(type(exc.orig or exc).__name__).inc()
                text = payload if payload is not None else json.dumps(row, default=str)
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG,
                    dead_letter(
                        error_text(exc),
                        text,
                        step=self._step,
                        source=self._where(),
                        error_type=type(exc.orig or exc).__name__,
                    ),
                )
            else:
                self._written.inc()
                self._rows.inc()

    def _where(self) -> str:
        return f"{redacted(self._url)}#{self._table.name}"

    def teardown(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class WriteRows(beam.PTransform):
    """Upserts dict rows into ``table`` in batches per bundle; returns the dead letters.

    Elements are row dicts (column → value), or ``RowWithPayload(row, text)``
    to give the dead letter the original message. Rows are grouped into batches
    of up to ``batch_size`` within a bundle (``BatchElements``) and each batch
    is one upsert on ``key_columns`` in one transaction, so a replay writes
    nothing twice. Transient errors are retried with ``retry``'s backoff, then
    the bundle fails (the runner retries it); a batch that fails otherwise is
    written row by row and the rows the database refuses go to the
    ``dead_letter`` output as dead-letter records. ``prepare(engine)`` runs
    once per DoFn instance before any write (typically ``migrate``);
    ``application_name`` labels PostgreSQL sessions.
    """

    def __init__(
        self,
        url: str,
        table: sa.Table,
        key_columns: Sequence[str],
        *,
        batch_size: int = 1000,
        prepare: Callable[[Engine], Any] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        step: str = "write_rows",
        application_name: str = "beamstream",
    ):
        super().__init__()
        parse_sql_uri(url)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._url = url
        self._table = table
        self._keys = list(key_columns)
        self._batch_size = batch_size
        self._prepare = prepare
        self._retry = retry
        self._step = step
        self._application_name = application_name

    def expand(self, pcoll):
        outputs = (
            pcoll
            | "Batch"
            >> beam.BatchElements(
                min_batch_size=self._batch_size, max_batch_size=self._batch_size
            )
            | "Upsert"
            >> beam.ParDo(
                _WriteBatchFn(
                    self._url,
                    self._table,
                    self._keys,
                    self._prepare,
                    self._retry,
                    self._step,
                    self._application_name,
                )
            ).with_outputs(DEAD_LETTER_TAG)
        )
        return outputs[DEAD_LETTER_TAG]
