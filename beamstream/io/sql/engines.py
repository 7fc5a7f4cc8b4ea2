"""Engines for SQLite, PostgreSQL and MySQL from one URL form, and the errors of the SQL sinks."""

from __future__ import annotations

import logging
from typing import Any

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "beamstream's SQL sinks need SQLAlchemy and a driver: pip install 'beamstream[sql]'"
    ) from _exc

from beamstream.io.uris import SqlUri, parse_sql_uri

_LOG = logging.getLogger(__name__)

_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
SCHEMA_VERSIONS_TABLE = "beamstream_schema_versions"


class SchemaError(RuntimeError):
    """The database schema cannot be brought to the version this code expects."""


class TransientWriteError(RuntimeError):
    """A write kept failing with transient errors; the bundle fails so the runner retries it."""




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
