"""The frames pipeline in batch, against same-run references.

    python -m bench.frames [--frames 1000000]

1. File source on the DirectRunner vs a plain Python loop (json.loads + dict per
   second + set per minute) over the same file (target >= 0.5x the loop), as
   beamstream runs it (one worker process per core from 128 MiB of input,
   ``launch/cores.py``) and with the other choice beside it.
2. Bounded Kafka source (4 partitions) vs the raw drain of the same topic by the
   same client library, for kafka-python and (when installed) confluent-kafka
   (target >= 0.7x).
3. The original app's figure: 1,000,000 messages in 2.3 minutes (~7,200 msgs/s).
Every pipeline run's per-second results are checked against the loop's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from beamstream.launch import cores
from beamstream.pipelines import frames
from beamstream.synthetic import frames as make_frames
from beamstream.synthetic import write
from bench.kafka_bench import available_clients, broker, produce, raw_drain
from tests.support.jsonl import final_by_window, read_shards

ORIGINAL_RATE = 1_000_000 / (2.3 * 60)


def plain_loop(path: str) -> tuple[float, dict[int, int]]:
    started = time.monotonic()
    seconds: dict[int, int] = defaultdict(int)
    minutes: dict[int, set] = defaultdict(set)
    n = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            frame = json.loads(line)
            t = frame["timestamp"]
            seconds[int(t)] += 1
            minutes[int(t) // 60].add(frame["uid"])
            n += 1
    return n / (time.monotonic() - started), dict(seconds)


def pipeline(source: str, out: Path, n: int, *extra: str) -> tuple[float, dict[int, int]]:
    started = time.monotonic()
    frames.run(
        [
            f"--source={source}",
            f"--per_second_sink={out}/sec",
            f"--per_minute_sink={out}/min",
            f"--dead_letter_sink={out}/dead",
            *extra,
        ]
    )
    rate = n / (time.monotonic() - started)
    return rate, final_by_window(read_shards(f"{out}/sec"), "frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--clients", nargs="+", default=available_clients())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/frames.jsonl"
        write(path, make_frames(args.frames, per_second=1000, users=5000, disorder_s=1.0))
        loop_rate, want = plain_loop(path)
        file_rate, got = pipeline(path, Path(tmp) / "file", args.frames)
        file_exact = got == want
        n_cores = cores.available_cores()
        # What run_pipeline chose for that run (launch/cores.py), and the other choice.
        chosen = n_cores if cores.input_bytes([path]) >= cores.MIN_INPUT_BYTES else 1
        other = None
        if n_cores > 1:
            if chosen > 1:
                flags: tuple[str, ...] = ("--direct_num_workers=1",)
            else:
                flags = (
                    f"--direct_num_workers={n_cores}",
                    "--direct_running_mode=multi_processing",
                )
            rate, got = pipeline(path, Path(tmp) / "file-other", args.frames, *flags)
            other = (1 if chosen > 1 else n_cores, rate, got == want)
        with broker() as b:
            topic = b.create_topic("bench-frames", partitions=4)
            with open(path, encoding="utf-8") as handle:
                produce(b.bootstrap, topic, (line.rstrip("\n") for line in handle), 4)
            kafka = {}
            for client in args.clients:
                drain = raw_drain(b.bootstrap, topic, args.frames, client)
                uri = f"kafka://{b.bootstrap}/{topic}?stop=end&client={client}"
                rate, got = pipeline(uri, Path(tmp) / f"kafka-{client}", args.frames)
                kafka[client] = (drain, rate, got == want)
    print(f"plain Python loop:                {loop_rate:>10,.0f} frames/s")
    print(
        f"frames, file source, DirectRunner: {file_rate:>9,.0f} frames/s  "
        f"ratio {file_rate / loop_rate:.2f} (target >= 0.50)  exact: {file_exact}  "
        f"({chosen} worker process{'es' if chosen > 1 else ''}, beamstream's choice)"
    )
    if other is not None:
        workers, rate, exact = other
        label = f"file source, {workers} worker process{'es' if workers > 1 else ''}:"
        print(
            f"{label:34}{rate:>10,.0f} frames/s  "
            f"ratio {rate / loop_rate:.2f}  exact: {exact}  (the other choice)"
        )
    for client, (drain, rate, exact) in kafka.items():
        print(f"{f'raw {client} drain:':34}{drain:>10,.0f} frames/s")
        print(
            f"{f'frames, bounded Kafka, {client}:':34}{rate:>10,.0f} frames/s  "
            f"ratio {rate / drain:.2f} (target >= 0.70)  exact: {exact}"
        )
    print(f"original app (1M in 2.3 min):     {ORIGINAL_RATE:>10,.0f} msgs/s")


if __name__ == "__main__":
    main()
