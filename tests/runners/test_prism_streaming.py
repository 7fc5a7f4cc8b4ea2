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
from kafka import KafkaProducer

from beamstream.synthetic import START, frames
from tests.support.frames_job import (
    Frames,
    check_against_reference,
    finish,
    frame_lines,
    log_of,
    new_frames_job,
    produce,
    read_all,
)
from tests.support.frames_reference import reference
from tests.support.kafka_offsets import committed_offsets

pytestmark = pytest.mark.integration


@pytest.fixture
def frames_job(kafka_broker, request):
    return new_frames_job(kafka_broker, "prism", request.node.name)


def committed(job: Frames) -> dict[int, int | None]:
    return committed_offsets(job.bootstrap, job.topics["in"], job.group)


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


def _produce_round_robin(bootstrap: str, topic: str, lines: list[str], partitions: int) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024, retries=20
    )
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % partitions)
    producer.flush()
    producer.close()


def _last_pane(rows: list[dict], field: str) -> dict[int, tuple[int, str]]:
    """(value, pane) of the last result per window: Prism repeats a window in extra
    LATE panes when allowed lateness > 0 (apache/beam#33623), so every pane is kept
    and the last one decides."""
    return {row["window_start"]: (row[field], row["pane"]) for row in rows}


def test_streaming_frames_on_prism_over_a_four_partition_backlog_is_exact(
    kafka_broker, prism_bin: Path, request
):
    """Prism sets the read stage's watermark from the residuals of the bundle that
    finished last, not the minimum over all partitions' restrictions (its
    ``estimatedOutput``). With one restriction per partition, the first partition
    to report its watermark made every other partition's backlog late: about half
    the frames of each window went missing. The source must hold one watermark
    for all partitions on Prism."""
    job = Frames(
        kafka_broker.bootstrap,
        {
            "in": kafka_broker.new_topic("prism4-in", partitions=4),
            "sec": kafka_broker.new_topic("prism4-sec", partitions=1),
            "min": kafka_broker.new_topic("prism4-min", partitions=1),
        },
        group=f"g-{request.node.name[-20:]}",
    )
    lines = list(frames(40_000, per_second=1000, users=5000, disorder_s=1.0))
    _produce_round_robin(job.bootstrap, job.topics["in"], lines, 4)
    want_seconds, want_minutes, _ = reference(lines)

    process = job.start(
        False, "--runner=PrismRunner", f"--prism_location={prism_bin}", "--idle_timeout=1"
    )
    try:
        job.wait_for_second(max(want_seconds), process, timeout=90)
        deadline = time.monotonic() + 20
        while True:  # late panes and the minute windows may follow the last second
            seconds = _last_pane(read_all(job.bootstrap, job.topics["sec"]), "frames")
            minutes = _last_pane(read_all(job.bootstrap, job.topics["min"]), "unique_users")
            got_seconds = {w: v for w, (v, _) in seconds.items()}
            got_minutes = {w: v for w, (v, _) in minutes.items()}
            if (got_seconds, got_minutes) == (want_seconds, want_minutes):
                break
            if time.monotonic() > deadline:
                wrong = [(w, n, seconds.get(w)) for w, n in sorted(want_seconds.items())
                         if got_seconds.get(w) != n]
                exact = len(want_seconds) - len(wrong)
                raise AssertionError(
                    f"{exact} of {len(want_seconds)} seconds exact; first wrong "
                    f"(second, expected, (got, pane)): {wrong[:5]}; minutes "
                    f"{got_minutes} != {want_minutes}"
                )
            time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGINT)
        finish(process, 60)


def test_a_streaming_run_on_prism_outlives_the_job_server_timeout(frames_job, prism_bin: Path):
    """Beam gives the job's state stream ``--job_server_timeout`` as its deadline:
    every run on Prism died after it (300 s by default), its job server stopped."""
    prism = ["--runner=PrismRunner", f"--prism_location={prism_bin}"]
    started = time.monotonic()
    process = frames_job.start(False, *prism, "--idle_timeout=1", "--job_server_timeout=5")
    try:
        time.sleep(15)  # well past the 5 s; the watermark follows the wall clock meanwhile
        assert process.poll() is None, log_of(process)[-3000:]
        # frames of the next 10 s of event time, so that none of them is late
        lines = frame_lines(int(time.time()) - START + 1, 10, seed=5)
        produce(frames_job.bootstrap, frames_job.topics["in"], lines)
        last = max(int(float(_ts(line))) for line in lines)
        frames_job.wait_for_second(last, process, timeout=90)
        # The minute window fires when the wall-clock watermark passes its end,
        # up to a minute after the last frame.
        minute_end = (last // 60 + 1) * 60
        deadline = time.monotonic() + max(0.0, minute_end - time.time()) + 30
        while True:
            try:
                check_against_reference(frames_job, lines)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert time.monotonic() - started > 15
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    code, log = finish(process, 60)
    assert code == 0, log[-3000:]
