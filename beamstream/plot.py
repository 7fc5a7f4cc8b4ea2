"""Frames/s and unique users/min as a PNG, because people would rather look than read."""

from __future__ import annotations

import argparse
import glob
import json
from collections.abc import Sequence
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _time(value) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.fromtimestamp(value, tz=timezone.utc)


def plot_frames(per_second: list[dict], per_minute: list[dict], path: str) -> str:
    seconds = sorted(per_second, key=lambda r: _time(r["window_start"]))
    minutes = sorted(per_minute, key=lambda r: _time(r["window_start"]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    top.plot(
        [_time(r["window_start"]) for r in seconds], [r["frames"] for r in seconds], linewidth=0.8
    )
    top.set_ylabel("frames / s")
    top.set_title("beamstream frames")
    bottom.bar(
        [_time(r["window_start"]) for r in minutes],
        [r["unique_users"] for r in minutes],
        width=50 / 86400,
        align="edge",
    )
    bottom.set_ylabel("unique users / min")
    bottom.set_xlabel("event time (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _read(prefix: str) -> list[dict]:
    rows: list[dict] = []
    for name in sorted(glob.glob(prefix + "-*.jsonl")):
        with open(name, encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    final = {}
    for row in rows:
        final[row["window_start"]] = row
    return list(final.values())


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="beamstream plot", description=__doc__)
    parser.add_argument("--per_second", required=True, help="Prefix of per-second JSONL shards.")
    parser.add_argument("--per_minute", required=True, help="Prefix of per-minute JSONL shards.")
    parser.add_argument("--out", default="frames.png")
    args = parser.parse_args(argv)
    print(plot_frames(_read(args.per_second), _read(args.per_minute), args.out))
    return 0
