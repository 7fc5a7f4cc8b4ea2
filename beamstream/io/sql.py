"""SQL plumbing shared by every pipeline that stores rows: engines, upserts,
versioned migrations, transient-error detection and the ``WriteRows`` transform.

Pipelines that write to a database (``store``, metric aggregation) need the same
four things: one URL form for SQLite, PostgreSQL and MySQL; idempotent writes
(a replayed bundle must not insert twice); a schema that is created *and
upgraded* on start; and a clear split between errors worth retrying (the
connection dropped, a deadlock) and errors of the row itself (dead letter).

Requires the ``sql`` extra (SQLAlchemy 2, psycopg 3, PyMySQL).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import apache_beam as beam

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "beamstream's SQL sinks need SQLAlchemy and a driver: pip install 'beamstream[sql]'"
    ) from _exc

from beamstream.counters import MESSAGES_PRODUCED, counter, error_counter
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.io.uris import SqlUri, parse_sql_uri

_LOG = logging.getLogger(__name__)

_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
SCHEMA_VERSIONS_TABLE = "beamstream_schema_versions"


class SchemaError(RuntimeError):
    """The database schema cannot be brought to the version this code expects."""


class TransientWriteError(RuntimeError):
    """A write kept failing with transient errors; the bundle fails so the runner retries it."""


# --------------------------------------------------------------------------- engines


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` → ``postgresql+psycopg://``, ``mysql://`` → ``mysql+pymysql://``."""
    uri = parse_sql_uri(url)
    scheme, rest = uri.url.split("://", 1)
    if "+" not in scheme and uri.dialect in _DRIVERS:
        return f"{_DRIVERS[uri.dialect]}://{rest}"
    return uri.url


def engine_for(url: str, application_name: str = "beamstream", **kwargs: Any) -> Engine:
    """An Engine for a sink URL, with the installed drivers and stale-connection checks.

    ``application_name`` labels PostgreSQL sessions (``pg_stat_activity``) so an
    operator can tell the pipeline's connections apart.
    """
    full = sqlalchemy_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if full.startswith("postgresql"):
        options["connect_args"] = {"application_name": application_name}
    elif full.startswith("sqlite"):
        # Several DoFn instances may write one file: wait on its lock, don't fail.
        options["connect_args"] = {"timeout": 30}
    elif full.startswith("mysql"):
        options["pool_recycle"] = 3600
        # One charset for the text columns and the connection.
        options["connect_args"] = {"charset": "utf8mb4"}
    options.update(kwargs)
    return sa.create_engine(full, **options)


def redacted(url: str) -> str:
    return SqlUri(url=url, dialect="").redacted()


# --------------------------------------------------------------------------- upserts


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
) -> None:
    """Inserts ``rows``; a row whose key exists overwrites the other columns.

    One multi-row statement per call (SQLAlchemy's insertmanyvalues). Rows
    repeating a key within the call are reduced to the last one first: PostgreSQL
    refuses to update one row twice in a statement.
    """
    if not rows:
        return
    unique = list({tuple(row[k] for k in key_columns): row for row in rows}.values())
    present = set(unique[0])
    update = [c.name for c in table.columns if c.name in present and c.name not in key_columns]
    dialect = conn.dialect.name
    if dialect == "postgresql" and len(unique) >= _COPY_MIN_ROWS and _has_copy(conn):
        _copy_upsert(conn, table, unique, list(key_columns), update)
        return
    stmt: Any
    if dialect in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        if update:
            stmt = ins.on_conflict_do_update(
                index_elements=list(key_columns), set_={c: ins.excluded[c] for c in update}
            )
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=list(key_columns))
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        mysql_ins = mysql.insert(table)
        # MySQL has no DO NOTHING: re-assigning a key column is the no-op form.
        targets = update or [key_columns[0]]
        stmt = mysql_ins.on_duplicate_key_update({c: mysql_ins.inserted[c] for c in targets})
    else:
        raise SchemaError(f"upsert is not implemented for the {dialect} dialect")
    conn.execute(stmt, unique)


_COPY_MIN_ROWS = 50


def _has_copy(conn: Connection) -> bool:
    return hasattr(conn.connection.driver_connection, "cursor") and conn.dialect.driver == "psycopg"


def _copy_upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key_columns: list[str],
    update: list[str],
) -> None:
    """PostgreSQL bulk upsert: COPY into a session temp table, then one INSERT ... SELECT
    ... ON CONFLICT. Several times faster than a multi-row VALUES statement."""
    columns = [c.name for c in table.columns if c.name in rows[0]]
    quote = conn.dialect.identifier_preparer.quote
    target = quote(table.name) if table.schema is None else (
        f"{quote(table.schema)}.{quote(table.name)}"
    )
    stage = quote(f"_beamstream_stage_{table.name}"[:63])
    listed = ", ".join(quote(c) for c in columns)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    statement = f"COPY {stage} ({listed}) FROM STDIN"
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except dbapi_error as exc:  # raised by the driver itself: wrap like SQLAlchemy does
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi_error) from exc
    keys = ", ".join(quote(c) for c in key_columns)
    if update:
        action = "DO UPDATE SET " + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
    else:
        action = "DO NOTHING"
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {stage} "
        f"ON CONFLICT ({keys}) {action}"
    )
    conn.exec_driver_sql(f"TRUNCATE {stage}")


# --------------------------------------------------------------------------- migrations

MigrationStep = Callable[[Connection], None]

