"""Versioned schema migrations, applied once under a database lock on start."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from beamstream.io.sql.engines import SCHEMA_VERSIONS_TABLE, SchemaError
from beamstream.io.sql.upserts import upsert

_LOG = logging.getLogger(__name__)


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
