"""Reading what file sinks wrote, and the final answer per window."""

from __future__ import annotations

PANE_ORDER = {"EARLY": 0, "ON_TIME": 1, "LATE": 2}


def read_shards(prefix: str) -> list[dict]:
    """Every record a file sink wrote under ``prefix``, in file-name order."""
    from beamstream.io.files import read_json_lines

    return list(read_json_lines(prefix))


def final_by_window(rows: list[dict], field: str) -> dict:
    """Last pane per window_start (LATE after ON_TIME; larger accumulations later)."""
    result: dict = {}
    for row in sorted(rows, key=lambda r: (PANE_ORDER[r["pane"]], r[field])):
        result[row["window_start"]] = row[field]
    return result