_versions_metadata = sa.MetaData()
schema_versions = sa.Table(
    SCHEMA_VERSIONS_TABLE,
    _versions_metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)


def schema_version(conn: Connection, name: str) -> int:
    """The applied version of schema ``name`` (0: none yet, or no versions table)."""
    if not sa.inspect(conn).has_table(SCHEMA_VERSIONS_TABLE):
        return 0
    found = conn.execute(
        sa.select(schema_versions.c.version).where(schema_versions.c.name == name)
    ).scalar()
    return int(found or 0)


def migrate(engine: Engine, name: str, steps: Sequence[MigrationStep]) -> int:
    """Brings schema ``name`` to version ``len(steps)``; returns that version.

    ``steps[i]`` upgrades version ``i`` to ``i + 1``. Versions live in
    ``beamstream_schema_versions`` (name, version). Concurrent workers are
    serialised by an advisory lock (PostgreSQL ``pg_advisory_lock``, MySQL
    ``GET_LOCK``); each step commits together with its version on PostgreSQL
    and SQLite. MySQL commits DDL implicitly, so a step interrupted there is
    re-run: write steps that tolerate a partial earlier run.
    """
    target = len(steps)
    with engine.connect() as conn:
        _lock(conn, name)
        try:
            with conn.begin():
                _versions_metadata.create_all(conn, checkfirst=True)
                current = schema_version(conn, name)
            if current > target:
                raise SchemaError(
                    f"schema {name!r} is at version {current}, newer than this code's "
                    f"{target}: upgrade beamstream"
                )
            for version in range(current, target):
                with conn.begin():
                    steps[version](conn)
                    upsert(
                        conn,
                        schema_versions,
                        [{"name": name, "version": version + 1,
                          "updated_at_ms": int(time.time() * 1000)}],
                        ["name"],
                    )
                _LOG.info("schema %s upgraded to version %d", name, version + 1)
        finally:
            _unlock(conn, name)
    return target


def _lock_key(name: str) -> int:
    import zlib

    return zlib.crc32(f"beamstream-schema:{name}".encode())


def _lock(conn: Connection, name: str) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(name)})
    elif dialect in ("mysql", "mariadb"):
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:n, 60)"), {"n": f"beamstream-schema:{name}"[:64]}
        ).scalar()
        if got != 1:
            raise SchemaError(f"timed out waiting for the migration lock of schema {name!r}")
    if conn.in_transaction():
        conn.commit()


def _unlock(conn: Connection, name: str) -> None:
    if conn.invalidated or conn.closed:
        return
    if conn.in_transaction():
        conn.rollback()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(name)})
    elif dialect in ("mysql", "mariadb"):
        conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": f"beamstream-schema:{name}"[:64]})
    if conn.in_transaction():
        conn.commit()


# --------------------------------------------------------------------------- transient errors

# PostgreSQL SQLSTATEs: connection exceptions (class 08), serialization failure,
# deadlock, lock not available, admin/crash shutdown, cannot connect now.
_PG_TRANSIENT_CLASSES = ("08",)
_PG_TRANSIENT = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}
# MySQL / MariaDB error numbers: lock wait timeout, deadlock, server gone away,
# lost connection, cannot connect, connection killed, server shutdown, too many
# connections, query interrupted (KILL QUERY).
_MYSQL_TRANSIENT = {1205, 1213, 2002, 2003, 2006, 2013, 2055, 1927, 1053, 1040, 1317, 4031}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure: lost connections, deadlocks, lock timeouts."""
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if exc.orig is not None:
            return _driver_error_is_transient(exc.orig)
        return False
    return _driver_error_is_transient(exc)


def _driver_error_is_transient(exc: BaseException) -> bool:
    module = type(exc).__module__
    if module.startswith("psycopg"):
        import psycopg

        state = getattr(exc, "sqlstate", None)
        if state:
            return state in _PG_TRANSIENT or state.startswith(_PG_TRANSIENT_CLASSES)
        # No SQLSTATE: the client lost the server (closed, reset, timed out).
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    if module.startswith("pymysql"):
        import pymysql

        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in _MYSQL_TRANSIENT:
            return True
        return isinstance(exc, pymysql.err.InterfaceError)
    if module.startswith("sqlite3"):
        import sqlite3

        return isinstance(exc, sqlite3.OperationalError) and str(exc).lower().startswith(
            _SQLITE_TRANSIENT
        )
    return isinstance(exc, (ConnectionError, TimeoutError))


def error_text(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's SQL and parameter dump."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip() or type(exc.orig).__name__
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient database errors."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0

    def delays(self) -> Iterable[float]:
        delay = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield delay * (0.5 + random.random() / 2)
            delay = min(delay * 2, self.max_backoff_s)


def with_retries(
    action: Callable[[], Any], policy: RetryPolicy, what: str = "database write"
) -> Any:
    """Runs ``action``; transient errors are retried with backoff, then TransientWriteError."""
    delays = iter(policy.delays())
    attempt = 1
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise TransientWriteError(
                    f"{what} failed {attempt} times with transient errors; last: "
                    f"{error_text(exc)}"
                ) from exc
            _LOG.warning(
                "%s: transient error (attempt %d of %d), retrying in %.2fs: %s",
                what, attempt, policy.max_attempts, delay, error_text(exc),
            )
            error_counter(f"transient:{type(exc).__name__}").inc()
            time.sleep(delay)
            attempt += 1


# --------------------------------------------------------------------------- WriteRows


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
