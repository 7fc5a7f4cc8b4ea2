"""Transient errors (a dropped connection, a deadlock) worth retrying, not errors of a row."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from beamstream.counters import error_counter
from beamstream.io.sql.engines import TransientWriteError

_LOG = logging.getLogger(__name__)


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
