"""The metrics pipeline: a file of realistic records against a plain-Python reference,
options, and end to end from the real broker to SQLite / PostgreSQL and ``beamstream query``."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np
import pytest

from beamstream import cli
from beamstream.pipelines import metrics
from tests.support.jsonl import read_shards

START_MS = 1_572_384_000_000  # a whole minute
INSTANCES = ("10.42.1.92:8686", "10.42.1.93:8686", "10.42.2.17:9100")
DURATION_S, PERIOD_S = 60, 10


# --------------------------------------------------------------------------- data


def metric_lines(
    scrapes: int = 36, seed: int = 7, prefix: str = "", shuffle: bool = True
) -> list[str]:
    """Scrapes every 5 s (±0.4 s jitter) of 4 metrics × 3 instances, as an adapter writes them:
    mixed timestamp formats, string values, NaN, a counter reset, and some bad records."""
    rng = random.Random(seed)
    lines: list[tuple[float, str]] = []
    counters = {(m, i): rng.randint(0, 500) for m in ("req", "gc") for i in INSTANCES}
    for scrape in range(scrapes):
        for n, instance in enumerate(INSTANCES):
            t_ms = START_MS + scrape * 5000 + rng.randint(-400, 400) + n
            counters["req", instance] += rng.randint(0, 40)
            counters["gc", instance] += rng.randint(0, 3)
            if instance == INSTANCES[1] and scrape == 17:
                counters["req", instance] = rng.randint(0, 5)  # the process restarted
            samples = [
                ("node_load1", rng.choice([round(rng.uniform(0, 4), 2)] * 9 + ["NaN"])),
                ("http_requests_total", counters["req", instance]),
                ("go_gc_duration_seconds_count", str(counters["gc", instance])),
                ("process_open_fds", float(rng.randint(10, 60))),
            ]
            for name, value in samples:
                full = prefix + name
                record = {
                    "labels": {"__name__": full, "instance": instance, "job": "node"},
                    "name": full,
                    "timestamp": _timestamp(t_ms, rng),
                    "value": value,
                }
                lines.append((t_ms, json.dumps(record)))
    for k, bad in enumerate(
        [
            {"labels": {"instance": INSTANCES[0]}, "timestamp": START_MS, "value": 1},
            {"name": prefix + "node_load1", "timestamp": START_MS, "value": "high"},
            {"name": prefix + "node_load1", "timestamp": "yesterday", "value": 1},
            {"name": prefix + "node_load1", "value": 1},
        ]
    ):
        lines.append((START_MS + 40_000 * k, json.dumps(bad)))
    lines.append((START_MS + 50_000, "not json"))
    if shuffle:
        rng.shuffle(lines)
    else:
        lines.sort(key=lambda item: item[0])
    return [line for _, line in lines]


BAD_RECORDS = 5


def _timestamp(t_ms: int, rng: random.Random):
    kind = rng.random()
    if kind < 0.1:
        return round(t_ms / 1000, 3)  # epoch seconds
    if kind < 0.2:
        dt = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc)
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return t_ms


# --------------------------------------------------------------------------- reference


def _parse_reference(line: str):
    """Independent parsing; None for what the pipeline must dead-letter."""
    try:
        r = json.loads(line)
        name = r["name"]
        ts = r["timestamp"]
        value = float(r["value"])  # Python's float() reads "NaN" and "+Inf" as Prometheus does
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return None
    elif ts < 1e11:
        ts = ts * 1000
    return name, r["labels"]["instance"], round(ts), value


def _prometheus_rate(samples: list[tuple[int, float]], start_ms: int, end_ms: int):
    """extrapolatedRate from Prometheus's promql/functions.go, transcribed for one series."""
    samples = sorted(s for s in samples if not math.isnan(s[1]))
    if len(samples) < 2:
        return None
    result = samples[-1][1] - samples[0][1]
    prev = samples[0][1]
    for _, v in samples[1:]:
        if v < prev:
            result += prev
        prev = v
    duration_to_start = (samples[0][0] - start_ms) / 1000
    duration_to_end = (end_ms - samples[-1][0]) / 1000
    sampled_interval = (samples[-1][0] - samples[0][0]) / 1000
    average_between = sampled_interval / (len(samples) - 1)
    if result > 0 and samples[0][1] >= 0:
        duration_to_zero = sampled_interval * (samples[0][1] / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average_between * 1.1
    extrapolate_to = sampled_interval
    extrapolate_to += duration_to_start if duration_to_start < threshold else average_between / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else average_between / 2
    return result * (extrapolate_to / sampled_interval) / ((end_ms - start_ms) / 1000)


def reference(lines: list[str], by_instance: bool = True) -> tuple[dict, int]:
    """{(name, instance or None, window_start_ms): stats} and the number of bad lines."""
    windows: dict = defaultdict(list)
    bad = 0
    for line in lines:
        parsed = _parse_reference(line)
        if parsed is None:
            bad += 1
            continue
        name, instance, t, v = parsed
        first = (t // (PERIOD_S * 1000)) * PERIOD_S * 1000
        for start in range(first, t - DURATION_S * 1000, -PERIOD_S * 1000):
            windows[name, instance if by_instance else None, start].append((t, v, instance))
    out = {}
    for (name, instance, start), samples in windows.items():
        values = sorted(v for _, v, _ in samples if not math.isnan(v))
        stats: dict = {"count": len(values), "count_nan": len(samples) - len(values)}
        if values:
            stats.update(
                sum=sum(values),
                min=min(values),
                max=max(values),
                mean=sum(values) / len(values),
                last=max((t, v) for t, v, _ in samples if not math.isnan(v))[1],
                p50=float(np.percentile(values, 50)),
                p90=float(np.percentile(values, 90)),
                p99=float(np.percentile(values, 99)),
            )
        if name.endswith(("_total", "_count")):
            rates = [
                _prometheus_rate(
                    [(t, v) for t, v, i in samples if i == series],
                    start,
                    start + DURATION_S * 1000,
                )
                for series in sorted({i for _, _, i in samples})
            ]
            found = [r for r in rates if r is not None]
            stats["rate"] = sum(found) if found else None
        out[name, instance, start] = stats
    return out, bad


def _by_window(rows: list[dict], by_instance: bool = True) -> dict:
    return {
        (r["name"], r["labels"].get("instance") if by_instance else None, r["window_start"]): r
        for r in rows
    }


def _assert_matches(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, stats in want.items():
        row = got[key]
        for field, value in stats.items():
            if value is None:
                assert row[field] is None, (key, field)
            else:
                assert row[field] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, field)
        assert row["window_end"] == key[2] + DURATION_S * 1000


# --------------------------------------------------------------------------- batch


def test_batch_file_run_matches_plain_python(tmp_path):
    lines = metric_lines()
    source = tmp_path / "metrics.jsonl"
    source.write_text("\n".join(lines) + "\n")
    metrics.run(
        [
            f"--source={source}",
            f"--sink={tmp_path}/stats",
            f"--dead_letter_sink={tmp_path}/dead",
            "--group_by_labels=instance",
            f"--duration={DURATION_S}",
            f"--period={PERIOD_S}",
            "--last_n=4",
            f"--last_n_sink={tmp_path}/last",
        ]
    )
    want, bad = reference(lines)
    got = _by_window(read_shards(f"{tmp_path}/stats"))
    _assert_matches(got, want)
    assert any(s["count_nan"] for s in want.values())  # the data exercises NaN handling
    dead = read_shards(f"{tmp_path}/dead")
    assert len(dead) == bad == BAD_RECORDS
    assert {d["error_type"] for d in dead} == {"InvalidRecord", "EventTimeError"}

    last = {(r["name"], r["labels"]["instance"]): r for r in read_shards(f"{tmp_path}/last")}
    series = defaultdict(list)
    for line in lines:
        parsed = _parse_reference(line)
        if parsed:
            series[parsed[0], parsed[1]].append((parsed[2], parsed[3]))
    assert set(last) == set(series)
    for key, samples in series.items():
        want_last = sorted(samples)[-4:]
        got_last = [(r["timestamp"], r["value"]) for r in last[key]["records"]]
        assert len(got_last) == 4
        for (t, v), (gt, gv) in zip(want_last, got_last):
            assert gt == t
            assert (gv == "NaN") if math.isnan(v) else (gv == v)
        assert last[key]["as_of"] == want_last[-1][0]


def test_without_grouping_series_merge_and_rates_add_up(tmp_path):
    lines = metric_lines(scrapes=14, seed=3)
    source = tmp_path / "metrics.jsonl"
    source.write_text("\n".join(lines) + "\n")
    metrics.run([f"--source={source}", f"--sink={tmp_path}/stats", "--output_time_format=iso"])
    want, _ = reference(lines, by_instance=False)
    rows = read_shards(f"{tmp_path}/stats")
    assert all(r["labels"] == {} for r in rows)
    iso_start = rows[0]["window_start"]
    assert isinstance(iso_start, str) and iso_start.endswith("Z")
    for r in rows:
        r["window_start"] = round(datetime.fromisoformat(r["window_start"]).timestamp() * 1000)
        r["window_end"] = round(datetime.fromisoformat(r["window_end"]).timestamp() * 1000)
    got = _by_window(rows, by_instance=False)
    _assert_matches(got, want)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--source=f.jsonl", "--sink=o", "--duration=10", "--period=20"], "longer than"),
        (["--source=f.jsonl", "--sink=o", "--last_n=3"], "--last_n and --last_n_sink"),
        (["--source=f.jsonl"], "missing required option(s): --sink"),
        (["--source=f.jsonl", "--sink=o", "--counter_pattern=("], "not a regular expression"),
    ],
)
def test_bad_options_exit_non_zero_with_one_clear_line(argv, message, capsys):
    assert cli.main(["metrics", *argv]) == 2
    assert message in capsys.readouterr().err


