"""Streaming frames on the DirectRunner survive stops and kills: nothing lost, answers right.

The pipeline runs as a user runs it (``beamstream frames --streaming`` in a
subprocess) against the real broker, with results on Kafka topics. It is
stopped (SIGTERM) or killed (SIGKILL) part-way through a backlog and
restarted from the committed offsets; a final bounded run (``stop=end``)
closes every window. Reading all results and keeping the last record per
window must give exactly an independent count over all frames
(at-least-once: a window may be reported more than once, with the same value).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.frames_data import START, frames
from tests.support.frames_reference import reference

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024, retries=20
    )
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % 2)
    producer.flush()
    producer.close()


def _read_all(bootstrap: str, topic: str) -> list[dict]:
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


def _final(rows: list[dict], field: str) -> dict[int, int]:
    """Last record per window in arrival order: what a consumer keeping the last one has."""
    result: dict[int, int] = {}
    for row in rows:
        result[row["window_start"]] = row[field]
    return result


class Frames:
    """`beamstream frames --streaming` as a subprocess with Kafka sinks."""

    def __init__(
        self, bootstrap: str, topics: dict[str, str], group: str, source_bootstrap: str = ""
    ):
        self.bootstrap = bootstrap  # where results go (and, by default, frames come from)
        self.source_bootstrap = source_bootstrap or bootstrap
        self.topics = topics
        self.group = group

    def start(self, stop_at_end: bool = False, *extra: str) -> subprocess.Popen:
        source = (
            f"kafka://{self.source_bootstrap}/{self.topics['in']}"
            f"?group={self.group}&start=committed"
        )
        if stop_at_end:
            source += "&stop=end"
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beamstream.cli",
                "frames",
                "--streaming",
                f"--source={source}",
                f"--per_second_sink=kafka://{self.bootstrap}/{self.topics['sec']}",
                f"--per_minute_sink=kafka://{self.bootstrap}/{self.topics['min']}",
                "--allowed_lateness=2",
                "--max_out_of_orderness=2",
                "--idle_timeout=1000",  # historical data: never release to the wall clock
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True,
        )

    def wait_for_second(self, second: int, process: subprocess.Popen, timeout: float = 120):
        deadline = time.time() + timeout
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        tp = TopicPartition(self.topics["sec"], 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        try:
            while time.time() < deadline:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                for records in consumer.poll(timeout_ms=300).values():
                    if any(json.loads(r.value)["window_start"] >= second for r in records):
                        return
            process.kill()
            _, err = process.communicate(timeout=30)
            raise AssertionError(
                f"no result for second {second} within {timeout} s: {err.decode()[-3000:]}"
            )
        finally:
            consumer.close()


@pytest.fixture
def frames_job(kafka_broker, request):
    topics = {
        "in": kafka_broker.new_topic("restart-in", partitions=2),
        "sec": kafka_broker.new_topic("restart-sec", partitions=1),
        "min": kafka_broker.new_topic("restart-min", partitions=1),
    }
    return Frames(kafka_broker.bootstrap, topics, group=f"g-{request.node.name[-20:]}")


def _lines(first_second: int, seconds: int, seed: int) -> list[str]:
    lines = list(frames(seconds * 100, per_second=100, users=300, disorder_s=1.0, seed=seed))
    shift = first_second
    out = []
    for line in lines:
        frame = json.loads(line)
        frame["timestamp"] = round(frame["timestamp"] + shift, 3)
        out.append(json.dumps(frame))
    return out


def _check_against_reference(job: Frames, lines: list[str]) -> None:
    want_seconds, want_minutes, _ = reference(lines)
    got_seconds = _final(_read_all(job.bootstrap, job.topics["sec"]), "frames")
    got_minutes = _final(_read_all(job.bootstrap, job.topics["min"]), "unique_users")
    assert got_seconds == want_seconds
    assert got_minutes == want_minutes


def test_sigterm_stops_cleanly_and_a_restart_completes_every_window(frames_job):
    first = _lines(0, 480, seed=1)
    _produce(frames_job.bootstrap, frames_job.topics["in"], first)
    process = frames_job.start()
    frames_job.wait_for_second(START + 400, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    assert "stopped on SIGTERM" in err.decode()
    second = _lines(480, 240, seed=2)
    _produce(frames_job.bootstrap, frames_job.topics["in"], second)
    final = frames_job.start(stop_at_end=True)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()[-3000:]
    _check_against_reference(frames_job, first + second)


def test_sigkill_mid_backlog_then_restart_loses_nothing(frames_job):
    lines = _lines(0, 720, seed=3)
    _produce(frames_job.bootstrap, frames_job.topics["in"], lines)
    process = frames_job.start()
    frames_job.wait_for_second(START + 300, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    final = frames_job.start(stop_at_end=True)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()[-3000:]
    _check_against_reference(frames_job, lines)

