"""Shared test data for the model tests: trained models and synthetic metric aggregates."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

# name -> (typical count per window, typical mean); the spread is relative.
METRICS = {
    "http_request_duration_seconds": (600, 0.120),
    "db_query_ms": (250, 8.0),
    "queue_depth": (60, 40.0),
}


def aggregate(
    name: str, rng: random.Random, window_start: int, scale: float = 1.0
) -> dict[str, Any]:
    """One plausible aggregate; ``scale`` multiplies latency-like fields (outliers: >> 1)."""
    count0, mean0 = METRICS[name]
    count = max(1, int(rng.gauss(count0, count0 * 0.08)))
    mean = abs(rng.gauss(mean0, mean0 * 0.08)) * scale
    p50 = mean * rng.uniform(0.85, 0.95)
    p90 = mean * rng.uniform(1.6, 1.9)
    p99 = mean * rng.uniform(2.6, 3.2)
    return {
        "name": name,
        "labels": {"host": f"h{rng.randint(1, 4)}"},
        "window_start": window_start,
        "window_end": window_start + 60,
        "count": count,
        "sum": count * mean,
        "min": mean * rng.uniform(0.05, 0.2),
        "max": p99 * rng.uniform(1.1, 1.5),
        "mean": mean,
        "p50": p50,
        "p90": p90,
        "p99": p99,
    }


def normal_aggregates(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = sorted(METRICS)
    return [aggregate(names[i % len(names)], rng, 1_700_000_000 + 10 * i) for i in range(n)]


def outlier_aggregates(seed: int) -> list[dict[str, Any]]:
    """Injected incidents: latency x20, a traffic collapse, a traffic flood, a stall."""
    rng = random.Random(seed)
    out = []
    for i, name in enumerate(sorted(METRICS)):
        slow = aggregate(name, rng, 1_800_000_000 + i, scale=20.0)
        out.append(slow)
        collapse = aggregate(name, rng, 1_800_000_100 + i)
        collapse["count"] = max(1, collapse["count"] // 100)
        out.append(collapse)
        flood = aggregate(name, rng, 1_800_000_200 + i)
        flood["count"] *= 30
        out.append(flood)
        stall = aggregate(name, rng, 1_800_000_300 + i)
        stall["max"] = stall["p99"] * 60
        out.append(stall)
    for record in out:
        record["sum"] = record["count"] * record["mean"]
    return out


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def read_jsonl(pattern_dir: Path, prefix: str) -> list[dict[str, Any]]:
    """What a file sink wrote, batch shards or per-pane files (a Kafka read is unbounded)."""
    from beamstream.io.files import read_json_lines

    return list(read_json_lines(str(pattern_dir / prefix)))
