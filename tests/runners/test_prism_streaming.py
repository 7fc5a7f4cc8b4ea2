"""Streaming ``beamstream frames`` on Prism over a Kafka backlog, as a user runs it.

Prism runs the Kafka ``UnboundedSource`` splittable DoFn itself: its watermark
follows the source's, windows fire as it passes them, offsets are committed
when Prism finalizes the read bundles (``CheckpointMark.finalize_checkpoint``),
and a restart from ``start=committed`` reads on from there.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bench.frames_data import START
from tests.support.frames_job import (
    Frames,
    check_against_reference,
    finish,
    frame_lines,
    produce,
    read_all,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def frames_job(kafka_broker, request):
    topics = {
        "in": kafka_broker.new_topic("prism-in", partitions=2),
        "sec": kafka_broker.new_topic("prism-sec", partitions=1),
        "min": kafka_broker.new_topic("prism-min", partitions=1),
    }
    return Frames(kafka_broker.bootstrap, topics, group=f"g-{request.node.name[-20:]}")


def committed(job: Frames) -> dict[int, int | None]:
    """The group's offsets, seen by a consumer of its own (kafka-python)."""
    consumer = KafkaConsumer(
        bootstrap_servers=job.bootstrap, group_id=job.group, enable_auto_commit=False
    )
    try:
        return {p: consumer.committed(TopicPartition(job.topics["in"], p)) for p in (0, 1)}
    finally:
        consumer.close()


def run_until_every_window(job: Frames, lines: list[str], prism: list[str]) -> str:
    """Streams until every window equals the independent count, then stops with SIGINT."""
    # --idle_timeout=1: once the backlog is read, the watermark follows the
    # wall clock and closes every (historical) window.
    process = job.start(False, *prism, "--idle_timeout=1")
    last = max(int(float(_ts(line))) for line in lines)
    job.wait_for_second(last, process, timeout=90)
    deadline = time.monotonic() + 30
    while True:  # the minute windows may come a moment after the last second
        try:
            check_against_reference(job, lines)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    code, log = finish(process, 60)
    assert code == 0, log[-3000:]
    return log


def _ts(line: str) -> float:
    import json

    return json.loads(line)["timestamp"]


def test_streaming_frames_on_prism_commit_by_finalization_and_restart_reads_on(
    frames_job, prism_bin: Path
):
    prism = ["--runner=PrismRunner", f"--prism_location={prism_bin}"]
    first = frame_lines(0, 60, seed=1)
    produce(frames_job.bootstrap, frames_job.topics["in"], first)

    log = run_until_every_window(frames_job, first, prism)
    assert "stopped on SIGINT: run cancelled" in log
    offsets = committed(frames_job)
    assert offsets == {0: len(first) // 2, 1: len(first) - len(first) // 2}, offsets

    second = frame_lines(200, 60, seed=2)
    produce(frames_job.bootstrap, frames_job.topics["in"], second)
    seen = len(read_all(frames_job.bootstrap, frames_job.topics["sec"]))
    run_until_every_window(frames_job, first + second, prism)

    restarted = read_all(frames_job.bootstrap, frames_job.topics["sec"])[seen:]
    assert restarted, "the restart reported windows"
    assert min(r["window_start"] for r in restarted) >= START + 200 - 2, "re-read old frames"
    assert committed(frames_job) == {0: len(first + second) // 2, 1: len(first + second) // 2}
