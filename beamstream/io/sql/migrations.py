"""Versioned schema migrations, applied once under a database lock on start."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Sequence

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
    serialised by one lock per database, not per schema, since all schemas
    share the versions table (PostgreSQL ``pg_advisory_lock``, MySQL
    ``GET_LOCK``, SQLite a lock file beside the database); each step commits
    together with its version on PostgreSQL and SQLite. MySQL commits DDL
    implicitly, so a step interrupted there is re-run: write steps that
    tolerate a partial earlier run.
    """
    target = len(steps)
    with _sqlite_file_lock(engine), engine.connect() as conn:
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
            _unlock(conn)
    return target


_LOCK_NAME = "beamstream-schema-migrations"
_LOCK_KEY = zlib.crc32(_LOCK_NAME.encode())
_LOCK_WAIT_S = 60


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """SQLite has no advisory locks: processes on its host share a lock file."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SchemaError(
                        f"timed out waiting for the migration lock {handle.name}"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock(conn: Connection, name: str) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
    elif dialect in ("mysql", "mariadb"):
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:n, :s)"), {"n": _LOCK_NAME, "s": _LOCK_WAIT_S}
        ).scalar()
        if got != 1:
            raise SchemaError(f"timed out waiting for the migration lock of schema {name!r}")
    if conn.in_transaction():
        conn.commit()


def _unlock(conn: Connection) -> None:
    if conn.invalidated or conn.closed:
        return
    if conn.in_transaction():
        conn.rollback()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    elif dialect in ("mysql", "mariadb"):
        conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
    if conn.in_transaction():
        conn.commit()
