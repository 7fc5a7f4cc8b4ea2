"""``beamstream query`` over what the metrics pipeline stored in SQLite."""

from __future__ import annotations

import argparse
import json

import pytest

from beamstream import cli
from beamstream.pipelines import metrics
from beamstream.tools.query import duration_ms
from tests.pipelines.test_metrics import INSTANCES, metric_lines, reference


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[str, dict, list[str]]:
    """A SQLite database the pipeline filled from a file of realistic records."""
    tmp = tmp_path_factory.mktemp("query")
    lines = metric_lines(scrapes=20, seed=5)
    source = tmp / "metrics.jsonl"
    source.write_text("\n".join(lines) + "\n")
    db = f"sqlite:///{tmp}/metrics.db"
    metrics.run(
        [
            f"--source={source}",
            f"--sink={db}",
            "--group_by_labels=instance",
            "--last_n=2",
            f"--last_n_sink={db}",
        ]
    )
    want, _ = reference(lines)
    return db, want, lines


def _query(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["query", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_latest_window_per_series(stored, capsys):
    db, want, _ = stored
    code, out, _ = _query(capsys, f"--db={db}", "--metric=node_load1", "--format=json",
                          "--time_format=epoch_ms")
    assert code == 0
    rows = json.loads(out)
    assert sorted(r["labels"]["instance"] for r in rows) == sorted(INSTANCES)
    for row in rows:
        instance = row["labels"]["instance"]
        newest = max(k[2] for k in want if k[:2] == ("node_load1", instance))
        assert row["window_start"] == newest
        assert row["mean"] == pytest.approx(want["node_load1", instance, newest]["mean"])
        assert "rate" not in row  # a gauge


def test_label_filter_and_table_output(stored, capsys):
    db, want, _ = stored
    code, out, _ = _query(capsys, f"--db={db}", "--metric=http_requests_total",
                          f"--label=instance={INSTANCES[2]}")
    assert code == 0
    header, *lines = out.strip().splitlines()
    assert header.split() == ["labels", "window_start", "window_end", "count", "mean", "min",
                              "max", "last", "p50", "p90", "p99", "rate"]
    assert len(lines) == 1 and lines[0].startswith(f"instance={INSTANCES[2]}")
    newest = max(k[2] for k in want if k[:2] == ("http_requests_total", INSTANCES[2]))
    assert f"{want['http_requests_total', INSTANCES[2], newest]['rate']:.6g}" in lines[0]


def test_since_and_last_select_time_ranges(stored, capsys):
    db, want, _ = stored
    starts = sorted(k[2] for k in want if k[:2] == ("process_open_fds", INSTANCES[0]))
    code, out, _ = _query(capsys, f"--db={db}", "--metric=process_open_fds", "--format=json",
                          "--time_format=epoch_ms", f"--label=instance={INSTANCES[0]}",
                          f"--since={starts[3]}")
    assert code == 0
    assert [r["window_start"] for r in json.loads(out)] == starts[3:]
    code, out, _ = _query(capsys, f"--db={db}", "--metric=process_open_fds", "--format=json",
                          "--time_format=epoch_ms", f"--label=instance={INSTANCES[0]}",
                          "--last=20s")
    assert [r["window_start"] for r in json.loads(out)] == starts[-2:]


def test_records_show_the_last_n(stored, capsys):
    db, _, _ = stored
    code, out, _ = _query(capsys, f"--db={db}", "--metric=go_gc_duration_seconds_count",
                          "--records", "--format=json")
    assert code == 0
    records = json.loads(out)
    assert len(records) == 2 * len(INSTANCES)
    assert all(r["labels"]["job"] == "node" for r in records)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metric=no_such_metric"], "no stored results for no_such_metric"),
        (["--metric=node_load1", "--label=instance=nowhere"],
         "no stored results for node_load1 instance=nowhere"),
        (["--metric=node_load1", "--since=2100-01-01T00:00:00Z"], "no window in the requested"),
        (["--metric=no_such_metric", "--records"], "no last-N records for no_such_metric"),
    ],
)
def test_nothing_matching_is_one_clear_line(stored, capsys, argv, message):
    db, _, _ = stored
    code, out, err = _query(capsys, f"--db={db}", *argv)
    assert code == 1 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_database_file_says_so(tmp_path, capsys):
    code, _, err = _query(capsys, f"--db=sqlite:///{tmp_path}/empty.db", "--metric=x")
    assert code == 1 and "no stored results for x" in err


def test_durations():
    assert duration_ms("50s") == 50_000
    assert duration_ms("5m") == 300_000
    assert duration_ms("1.5h") == 5_400_000
    assert duration_ms("250ms") == 250
    assert duration_ms("7") == 7_000
    with pytest.raises(argparse.ArgumentTypeError):
        duration_ms("soon")
