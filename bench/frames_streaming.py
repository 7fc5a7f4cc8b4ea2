"""Streaming catch-up and live latency of ``beamstream frames``: local bridge and Prism.

    python -m bench.frames_streaming [--frames 1000000] [--live-rate 20000] [--live-seconds 30]
        [--runner bridge|prism|both] [--client kafka-python|confluent]

``bridge`` is the streaming DirectRunner fed through the TestStream live feed;
``prism`` is Beam's Prism runner (``--prism_location`` from BEAMSTREAM_PRISM_BIN
or ``make engines``' cache) running the Kafka splittable DoFn itself; ``both``
measures them one after the other on the same backlog, then the live phase on
Prism.

1. Pre-produces frames (about 1,000 per second of event time, mild disorder)
   into a 4-partition topic, and measures the raw drain of it by ``--client``,
   the Kafka client library the pipeline reads and writes with.
2. Starts ``beamstream frames --streaming`` (a subprocess, as a user would) from
   ``earliest`` with results to Kafka topics, and times process start until the
   final result of the last window arrives. Prints frames/s, the ratio to the
   drain, and how many windows equal an independent count.
3. Then produces live frames (event time = now) at ``--live-rate`` for
   ``--live-seconds`` and reports p50/p95 of (result arrival - window end) and
   of the same minus the watermark's out-of-orderness bound.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from beamstream.synthetic import frames
from bench.kafka_bench import broker, produce, raw_drain
from tests.support.frames_reference import reference

BOUND_S = 2.0


class MemorySampler(threading.Thread):
    """Total RSS of the pipeline's process tree (the pipeline, its feed, workers) every second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self._root = psutil.Process(pid)
        self.samples: list[tuple[float, float, int]] = []  # (time, MB, processes)
        self.by_process: list[dict[str, float]] = []  # MB per process, same sample order
        self.cpu: dict[str, tuple[str, float]] = {}  # process -> (role, CPU seconds so far)
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.wait(1.0):
            try:
                tree = [self._root, *self._root.children(recursive=True)]
                each: dict[str, float] = {}
                for proc in tree:
                    try:
                        name = "pipeline" if proc is self._root else f"child {proc.pid}"
                        each[name] = proc.memory_info().rss / 2**20
                        times = proc.cpu_times()
                        self.cpu[name] = (_role(proc), times.user + times.system)
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            self.samples.append((time.time(), sum(each.values()), len(tree)))
            self.by_process.append(each)

    def cpu_report(self) -> str:
        """CPU seconds each process of the tree has used, busiest first."""
        ranked = sorted(self.cpu.values(), key=lambda c: -c[1])
        return ", ".join(f"{role} {seconds:.1f} s" for role, seconds in ranked if seconds >= 0.1)

    def peak_mb(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((mb for t, mb, _ in self.samples if since <= t <= until), default=0.0)

    def report_live(self, begin: float, end: float) -> None:
        """Peak, and growth from the first to the last fifth of the live phase (medians)."""
        live = [(t, mb) for t, mb, _ in self.samples if begin <= t <= end]
        if len(live) < 10:
            return
        inside = [e for (t, _, _), e in zip(self.samples, self.by_process) if begin <= t <= end]
        growth = {name: inside[-1].get(name, 0.0) - mb for name, mb in inside[0].items()}
        fifth = max(1, len(live) // 5)
        first = sorted(mb for _, mb in live[:fifth])[fifth // 2]
        last = sorted(mb for _, mb in live[-fifth:])[fifth // 2]
        minutes = (live[-1][0] - live[0][0]) / 60
        print(
            f"memory, live: peak {max(mb for _, mb in live):,.0f} MB over "
            f"{self.samples[-1][2]} processes; {first:,.0f} MB -> {last:,.0f} MB "
            f"({(last - first) / max(minutes, 1e-9):+.1f} MB/min over {minutes:.1f} min); "
            + ", ".join(f"{name} {mb:+.0f} MB" for name, mb in growth.items())
        )
        by_minute = [mb for i, (_, mb) in enumerate(live) if i % 60 == 0]
        print("memory, live, each minute (MB): " + " ".join(f"{mb:.0f}" for mb in by_minute))


def _role(proc) -> str:
    """What a process of the pipeline's tree is, from its command line."""
    command = " ".join(proc.cmdline())
    for marker, role in (("feed_server", "feed"), ("beamstream.cli", "pipeline")):
        if marker in command:
            return role
    return proc.name()


class ResultWatcher(threading.Thread):
    """Reads per-second results as they arrive, noting the wall time of each."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        parts = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic)]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.final: dict[int, int] = {}
        self.arrival: dict[int, float] = {}  # first ON_TIME arrival per window
        self.last_arrival = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                now = time.time()
                for record in records:
                    row = json.loads(record.value)
                    start = row["window_start"]
                    self.final[start] = row["frames"]
                    self.last_arrival = now
                    if row["pane"] == "ON_TIME":
                        self.arrival.setdefault(start, now)


def prism_bin() -> str:
    from apache_beam.version import __version__

    default = Path.home() / ".cache/beamstream/engines/prism" / f"v{__version__}" / "prism"
    path = os.environ.get("BEAMSTREAM_PRISM_BIN") or str(default)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"no Prism binary at {path} (make engines, or BEAMSTREAM_PRISM_BIN)")
    return path


RUNNER_ARGS = {
    "bridge": lambda: [],
    "prism": lambda: ["--runner=PrismRunner", f"--prism_location={prism_bin()}"],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--live-rate", type=int, default=20_000)
    parser.add_argument("--live-seconds", type=int, default=30)
    parser.add_argument("--runner", choices=("bridge", "prism", "both"), default="bridge")
    parser.add_argument("--client", choices=("kafka-python", "confluent"), default="kafka-python")
    args = parser.parse_args()
    runners = ["bridge", "prism"] if args.runner == "both" else [args.runner]
    with broker() as b:
        source = b.create_topic("frames-in", partitions=4)
        lines = list(frames(args.frames, per_second=1000, users=5000, disorder_s=1.0))
        produce(b.bootstrap, source, lines, 4)
        drain = raw_drain(b.bootstrap, source, len(lines), args.client)
        want_seconds, _, _ = reference(lines)
        print(f"{f'raw {args.client} drain:':35}{drain:>10,.0f} frames/s")
        for i, runner in enumerate(runners):
            last = i == len(runners) - 1
            catch_up(
                b, source, lines, want_seconds, drain, runner, args.client, args if last else None
            )


def catch_up(b, source, lines, want_seconds, drain, runner, client, live_args) -> None:
    """Times one runner's catch-up on the backlog; then the live phase if asked."""
    sec_topic = b.create_topic(f"frames-sec-{runner}", partitions=1)
    min_topic = b.create_topic(f"frames-min-{runner}", partitions=1)
    last_window = max(want_seconds)
    watcher = ResultWatcher(b.bootstrap, sec_topic)
    watcher.start()
    started = time.time()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beamstream.cli",
            "frames",
            "--streaming",
            *RUNNER_ARGS[runner](),
            f"--source=kafka://{b.bootstrap}/{source}?start=earliest&client={client}",
            f"--per_second_sink=kafka://{b.bootstrap}/{sec_topic}?client={client}",
            f"--per_minute_sink=kafka://{b.bootstrap}/{min_topic}?client={client}",
            f"--max_out_of_orderness={BOUND_S}",
            "--idle_timeout=1",
        ],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    memory = MemorySampler(process.pid)
    memory.start()
    try:
        while last_window not in watcher.final:
            if process.poll() is not None:
                raise SystemExit(f"pipeline exited with {process.returncode}")
            if time.time() - started > 600:
                raise SystemExit("no final result for the last window within 600 s")
            time.sleep(0.05)
        # its ON_TIME result; a window whose first result was another pane: that one
        catch_up_s = watcher.arrival.get(last_window, watcher.last_arrival) - started
        time.sleep(1.0)  # let stragglers of the backlog arrive
        exact = sum(1 for s, n in want_seconds.items() if watcher.final.get(s) == n)
        print(
            f"[{runner}] backlog of {len(lines):,} frames caught up in {catch_up_s:.1f} s "
            f"(process start to last window's result)"
        )
        print(
            f"[{runner}] streaming catch-up:   {len(lines) / catch_up_s:>10,.0f} frames/s"
            f"  ratio to drain {len(lines) / catch_up_s / drain:.2f}  (target >= 40,000/s)"
        )
        # Steady state: results of the middle 60% of the backlog's windows, by arrival.
        ordered = sorted(want_seconds)
        lo, hi = ordered[len(ordered) // 5], ordered[len(ordered) * 4 // 5]
        middle = sum(n for s, n in want_seconds.items() if lo < s <= hi)
        span = watcher.arrival[hi] - watcher.arrival[lo]
        first_s = watcher.arrival[ordered[0]] - started
        if span < 1.0:  # Prism: results of a long read bundle arrive together
            steady_text = f"the middle 60% of the windows came within {span:.2f} s (one burst)"
        else:
            steady = middle / span
            steady_text = (
                f"steady catch-up (middle 60% of the windows): {steady:,.0f} frames/s, "
                f"ratio to drain {steady / drain:.2f}"
            )
        print(f"[{runner}] first result {first_s:.1f} s after process start; {steady_text}")
        print(f"[{runner}] windows exact: {exact} of {len(want_seconds)}")
        print(f"[{runner}] memory, catch-up: peak {memory.peak_mb():,.0f} MB (process tree RSS)")
        print(f"[{runner}] CPU, catch-up ({catch_up_s:.1f} s wall): {memory.cpu_report()}")
        wrong = [
            (s, n, watcher.final.get(s))
            for s, n in sorted(want_seconds.items())
            if watcher.final.get(s) != n
        ]
        if wrong:
            print(f"[{runner}] first differing windows (second, expected, got): {wrong[:8]}")
        if live_args is not None and live_args.live_seconds > 0:
            begin = time.time()
            live(b.bootstrap, source, watcher, live_args.live_rate, live_args.live_seconds)
            memory.report_live(begin, begin + live_args.live_seconds)
    finally:
        memory.stop.set()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        watcher.stop.set()


def live(bootstrap: str, topic: str, watcher: ResultWatcher, rate: int, seconds: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent: dict[int, int] = defaultdict(int)
    begin = time.time()
    n = 0
    while time.time() - begin < seconds:
        due = int((time.time() - begin) * rate)
        while n < due:
            now = time.time()
            producer.produce(
                topic,
                json.dumps({"timestamp": now, "uid": f"u{n % 5000}"}).encode(),
                partition=n % 4,
            )
            # Event times have Beam's microsecond resolution: round like the pipeline
            # does (a time 0.4 us before a second boundary belongs to the next second).
            sent[int(round(now * 1_000_000)) // 1_000_000] += 1
            n += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)
    deadline = time.time() + 20
    windows = sorted(sent)[1:-1]  # skip the partial first and last seconds
    while time.time() < deadline and not all(w in watcher.arrival for w in windows):
        time.sleep(0.1)
    delays = [watcher.arrival[w] - (w + 1) for w in windows if w in watcher.arrival]
    on_time = sum(1 for w in windows if watcher.final.get(w) == sent[w])
    # Frames that reach the pipeline after their window's ON_TIME result come
    # as LATE panes: wait until results stop arriving, then count again.
    quiet_until = time.time() + 15
    while time.time() < quiet_until and time.time() - watcher.last_arrival < 3:
        time.sleep(0.2)
    exact = sum(1 for w in windows if watcher.final.get(w) == sent[w])
    print(
        f"live: {n:,} frames at {n / seconds:,.0f}/s for {seconds} s; "
        f"{len(delays)} of {len(windows)} windows reported; exact: {on_time} at their ON_TIME "
        f"result, {exact} after LATE panes"
    )
    wrong = [(w, sent[w], watcher.final.get(w)) for w in windows if watcher.final.get(w) != sent[w]]
    if wrong:
        print(f"differing live windows (second, sent, got): {wrong[:8]}")
    if delays:
        print(
            f"live delay, window end -> result:            p50 {percentile(delays, 0.5):.2f} s"
            f"  p95 {percentile(delays, 0.95):.2f} s"
        )
        print(
            f"live delay beyond the {BOUND_S:g} s watermark bound:    "
            f"p50 {percentile(delays, 0.5) - BOUND_S:.2f} s"
            f"  p95 {percentile(delays, 0.95) - BOUND_S:.2f} s"
        )


if __name__ == "__main__":
    main()
