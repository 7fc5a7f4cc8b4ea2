"""The store pipeline: samples into SQLite, PostgreSQL and MariaDB, replays, upgrades,
and a connection killed in the middle of a run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from beamstream import cli
from beamstream.io.sql import engine_for, schema_version
from beamstream.pipelines import store
from tests.support.fresh_databases import DIALECTS, fresh_database
from tests.support.jsonl import read_shards


@pytest.fixture(params=DIALECTS)
def db_url(request, tmp_path) -> Iterator[str]:
    yield from fresh_database(request, request.param, tmp_path)


@pytest.fixture
def pg_db(request, tmp_path) -> Iterator[str]:
    yield from fresh_database(request, "postgresql", tmp_path)


def samples(n_rounds: int, hosts: int = 3, start_ms: int = 1_700_000_000_000) -> list[dict]:
    records = []
    for r in range(n_rounds):
        for h in range(hosts):
            base = {"host": f"host-{h}", "host_id": f"id-{h}", "timestamp": start_ms + r * 1000}
            records += [
                {**base, "name": "cpu_percent", "type": "gauge", "value": (r * 7 + h) % 100 / 3,
                 "labels": {}},
                {**base, "name": "cpu_percent", "type": "gauge", "value": r % 50,
                 "labels": {"cpu": "0"}},
                {**base, "name": "net_bytes_sent", "type": "counter", "value": 1_000_000 * r + h,
                 "labels": {"interface": "eth0", "zone": "b"}},
                {**base, "name": "collect_duration_ms", "type": "timer", "value": 1.25,
                 "labels": {"function": "cpu"}},
            ]
    return records


INVALID = [
    "not json",
    json.dumps({"host_id": "x", "name": "n", "type": "gauge", "value": "high",
                "timestamp": 1_700_000_000_000}),
    json.dumps({"host_id": "x", "name": "n", "type": "histogram", "value": 1,
                "timestamp": 1_700_000_000_000}),
    json.dumps({"host_id": "", "name": "n", "type": "gauge", "value": 1, "timestamp": 1}),
    json.dumps([1, 2]),
]


def write_input(path, records: list[dict], invalid: list[str] = ()) -> str:
    lines = [json.dumps(r) for r in records] + list(invalid)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def stored(url: str) -> dict:
    engine = engine_for(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.metric_samples)).mappings().all()
    engine.dispose()
    return {
        (r["host_id"], r["name"], r["labels"], r["timestamp_ms"]):
            (r["host"], r["type"], r["value"])
        for r in rows
    }


def expected(records: list[dict]) -> dict:
    return {
        (r["host_id"], r["name"], json.dumps(r["labels"], sort_keys=True, separators=(",", ":")),
         r["timestamp"]): (r["host"], r["type"], float(r["value"]))
        for r in records
    }


def run_store(source: str, url: str, tmp_path, *extra: str) -> list[dict]:
    dead = tmp_path / f"dead-{time.monotonic_ns()}"
    store.run([f"--source={source}", f"--sink={url}", f"--dead_letter_sink={dead}", *extra])
    return read_shards(str(dead))


def test_rows_match_and_a_replay_adds_nothing(db_url, tmp_path):
    records = samples(40)
    source = write_input(tmp_path / "in.jsonl", records, INVALID)
    dead = run_store(source, db_url, tmp_path, "--batch_size=64")
    assert stored(db_url) == expected(records)
    assert sorted(d["payload"] for d in dead) == sorted(INVALID)
    assert {d["step"] for d in dead} == {"parse_sample"}
    # Replay, plus a corrected value for one sample: no new rows, the value updated.
    fixed = dict(records[0], value=99.5)
    write_input(tmp_path / "in.jsonl", [*records, fixed])
    assert run_store(source, db_url, tmp_path) == []
    want = expected(records)
    want.update(expected([fixed]))
    assert stored(db_url) == want
    engine = engine_for(db_url)
    with engine.connect() as conn:
        assert schema_version(conn, store.SCHEMA_NAME) == store.SCHEMA_VERSION == 2
    engine.dispose()


def test_a_v1_database_is_upgraded_in_place(db_url, tmp_path):
    engine = engine_for(db_url)
    store.migrate_schema(engine, store.MIGRATIONS[:1])
    with engine.begin() as conn:
        assert "type" not in {c["name"] for c in sa.inspect(conn).get_columns("metric_samples")}
        conn.execute(
            sa.text(
                "INSERT INTO metric_samples (host_id, name, labels_hash, timestamp_ms, host, "
                "labels, value) VALUES ('old', 'load_average', 'h', 1, 'old-host', '{}', 0.5)"
            )
        )
    records = samples(3)
    run_store(write_input(tmp_path / "in.jsonl", records), db_url, tmp_path)
    with engine.connect() as conn:
        assert schema_version(conn, store.SCHEMA_NAME) == 2
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("metric_samples")}
        assert "ix_metric_samples_name_time" in indexes
    engine.dispose()
    want = expected(records)
    want[("old", "load_average", "{}", 1)] = ("old-host", "gauge", 0.5)
    assert stored(db_url) == want


@pytest.mark.integration
def test_a_connection_killed_mid_run_is_retried_and_nothing_is_lost(pg_db, tmp_path):
    """The test holds a lock on the table, so the pipeline's first write waits on it;
    it kills that waiting connection, then lets go: the write must be retried."""
    engine = engine_for(pg_db, application_name="store-test")
    store.migrate_schema(engine)
    records = samples(30)
    source = write_input(tmp_path / "in.jsonl", records)
    killed: list[int] = []
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = store.run(
                [f"--source={source}", f"--sink={pg_db}", "--batch_size=50"]
            )
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    with engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE metric_samples IN ACCESS EXCLUSIVE MODE"))
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline and worker.is_alive():
            with engine.connect() as killer:
                killed = list(
                    killer.execute(
                        sa.text(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = "
                            "'beamstream-store' AND wait_event_type = 'Lock'"
                        )
                    ).scalars()
                )
                for pid in killed:
                    killer.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            time.sleep(0.05)
        holder.rollback()
    worker.join(timeout=120)
    engine.dispose()
    assert killed, "the pipeline never waited on the lock"
    assert "error" not in outcome, outcome.get("error")
    transient = outcome["result"].metrics().query()["counters"]
    retries = sum(c.committed for c in transient if c.key.metric.name.startswith(
        "message_errors:transient:"))
    assert retries >= 1
    assert stored(pg_db) == expected(records)


def test_cli_rejects_a_non_database_sink(capsys, tmp_path):
    code = cli.main(["store", f"--source={tmp_path}/x.jsonl", "--sink=kafka://h:1/t"])
    assert code != 0
    assert "sqlite:///" in capsys.readouterr().err


def test_cli_help_lists_store_options(capsys):
    assert cli.main(["store", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--batch_size" in out and "--dead_letter_sink" in out


@pytest.mark.parametrize(
    "record, error",
    [
        ({"host_id": "a", "name": "n", "type": "gauge", "value": True, "timestamp": 1}, "value"),
        ({"host_id": "a", "name": "n", "type": "gauge", "value": float("nan"), "timestamp": 1},
         "value"),
        ({"host_id": "a", "name": "n", "type": "gauge", "value": 1}, "timestamp"),
        ({"host_id": "a", "name": "n" * 256, "type": "gauge", "value": 1, "timestamp": 1}, "name"),
        ({"host_id": "a", "name": "n", "type": "gauge", "value": 1, "timestamp": 1,
          "labels": {"x": [1]}}, "labels"),
    ],
)
def test_invalid_samples_say_why(record, error):
    with pytest.raises(store.SampleError, match=error):
        store.sample_row(record)


def test_labels_are_canonical_so_key_order_does_not_make_a_new_sample():
    a = store.sample_row({"host_id": "h", "name": "n", "type": "counter", "value": 1,
                          "timestamp": 1_700_000_000_000, "labels": {"b": "2", "a": "1"}})
    b = store.sample_row({"host_id": "h", "name": "n", "type": "counter", "value": 1,
                          "timestamp": "2023-11-14T22:13:20Z", "labels": {"a": "1", "b": "2"}})
    assert a == b and a["labels"] == '{"a":"1","b":"2"}'
