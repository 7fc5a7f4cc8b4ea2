"""Store pipeline throughput into PostgreSQL vs plain loads of the same rows, same run.

    .venv/bin/python bench/store.py [--records 200000] [--batch_size 1000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Creates a scratch database, writes N collect-shaped records to a JSON Lines
file, then times (1) ``beamstream store`` file → PostgreSQL, (2) a plain loop
parsing the same file and upserting with the same statement in batches
(executemany), and (3) parsing plus ``COPY`` into an empty table. Prints the
rates and the pipeline's ratio to each reference (target >= 0.5x).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from beamstream.io.sql import engine_for, sqlalchemy_url, upsert
from beamstream.pipelines import store


def make_records(path: Path, n: int) -> None:
    hosts = 20
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            round_, rest = divmod(i, hosts * 10)
            host, metric = divmod(rest, 10)
            handle.write(json.dumps({
                "host": f"host-{host}", "host_id": f"id-{host:04d}",
                "name": "cpu_percent" if metric < 8 else "net_bytes_sent",
                "type": "gauge" if metric < 8 else "counter",
                "value": (i * 7919) % 1000 / 10,
                "timestamp": 1_700_000_000_000 + round_ * 1000,
                "labels": {"cpu": str(metric)} if metric < 8 else {"interface": f"eth{metric}"},
            }) + "\n")


def count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM metric_samples")).scalar() or 0)


def reset(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE metric_samples"))


def plain_upsert(engine, path: Path, batch_size: int) -> None:
    with path.open("rb") as handle:
        batch = []
        for line in handle:
            batch.append(store.sample_row(json.loads(line)))
            if len(batch) == batch_size:
                with engine.begin() as conn:
                    upsert(conn, store.metric_samples, batch, store.KEY_COLUMNS)
                batch = []
        if batch:
            with engine.begin() as conn:
                upsert(conn, store.metric_samples, batch, store.KEY_COLUMNS)


def plain_copy(engine, path: Path) -> None:
    columns = [c.name for c in store.metric_samples.columns]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        with cursor.copy(f"COPY metric_samples ({quoted}) FROM STDIN") as copy, \
                path.open("rb") as handle:
            for line in handle:
                row = store.sample_row(json.loads(line))
                copy.write_row([row[c] for c in columns])
        raw.commit()
    finally:
        raw.close()


def timed(label: str, action, engine, n: int) -> float:
    reset(engine)
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    stored = count(engine)
    assert stored == n, f"{label}: {stored} rows stored, expected {n}"
    rate = n / elapsed
    print(f"{label:<34} {elapsed:8.2f} s  {rate:10,.0f} rows/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch_size", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = engine_for(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(sqlalchemy_url(args.postgres)).set(database=name)
    url_text = url.render_as_string(hide_password=False)
    engine = engine_for(url_text)
    try:
        store.migrate_schema(engine)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "samples.jsonl"
            make_records(path, args.records)
            print(f"{args.records:,} records, batch size {args.batch_size}")
            pipeline = timed(
                "pipeline (beamstream store)",
                lambda: store.run([f"--source={path}", f"--sink={url_text}",
                                   f"--batch_size={args.batch_size}"]),
                engine, args.records,
            )
            executemany = timed("plain loop: parse + upsert batches",
                                lambda: plain_upsert(engine, path, args.batch_size),
                                engine, args.records)
            copy = timed("plain loop: parse + COPY", lambda: plain_copy(engine, path),
                         engine, args.records)
        print(f"ratio pipeline / plain upsert: {pipeline / executemany:.2f}x")
        print(f"ratio pipeline / COPY:         {pipeline / copy:.2f}x   (target >= 0.5x)")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
