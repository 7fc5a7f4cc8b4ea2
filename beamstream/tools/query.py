"""``beamstream query``: answers metric questions from what ``beamstream metrics`` stored.

    beamstream query --db sqlite:///metrics.db --metric http_requests_total \\
        [--label instance=10.0.0.1:9100 ...] [--last 50s | --since T] \\
        [--records] [--format table|json]

Without ``--last``/``--since``: the latest window's statistics per matching
series. ``--last 50s``: every window ending within 50 s of the newest stored
window end of the metric (the data's own "now", so replayed or historical
data answers the same). ``--since T``: windows starting at or after ``T``
(epoch s/ms or ISO-8601). ``--label k=v`` keeps series whose grouped labels
include ``k=v`` (labels are the ones the pipeline grouped by). ``--records``
(or when no statistics are stored for the metric) prints the last-N records
instead, filtered the same way by their timestamps. Nothing matching is a
one-line message on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from beamstream.event_time import EventTimeError, parse_time

STATS_TABLE = "metric_stats"  # beamstream.pipelines.metrics writes these tables
LAST_N_TABLE = "metric_last_n"
STATS_SHOWN = ("count", "mean", "min", "max", "last", "p50", "p90", "p99", "rate")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """'50s', '5m', '1h', '250ms' or plain seconds → milliseconds."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 50s, 5m, 1h)")
    return int(float(m.group(1)) * _UNIT_MS[m.group(2) or "s"])


def since_ms(text: str) -> int:
    try:
        return parse_time(text) // 1000
    except EventTimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def label_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label {text!r}: expected KEY=VALUE")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream query",
        description=(__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", required=True, help="sqlite:///..., postgresql://..., mysql://...")
    parser.add_argument("--metric", required=True, help="Metric name.")
    parser.add_argument(
        "--label", type=label_filter, action="append", default=[], help="KEY=VALUE (repeatable)."
    )
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--last", type=duration_ms, help="e.g. 50s, 5m: the recent windows.")
    window.add_argument("--since", type=since_ms, help="Epoch s/ms or ISO-8601 time.")
    parser.add_argument(
        "--records", action="store_true", help="Print the last-N records, not window statistics."
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--time_format", choices=("iso", "epoch_ms"), default="iso", help="How times print."
    )
    return parser


# --------------------------------------------------------------------------- reading


def _rows(engine, table_name: str, metric: str) -> list[dict[str, Any]] | None:
    """All rows of ``metric`` in the table, or None when the table does not exist."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table_name):
            return None
        table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        result = conn.execute(sa.select(table).where(table.c.name == metric))
        return [dict(row._mapping) for row in result]  # noqa: SLF001 - SQLAlchemy's row API


def _matches(labels_json: str, wanted: Sequence[tuple[str, str]]) -> bool:
    labels = json.loads(labels_json)
    return all(labels.get(k) == v for k, v in wanted)


def select_stats(
    rows: list[dict[str, Any]], last_ms: int | None, since: int | None
) -> list[dict[str, Any]]:
    """The latest window per series, or every window in the requested time range."""
    if not rows:
        return []
    if since is not None:
        chosen = [r for r in rows if r["window_start_ms"] >= since]
    elif last_ms is not None:
        newest = max(r["window_end_ms"] for r in rows)
        chosen = [r for r in rows if r["window_end_ms"] > newest - last_ms]
    else:
        latest: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["labels"] not in latest or r["window_end_ms"] > latest[r["labels"]][
                "window_end_ms"
            ]:
                latest[r["labels"]] = r
        chosen = list(latest.values())
    return sorted(chosen, key=lambda r: (r["labels"], r["window_start_ms"]))


def select_records(
    rows: list[dict[str, Any]], last_ms: int | None, since: int | None
) -> list[dict[str, Any]]:
    """Last-N records of the matching series, flattened, filtered by time."""
    records: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: r["labels"]):
        for record in json.loads(row["records"]):
            t = record["timestamp"]
            if since is not None and t < since:
                continue
            if last_ms is not None and t <= row["as_of_ms"] - last_ms:
                continue
            records.append({"series": json.loads(row["labels"]), **record})
    return records


# --------------------------------------------------------------------------- printing


def _time(ms: int, time_format: str) -> str | int:
    if time_format == "epoch_ms":
        return ms
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "{}"


def _table(header: Sequence[str], lines: list[list[str]]) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(out)


def stats_output(rows: list[dict[str, Any]], fmt: str, time_format: str) -> str:
    shown = [c for c in STATS_SHOWN if c != "rate" or any(r.get("rate") is not None for r in rows)]
    if fmt == "json":
        return json.dumps(
            [
                {
                    "name": r["name"],
                    "labels": json.loads(r["labels"]),
                    "window_start": _time(r["window_start_ms"], time_format),
                    "window_end": _time(r["window_end_ms"], time_format),
                    "count_nan": r["count_nan"],
                    "sum": r["sum"],
                    **{c: r.get(c) for c in shown},
                }
                for r in rows
            ],
            indent=2,
        )
    header = ["labels", "window_start", "window_end", *shown]
    lines = [
        [
            _labels_text(json.loads(r["labels"])),
            str(_time(r["window_start_ms"], time_format)),
            str(_time(r["window_end_ms"], time_format)),
            *(_number(r.get(c)) for c in shown),
        ]
        for r in rows
    ]
    return _table(header, lines)


def records_output(records: list[dict[str, Any]], fmt: str, time_format: str) -> str:
    if fmt == "json":
        return json.dumps(
            [{**r, "timestamp": _time(r["timestamp"], time_format)} for r in records], indent=2
        )
    header = ["series", "timestamp", "value", "labels"]
    lines = [
        [
            _labels_text(r["series"]),
            str(_time(r["timestamp"], time_format)),
            _number(r["value"]),
            _labels_text(r["labels"]),
        ]
        for r in records
    ]
    return _table(header, lines)


# --------------------------------------------------------------------------- command


def query(args: argparse.Namespace) -> tuple[str | None, str]:
    """(output, or None when nothing matches; what was asked, for the message)."""
    from beamstream.io.sql import engine_for

    asked = args.metric + "".join(f" {k}={v}" for k, v in args.label)
    engine = engine_for(args.db)
    try:
        stats = None if args.records else _rows(engine, STATS_TABLE, args.metric)
        stats = [r for r in stats or [] if _matches(r["labels"], args.label)]
        chosen = select_stats(stats, args.last, args.since)
        if chosen:
            return stats_output(chosen, args.format, args.time_format), asked
        if stats and not args.records:
            return None, f"{asked} (no window in the requested time range)"
        last = _rows(engine, LAST_N_TABLE, args.metric)
        last = [r for r in last or [] if _matches(r["labels"], args.label)]
        records = select_records(last, args.last, args.since)
        if records:
            return records_output(records, args.format, args.time_format), asked
        return None, asked
    finally:
        engine.dispose()


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    output, asked = query(args)
    if output is None:
        from beamstream.io.sql import redacted

        what = "last-N records" if args.records else "stored results"
        print(f"beamstream query: no {what} for {asked} in {redacted(args.db)}", file=sys.stderr)
        return 1
    print(output)
    return 0
