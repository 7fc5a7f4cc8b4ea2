"""URLs and connectivity checks for the PostgreSQL and MariaDB test servers.

The servers are provided by the machine / CI job (not started here). URLs are
SQLAlchemy-style; note that a bare ``postgresql://`` or ``mysql://`` makes
SQLAlchemy pick psycopg2 / MySQLdb, which are not installed, so use
:func:`sqlalchemy_url` when creating an engine.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pymysql
from sqlalchemy.engine import URL, make_url

POSTGRES_URL_ENV = "BEAMSTREAM_POSTGRES_URL"
MYSQL_URL_ENV = "BEAMSTREAM_MYSQL_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
CONNECT_TIMEOUT_S = 5

_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}


def postgres_url() -> str:
    """The configured PostgreSQL URL (env override or the local default)."""
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


def mysql_url() -> str:
    """The configured MariaDB/MySQL URL (env override or the local default)."""
    return os.environ.get(MYSQL_URL_ENV) or DEFAULT_MYSQL_URL


def sqlalchemy_url(url: str) -> URL:
    """Pin the installed driver (psycopg 3 / pymysql) when the URL names none."""
    parsed = make_url(url)
    if "+" not in parsed.drivername and parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=f"{parsed.drivername}+{_DRIVERS[parsed.drivername]}")
    return parsed


def postgres_connect_kwargs(url: str) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for a SQLAlchemy-style URL."""
    u = make_url(url)
    kwargs: dict[str, Any] = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username,
        "dbname": u.database,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    if u.password is not None:
        kwargs["password"] = u.password
    return kwargs


def mysql_connect_kwargs(url: str) -> dict[str, Any]:
    """pymysql.connect() keyword arguments for a SQLAlchemy-style URL."""
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 3306,
        "user": u.username,
        "password": u.password or "",
        "database": u.database,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }


def check_postgres(url: str) -> None:
    """Raise psycopg.Error unless the server answers ``select 1``."""
    with psycopg.connect(**postgres_connect_kwargs(url)) as conn:
        conn.execute("select 1").fetchone()


def check_mysql(url: str) -> None:
    """Raise pymysql.MySQLError unless the server answers ``select 1``."""
    conn = pymysql.connect(**mysql_connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("select 1")
            cur.fetchone()
    finally:
        conn.close()
