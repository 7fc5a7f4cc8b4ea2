"""The metrics pipeline in batch from a file, against a plain Python loop in the same run.

    python -m bench.metrics [--records 80000] [--series 4]

Writes ``--records`` Prometheus-style records (``--series`` series, two
samples a second each, half of them counters) to a JSON Lines file, then
times ``beamstream metrics`` on it (60 s windows every 10 s, the defaults) on
the DirectRunner, start-up included, and a plain loop computing the same
windows' count, sum, mean and percentiles (json.loads, six windows per record,
sorted values). Prints both rates, their ratio, and whether every window's
count and sum equal the loop's.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from beamstream.pipelines import metrics
from tests.support.jsonl import read_shards

T0 = 1_700_000_000
DURATION_S, PERIOD_S = 60, 10


def write_records(path: str, n: int, series: int) -> None:
    rng = random.Random(1)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            k, t = i % series, T0 + (i // series) / 2
            name = "cpu_seconds_total" if k % 2 else "temperature"
            value = t - T0 + rng.random() if k % 2 else 20 + rng.random()
            record = {"name": name, "labels": {"host": f"h{k}"}, "timestamp": t, "value": value}
            handle.write(json.dumps(record) + "\n")


def plain_loop(path: str) -> tuple[float, dict]:
    started = time.monotonic()
    windows: dict[tuple, list[float]] = defaultdict(list)
    n = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            r = json.loads(line)
            t = r["timestamp"]
            last = int(t // PERIOD_S) * PERIOD_S
            for start in range(last, int(t) - DURATION_S, -PERIOD_S):
                windows[(r["name"], r["labels"]["host"], start)].append(r["value"])
            n += 1
    stats = {}
    for key, values in windows.items():
        values.sort()
        q = values[int(0.9 * (len(values) - 1))]
        stats[key] = (len(values), sum(values), q)
    return n / (time.monotonic() - started), stats


def pipeline(path: str, out: Path, n: int) -> tuple[float, dict]:
    started = time.monotonic()
    metrics.run(
        [
            f"--source={path}",
            f"--sink={out}/stats",
            f"--dead_letter_sink={out}/dead",
            "--group_by_labels=host",
        ]
    )
    rate = n / (time.monotonic() - started)
    got = {}
    for r in read_shards(f"{out}/stats"):  # window bounds in epoch ms
        got[(r["name"], r["labels"]["host"], r["window_start"] // 1000)] = (
            r["count"],
            r["sum"],
        )
    return rate, got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=80_000)
    parser.add_argument("--series", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/metrics.jsonl"
        write_records(path, args.records, args.series)
        loop_rate, want = plain_loop(path)
        rate, got = pipeline(path, Path(tmp) / "out", args.records)
    exact = got.keys() == want.keys() and all(
        got[k][0] == want[k][0] and math.isclose(got[k][1], want[k][1], rel_tol=1e-12)
        for k in want
    )  # sums to 1e-12: the pipeline adds exactly (math.fsum), the loop in order
    print(f"plain Python loop:               {loop_rate:>10,.0f} records/s ({len(want)} windows)")
    print(
        f"metrics, file source, DirectRunner: {rate:>7,.0f} records/s  "
        f"ratio {rate / loop_rate:.2f}  windows exact (count, sum): {exact}"
    )


if __name__ == "__main__":
    main()
