"""`beamstream frames --streaming` as a user runs it, against a real broker, for fault tests.

Results go to Kafka topics; the checks keep the last record per window (what a
consumer of the results would) and compare with an independent count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from beamstream.synthetic import frames
from tests.support.frames_reference import reference
from tests.support.kafka_offsets import committed_offsets


def produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024, retries=20
    )
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % 2)
    producer.flush()
    producer.close()


def read_all(bootstrap: str, topic: str) -> list[dict]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    rows: list[dict] = []
    idle = 0
    while idle < 3:
        polled = consumer.poll(timeout_ms=300)
        idle = 0 if polled else idle + 1
        for records in polled.values():
            rows.extend(json.loads(r.value) for r in records)
    consumer.close()
    return rows


def final_by_window(rows: list[dict], field: str) -> dict[int, int]:
    """Last record per window in arrival order: what a consumer keeping the last one has."""
    result: dict[int, int] = {}
    for row in rows:
        result[row["window_start"]] = row[field]
    return result


class Frames:
    """`beamstream frames --streaming` as a subprocess with Kafka sinks."""

    def __init__(
        self,
        bootstrap: str,
        topics: dict[str, str],
        group: str,
        source_bootstrap: str = "",
        client: str = "kafka-python",
    ):
        self.client = client  # the Kafka client library of the job's source and sinks
        self.bootstrap = bootstrap  # where results go (and, by default, frames come from)
        self.source_bootstrap = source_bootstrap or bootstrap
        self.topics = topics
        self.group = group

    def sink_args(self) -> list[str]:
        return [
            f"--per_second_sink=kafka://{self.bootstrap}/{self.topics['sec']}?client={self.client}",
            f"--per_minute_sink=kafka://{self.bootstrap}/{self.topics['min']}?client={self.client}",
        ]

    def start(self, stop_at_end: bool = False, *extra: str) -> subprocess.Popen:
        source = (
            f"kafka://{self.source_bootstrap}/{self.topics['in']}"
            f"?group={self.group}&start=committed&client={self.client}"
        )
        if stop_at_end:
            source += "&stop=end"
        fd, log_path = tempfile.mkstemp(prefix="beamstream-frames-", suffix=".log")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beamstream.cli",
                "frames",
                "--streaming",
                f"--source={source}",
                *self.sink_args(),
                "--allowed_lateness=2",
                "--max_out_of_orderness=2",
                "--idle_timeout=1000",  # historical data: never release to the wall clock
                *extra,
            ],
            # A file, not a pipe: a pipe nobody reads fills up and blocks the
            # pipeline on its next log line (as happened during broker outages).
            stdout=fd,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True,
        )
        os.close(fd)
        process.log_path = log_path  # type: ignore[attr-defined]
        return process

    def wait_for_second(self, second: int, process: subprocess.Popen, timeout: float = 120):
        deadline = time.time() + timeout
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        tp = TopicPartition(self.topics["sec"], 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        try:
            while time.time() < deadline:
                assert process.poll() is None, log_of(process)[-3000:]
                for records in consumer.poll(timeout_ms=300).values():
                    if any(json.loads(r.value)["window_start"] >= second for r in records):
                        return
            process.kill()
            process.wait(30)
            raise AssertionError(
                f"no result for second {second} within {timeout} s: {log_of(process)[-3000:]}"
            )
        finally:
            consumer.close()


def new_frames_job(broker, prefix: str, test_name: str) -> Frames:
    """A job on fresh topics: frames in (2 partitions), per-second and per-minute out."""
    topics = {
        "in": broker.new_topic(f"{prefix}-in", partitions=2),
        "sec": broker.new_topic(f"{prefix}-sec", partitions=1),
        "min": broker.new_topic(f"{prefix}-min", partitions=1),
    }
    return Frames(broker.bootstrap, topics, group=f"g-{test_name[-24:]}")


def log_of(process: subprocess.Popen) -> str:
    """What the pipeline printed (stdout and stderr) so far."""
    with open(process.log_path, encoding="utf-8", errors="replace") as handle:  # type: ignore[attr-defined]
        return handle.read()


def finish(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Waits for the pipeline to exit: (exit code, what it printed)."""
    process.wait(timeout)
    return process.returncode, log_of(process)


def stop_cleanly(process: subprocess.Popen, timeout: float = 120) -> str:
    """SIGTERM, as a user's ``kill`` would; the run must exit 0. Returns what it printed."""
    process.send_signal(signal.SIGTERM)
    code, log = finish(process, timeout)
    assert code == 0, log[-3000:]
    return log


def frame_lines(first_second: int, seconds: int, seed: int) -> list[str]:
    lines = list(frames(seconds * 100, per_second=100, users=300, disorder_s=1.0, seed=seed))
    shift = first_second
    out = []
    for line in lines:
        frame = json.loads(line)
        frame["timestamp"] = round(frame["timestamp"] + shift, 3)
        out.append(json.dumps(frame))
    return out


def check_against_reference(job: Frames, lines: list[str]) -> None:
    want_seconds, want_minutes, _ = reference(lines)
    got_seconds = final_by_window(read_all(job.bootstrap, job.topics["sec"]), "frames")
    got_minutes = final_by_window(read_all(job.bootstrap, job.topics["min"]), "unique_users")
    assert got_seconds == want_seconds
    assert got_minutes == want_minutes


def wait_for_commits(
    job: Frames, want: dict[int, int], process: subprocess.Popen, timeout: float = 120
) -> dict[int, int | None]:
    """Polls the group's commits until they equal ``want``; returns the last seen."""
    deadline = time.time() + timeout
    seen = committed_offsets(job.source_bootstrap, job.topics["in"], job.group)
    while seen != want and time.time() < deadline:
        assert process.poll() is None, log_of(process)[-3000:]
        time.sleep(0.5)
        seen = committed_offsets(job.source_bootstrap, job.topics["in"], job.group)
    return seen
