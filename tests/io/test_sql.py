"""beamstream.io.sql against real SQLite, PostgreSQL and MariaDB.

Each database test gets its own fresh database (created and dropped here), so
runs never see each other's tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import apache_beam as beam
import pytest
import sqlalchemy as sa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beamstream.io.sql import (
    RetryPolicy,
    RowWithPayload,
    SchemaError,
    TransientWriteError,
    WriteRows,
    engine_for,
    is_transient,
    migrate,
    schema_version,
    sqlalchemy_url,
    upsert,
    with_retries,
)
from tests.support.fresh_databases import DIALECTS, fresh_database


@pytest.fixture(params=DIALECTS)
def db_url(request, tmp_path) -> Iterator[str]:
    yield from fresh_database(request, request.param, tmp_path)


@pytest.fixture
def pg_db(request, tmp_path) -> Iterator[str]:
    yield from fresh_database(request, "postgresql", tmp_path)


@pytest.fixture
def mysql_db(request, tmp_path) -> Iterator[str]:
    yield from fresh_database(request, "mysql", tmp_path)


def _table() -> sa.Table:
    return sa.Table(
        "kv",
        sa.MetaData(),
        sa.Column("k", sa.String(32), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer, nullable=False),
        sa.Column("note", sa.String(8), nullable=True),
        sa.CheckConstraint("v >= 0", name="kv_v_not_negative"),
    )


def _rows(engine, table) -> dict:
    with engine.connect() as conn:
        return {(r.k, r.part): (r.v, r.note) for r in conn.execute(sa.select(table))}


@pytest.mark.parametrize(
    "url, want",
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("mysql://root@h:3306/db", "mysql+pymysql://root@h:3306/db"),
        ("mysql+pymysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_urls_pick_the_installed_drivers(url, want):
    assert sqlalchemy_url(url) == want


def test_upsert_inserts_updates_and_takes_the_last_duplicate(db_url):
    table = _table()
    engine = engine_for(db_url)
    with engine.begin() as conn:
        table.create(conn)
        upsert(conn, table, [{"k": "a", "part": 1, "v": 1, "note": "x"},
                             {"k": "b", "part": 1, "v": 2, "note": None}], ["k", "part"])
    with engine.begin() as conn:
        upsert(conn, table, [{"k": "a", "part": 1, "v": 10, "note": "y"},
                             {"k": "a", "part": 2, "v": 3, "note": None},
                             {"k": "a", "part": 1, "v": 11, "note": "z"}], ["k", "part"])
    assert _rows(engine, table) == {("a", 1): (11, "z"), ("b", 1): (2, None), ("a", 2): (3, None)}
    engine.dispose()


def test_migrate_applies_each_step_once_and_records_the_version(db_url):
    engine = engine_for(db_url)
    calls: list[int] = []
    table = _table()

    def v1(conn):
        calls.append(1)
        table.create(conn)

    def v2(conn):
        calls.append(2)
        conn.execute(sa.text("CREATE INDEX ix_kv_v ON kv (v)"))

    assert migrate(engine, "kv", [v1]) == 1
    assert migrate(engine, "kv", [v1]) == 1
    assert migrate(engine, "kv", [v1, v2]) == 2
    assert migrate(engine, "kv", [v1, v2]) == 2
    assert calls == [1, 2]
    assert migrate(engine, "other", []) == 0
    with engine.connect() as conn:
        assert schema_version(conn, "kv") == 2
        assert "ix_kv_v" in {i["name"] for i in sa.inspect(conn).get_indexes("kv")}
    with pytest.raises(SchemaError, match="newer"):
        migrate(engine, "kv", [v1])
    engine.dispose()


def test_a_failed_step_keeps_the_earlier_version(db_url):
    engine = engine_for(db_url)
    table = _table()

    def broken(conn):
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(sa.exc.DBAPIError):
        migrate(engine, "kv", [table.create, broken])
    with engine.connect() as conn:
        assert schema_version(conn, "kv") == 1
    engine.dispose()


def _migrate_in_a_worker(url: str, name: str, start: threading.Barrier) -> None:
    """One worker's start-up: its own engine, its schema, all at the same moment."""
    engine = engine_for(url)
    table = sa.Table(f"t_{name}", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True))
    start.wait()
    try:
        migrate(engine, name, [table.create])
    finally:
        engine.dispose()


def test_workers_starting_together_migrate_every_schema_once(db_url):
    # Found by CI: the metrics job's two SQLite sinks (aggregates and last N,
    # one file) both created the versions table and one worker failed.
    names = ["a", "b", "c", "a", "b", "c"]
    start = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            _migrate_in_a_worker(db_url, name, start)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    engine = engine_for(db_url)
    with engine.connect() as conn:
        assert {n: schema_version(conn, n) for n in "abc"} == {"a": 1, "b": 1, "c": 1}
    engine.dispose()


