"""Fresh databases of each dialect for tests: SQLite in a temp dir, PostgreSQL and MariaDB real.

PostgreSQL and MariaDB come from the session fixtures ``postgres_url`` and
``mysql_url`` (tests/conftest.py); each test gets a database of its own,
dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from beamstream.io.sql import engine_for, sqlalchemy_url

DIALECTS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("mysql", marks=pytest.mark.integration),
]


def fresh_database(request: pytest.FixtureRequest, dialect: str, tmp_path) -> Iterator[str]:
    """A URL of a new, empty database of ``dialect``; dropped afterwards."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    base = request.getfixturevalue("postgres_url" if dialect == "postgresql" else "mysql_url")
    name = f"bs_{uuid.uuid4().hex[:12]}"
    admin = engine_for(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(sqlalchemy_url(base)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if dialect == "postgresql" else ""
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}{force}"))
        admin.dispose()
