"""Reading what file sinks wrote, and the final answer per window."""

from __future__ import annotations

import glob
import json

PANE_ORDER = {"EARLY": 0, "ON_TIME": 1, "LATE": 2}


def read_shards(prefix: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(glob.glob(f"{prefix}-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    return rows


def final_by_window(rows: list[dict], field: str) -> dict:
    """Last pane per window_start (LATE after ON_TIME; larger accumulations later)."""
    result: dict = {}
    for row in sorted(rows, key=lambda r: (PANE_ORDER[r["pane"]], r[field])):
        result[row["window_start"]] = row[field]
    return result
