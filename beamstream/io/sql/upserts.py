"""Idempotent writes: a replayed bundle must not insert twice (COPY for big PostgreSQL batches)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from beamstream.io.sql.engines import SchemaError

_LOG = logging.getLogger(__name__)


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
