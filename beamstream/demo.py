"""``beamstream demo``: the frames pipeline on the bundled sample, with a summary.

The sample (``beamstream/data/frames_sample.jsonl``) is 30,000 frames over
about ten minutes, with disorder of up to 3 s, two gaps, mixed epoch-second,
epoch-millisecond and ISO timestamps, and some invalid lines.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib import resources


def sample_path() -> str:
    return str(resources.files("beamstream") / "data" / "frames_sample.jsonl")


def _read(prefix: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(glob.glob(prefix + "-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    return rows


def _final(rows: list[dict]) -> dict:
    """Last record per window: the final answer (ON_TIME, then LATE updates)."""
    order = {"EARLY": 0, "ON_TIME": 1, "LATE": 2}
    final: dict = {}
    for row in sorted(rows, key=lambda r: order.get(r.get("pane", "ON_TIME"), 1)):
        final[row["window_start"]] = row
    return final


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="beamstream demo", description=__doc__)
    parser.add_argument("--out", default="out", help="Output folder (default: out).")
    parser.add_argument("--source", default=None, help="Frames file (default: bundled sample).")
    parser.add_argument("--no-plot", action="store_true", help="Skip the PNG chart.")
    args = parser.parse_args(argv)

    from beamstream.pipelines import frames

    os.makedirs(args.out, exist_ok=True)
    for stale in glob.glob(os.path.join(args.out, "*.jsonl")):
        os.remove(stale)
    source = args.source or sample_path()
    prefix = {
        name: os.path.join(args.out, name) for name in ("per_second", "per_minute", "dead_letters")
    }
    started = time.monotonic()
    print(f"running the frames pipeline on {source} (DirectRunner) ...", file=sys.stderr)
    frames.run(
        [
            f"--source={source}",
            f"--per_second_sink={prefix['per_second']}",
            f"--per_minute_sink={prefix['per_minute']}",
            f"--dead_letter_sink={prefix['dead_letters']}",
            "--fill_gaps",
        ]
    )
    elapsed = time.monotonic() - started
    seconds = _final(_read(prefix["per_second"]))
    minutes = _final(_read(prefix["per_minute"]))
    dead = _read(prefix["dead_letters"])
    counted = sum(r["frames"] for r in seconds.values())
    empty = sum(1 for r in seconds.values() if r["frames"] == 0)
    reasons: dict[str, int] = {}
    for record in dead:
        reasons[record["error_type"]] = reasons.get(record["error_type"], 0) + 1
    print(f"done in {elapsed:.1f} s")
    print(f"per-second windows written: {len(seconds)} ({empty} empty seconds filled with 0)")
    print(f"per-minute windows written: {len(minutes)}")
    print(f"frames counted:             {counted}")
    print(f"dead letters:               {len(dead)} {reasons}")
    if minutes:
        busiest = max(minutes.values(), key=lambda r: r["unique_users"])
        print(
            f"busiest minute:             {busiest['window_start']} with "
            f"{busiest['unique_users']} unique users"
        )
    print(f"outputs: {args.out}/per_second-*.jsonl, per_minute-*.jsonl, dead_letters-*.jsonl")
    if not args.no_plot:
        try:
            from beamstream.plot import plot_frames
        except ImportError as exc:
            print(f"(no chart: {exc}; pip install 'beamstream[plot]')")
        else:
            png = plot_frames(
                list(seconds.values()), list(minutes.values()), os.path.join(args.out, "frames.png")
            )
            print(f"chart: {png}")
    return 0
