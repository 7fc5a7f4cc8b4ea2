"""What a streaming Kafka run commits, read back by an independent consumer of the group.

`beamstream frames --streaming` runs as a user runs it, on a backlog of
year-old frames. Once every window is final and written, the group's commits
must reach the topic's end (and stay there after SIGTERM), so a restart reads
nothing twice; after a SIGKILL the commits must cover only records whose
windows have results. A restart test alone cannot show this: a restart from
no commit re-reads everything and still gets every window right.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from beamstream.synthetic import START
from tests.support.frames_job import (
    check_against_reference,
    finish,
    frame_lines,
    new_frames_job,
    produce,
    read_all,
    stop_cleanly,
    wait_for_commits,
)
from tests.support.kafka_offsets import committed_offsets, end_offsets

pytestmark = pytest.mark.integration

YEAR_AGO = int(time.time()) - 365 * 86_400 - START  # shift from the generator's epoch
IDLE = "--idle_timeout=2"  # caught up and quiet 2 s: the watermark follows the wall clock


@pytest.fixture
def frames_job(kafka_broker, request):
    return new_frames_job(kafka_broker, "commits", request.node.name)


def test_commits_reach_the_end_once_every_window_is_written_and_a_restart_reads_nothing_twice(
    frames_job,
):
    lines = frame_lines(YEAR_AGO, 300, seed=11)
    lines[100:100] = ["not json", '{"uid": "x"}']  # dead letters are records too
    produce(frames_job.bootstrap, frames_job.topics["in"], lines)
    ends = end_offsets(frames_job.bootstrap, frames_job.topics["in"])
    assert sum(ends.values()) == len(lines)

    process = frames_job.start(False, IDLE)
    seen = wait_for_commits(frames_job, ends, process)
    assert seen == ends, f"committed {seen}, end offsets {ends}"
    stop_cleanly(process)
    in_topic = frames_job.topics["in"]
    assert committed_offsets(frames_job.bootstrap, in_topic, frames_job.group) == ends
    check_against_reference(frames_job, lines)

    results_before = len(read_all(frames_job.bootstrap, frames_job.topics["sec"]))
    restart = frames_job.start(True, IDLE)  # from the commits to the end: nothing to read
    code, log = finish(restart, 120)
    assert code == 0, log[-3000:]
    assert len(read_all(frames_job.bootstrap, frames_job.topics["sec"])) == results_before


def test_after_sigkill_commits_cover_only_records_whose_windows_were_written(frames_job):
    lines = frame_lines(YEAR_AGO, 720, seed=12)
    produce(frames_job.bootstrap, frames_job.topics["in"], lines)
    process = frames_job.start()  # --idle_timeout=1000: windows close by event time only
    frames_job.wait_for_second(YEAR_AGO + START + 400, process)
    deadline = time.time() + 60
    committed = committed_offsets(frames_job.bootstrap, frames_job.topics["in"], frames_job.group)
    while not any(committed.values()) and time.time() < deadline:
        time.sleep(0.5)
        committed = committed_offsets(
            frames_job.bootstrap, frames_job.topics["in"], frames_job.group
        )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert any(committed.values()), f"nothing committed while windows were written: {committed}"

    results = {n: read_all(frames_job.bootstrap, frames_job.topics[n]) for n in ("sec", "min")}
    written_seconds = {r["window_start"] for r in results["sec"]}
    written_minutes = {r["window_start"] for r in results["min"]}
    # produce() sends line i to partition i % 2, so partition p's offset k is line 2k + p.
    for partition, offset in committed.items():
        for k in range(offset or 0):
            t = json.loads(lines[2 * k + partition])["timestamp"]
            assert int(t) in written_seconds, f"p{partition}@{k}: second {int(t)} not written"
            assert int(t) // 60 * 60 in written_minutes, f"p{partition}@{k}: minute not written"

    final = frames_job.start(stop_at_end=True)
    code, log = finish(final, 180)
    assert code == 0, log[-3000:]
    check_against_reference(frames_job, lines)


def test_year_old_frames_published_to_an_idle_pipeline_give_the_batch_results(frames_job):
    """A backfill into a running pipeline: nothing read yet, so nothing may turn late."""
    process = frames_job.start(False, "--idle_timeout=3")  # not shorter: a slow producer pauses
    time.sleep(10)  # idle since start, far beyond the idle timeout
    lines = frame_lines(YEAR_AGO, 200, seed=13)
    produce(frames_job.bootstrap, frames_job.topics["in"], lines)
    ends = end_offsets(frames_job.bootstrap, frames_job.topics["in"])
    seen = wait_for_commits(frames_job, ends, process)
    stop_cleanly(process)
    assert seen == ends, f"committed {seen}, end offsets {ends}"
    check_against_reference(frames_job, lines)