def test_write_rows_upserts_and_dead_letters_refused_rows(db_url):
    table = _table()
    engine = engine_for(db_url)
    # Batches of 60: PostgreSQL takes its COPY path (>= 50 rows) and must still
    # isolate the bad rows.
    good = [{"k": f"key{i}", "part": i % 3, "v": i, "note": None} for i in range(150)]
    bad = [
        RowWithPayload({"k": "null", "part": 0, "v": None, "note": None}, '{"orig": 1}'),
        {"k": "negative", "part": 0, "v": -1, "note": None},
    ]
    with TestPipeline() as p:
        dead = p | beam.Create(good + bad + good[:5]) | WriteRows(
            db_url, table, ["k", "part"], batch_size=60, prepare=lambda e: migrate(
                e, "kv", [table.create])
        )
        assert_that(
            dead | beam.Map(lambda d: (d["step"], d["payload"], "#kv" in d["source"])),
            equal_to([("write_rows", '{"orig": 1}', True),
                      ("write_rows", '{"k": "negative", "part": 0, "v": -1, "note": null}', True)]),
        )
    assert _rows(engine, table) == {(r["k"], r["part"]): (r["v"], None) for r in good}
    engine.dispose()


@pytest.mark.integration
def test_postgres_errors_are_classified(pg_db):
    engine = engine_for(pg_db)
    table = _table()
    with engine.begin() as conn:
        table.create(conn)
    with pytest.raises(sa.exc.IntegrityError) as integrity, engine.begin() as conn:
        conn.execute(table.insert(), [{"k": "a", "part": 1, "v": None}])
    assert not is_transient(integrity.value)
    # A lock timeout: another session holds the table.
    with engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE kv IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(sa.exc.OperationalError) as locked, engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            conn.execute(sa.select(table))
        holder.rollback()
    assert is_transient(locked.value)
    # A connection killed by the server.
    with engine.connect() as victim:
        pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as killer:
            killer.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(sa.exc.DBAPIError) as killed:
            victim.execute(sa.text("SELECT 1"))
    assert is_transient(killed.value)
    engine.dispose()


@pytest.mark.integration
def test_mysql_errors_are_classified(mysql_db):
    engine = engine_for(mysql_db)
    table = _table()
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"k": "a", "part": 1, "v": 1}])
    with pytest.raises(sa.exc.IntegrityError) as integrity, engine.begin() as conn:
        conn.execute(table.insert(), [{"k": "b", "part": 1, "v": None}])
    assert not is_transient(integrity.value)
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT * FROM kv WHERE k = 'a' FOR UPDATE")).all()
        with pytest.raises(sa.exc.OperationalError) as locked, engine.begin() as conn:
            conn.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
            conn.execute(sa.text("UPDATE kv SET v = 2 WHERE k = 'a'"))
        holder.rollback()
    assert is_transient(locked.value)
    with engine.connect() as victim:
        cid = victim.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        with engine.connect() as killer:
            killer.execute(sa.text(f"KILL CONNECTION {int(cid)}"))
        with pytest.raises(sa.exc.DBAPIError) as killed:
            victim.execute(sa.text("SELECT 1"))
    assert is_transient(killed.value)
    engine.dispose()


def test_sqlite_lock_is_transient_and_retries_give_up(tmp_path):
    url = f"sqlite:///{tmp_path}/locked.db"
    holder_engine = engine_for(url)
    writer = engine_for(url, connect_args={"timeout": 0})
    table = _table()
    with holder_engine.begin() as conn:
        table.create(conn)
    holder = holder_engine.raw_connection()
    holder.execute("BEGIN EXCLUSIVE")
    attempts = []

    def write():
        attempts.append(1)
        with writer.begin() as conn:
            conn.execute(table.insert(), [{"k": "a", "part": 1, "v": 1}])

    with pytest.raises(TransientWriteError) as failed:
        with_retries(write, RetryPolicy(max_attempts=3, initial_backoff_s=0.01))
    assert len(attempts) == 3 and is_transient(failed.value.__cause__)
    # Released while retrying: the write goes through.
    attempts.clear()
    release = threading.Timer(0.05, holder.rollback)
    release.start()
    with_retries(write, RetryPolicy(max_attempts=20, initial_backoff_s=0.02, max_backoff_s=0.05))
    release.join()
    assert len(attempts) >= 2 and _rows(writer, table) == {("a", 1): (1, None)}
    holder.close()
    writer.dispose()
    holder_engine.dispose()
