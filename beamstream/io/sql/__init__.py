"""SQL plumbing shared by every pipeline that stores rows: engines, upserts,
versioned migrations, transient-error detection and the ``WriteRows`` transform.

Pipelines that write to a database (``store``, metric aggregation) need the same
four things: one URL form for SQLite, PostgreSQL and MySQL; idempotent writes
(a replayed bundle must not insert twice); a schema that is created *and
upgraded* on start; and a clear split between errors worth retrying (the
connection dropped, a deadlock) and errors of the row itself (dead letter).

Requires the ``sql`` extra (SQLAlchemy 2, psycopg 3, PyMySQL).
"""

from beamstream.io.sql.engines import (
    SCHEMA_VERSIONS_TABLE,
    SchemaError,
    TransientWriteError,
    engine_for,
    redacted,
    sqlalchemy_url,
)
from beamstream.io.sql.migrations import MigrationStep, migrate, schema_version, schema_versions
from beamstream.io.sql.retries import RetryPolicy, error_text, is_transient, with_retries
from beamstream.io.sql.upserts import upsert
from beamstream.io.sql.write import RowWithPayload, WriteRows

__all__ = [
    "SCHEMA_VERSIONS_TABLE",
    "MigrationStep",
    "RetryPolicy",
    "RowWithPayload",
    "SchemaError",
    "TransientWriteError",
    "WriteRows",
    "engine_for",
    "error_text",
    "is_transient",
    "migrate",
    "redacted",
    "schema_version",
    "schema_versions",
    "sqlalchemy_url",
    "upsert",
    "with_retries",
]