def test_help_lists_options(capsys):
    assert cli.main(["metrics", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--group_by_labels" in out and "--last_n_sink" in out


# --------------------------------------------------------------------------- end to end


def _publish(kafka_broker, lines: list[str]) -> str:
    from kafka import KafkaProducer

    topic = kafka_broker.new_topic("prom", partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=5)
    for n, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=n % 2)
    producer.flush()
    producer.close()
    return topic


def _query_json(capsys, *argv: str) -> list[dict]:
    capsys.readouterr()
    assert cli.main(["query", *argv, "--format=json", "--time_format=epoch_ms"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.integration
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_kafka_to_database_to_query(database, kafka_broker, tmp_path, capsys, request):
    prefix = f"e2e_{uuid.uuid4().hex[:8]}_"
    lines = metric_lines(scrapes=24, seed=11, prefix=prefix, shuffle=False)
    topic = _publish(kafka_broker, lines)
    if database == "sqlite":
        db = f"sqlite:///{tmp_path}/metrics.db"
    else:
        db = request.getfixturevalue("postgres_url")
    args = [
        f"--source=kafka://{kafka_broker.bootstrap}/{topic}?stop=end",
        f"--sink={db}",
        "--group_by_labels=instance,job",
        "--last_n=3",
        f"--last_n_sink={db}",
    ]
    metrics.run([*args, f"--dead_letter_sink={tmp_path}/dead"])
    metrics.run([*args, f"--dead_letter_sink={tmp_path}/dead2"])  # a replay: upserts, no duplicates
    want, bad = reference(lines)
    assert len(read_shards(f"{tmp_path}/dead")) == len(read_shards(f"{tmp_path}/dead2")) == bad

    name = prefix + "http_requests_total"
    instance = INSTANCES[1]
    newest = max(k[2] for k in want if k[0] == name and k[1] == instance)
    rows = _query_json(capsys, f"--db={db}", f"--metric={name}", f"--label=instance={instance}")
    assert len(rows) == 1
    (row,) = rows
    expected = want[name, instance, newest]
    assert row["labels"] == {"instance": instance, "job": "node"}
    assert row["window_start"] == newest
    for field in ("count", "sum", "min", "max", "mean", "last", "p50", "p90", "p99", "rate"):
        assert row[field] == pytest.approx(expected[field], rel=1e-9), field

    every = _query_json(capsys, f"--db={db}", f"--metric={name}", "--since=0")
    assert len(every) == len([k for k in want if k[0] == name])  # the replay added no rows

    recent = _query_json(capsys, f"--db={db}", f"--metric={name}", "--last=30s",
                         f"--label=instance={instance}")
    assert [r["window_start"] for r in recent] == [newest - 20_000, newest - 10_000, newest]

    # the table form prints the same numbers, 6 significant digits
    capsys.readouterr()
    assert cli.main(["query", f"--db={db}", f"--metric={name}",
                     f"--label=instance={instance}"]) == 0
    table = capsys.readouterr().out
    assert f"{expected['rate']:.6g}" in table and f"{expected['mean']:.6g}" in table

    records = _query_json(capsys, f"--db={db}", f"--metric={name}", "--records",
                          f"--label=instance={instance}")
    parsed = sorted(
        p[2:] for p in map(_parse_reference, lines) if p and p[0] == name and p[1] == instance
    )
    assert [(r["timestamp"], r["value"]) for r in records] == parsed[-3:]

    capsys.readouterr()
    assert cli.main(["query", f"--db={db}", f"--metric={prefix}nothing_here"]) == 1
    assert "no stored results for" in capsys.readouterr().err
