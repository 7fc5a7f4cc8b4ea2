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

import os
import signal

import pytest

from beamstream.synthetic import START
from tests.support.frames_job import (
    check_against_reference,
    finish,
    frame_lines,
    new_frames_job,
    produce,
    stop_cleanly,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def frames_job(kafka_broker, request):
    return new_frames_job(kafka_broker, "restart", request.node.name)


def test_sigterm_stops_cleanly_and_a_restart_completes_every_window(frames_job):
    first = frame_lines(0, 480, seed=1)
    produce(frames_job.bootstrap, frames_job.topics["in"], first)
    process = frames_job.start()
    frames_job.wait_for_second(START + 400, process)
    log = stop_cleanly(process)
    assert "stopped on SIGTERM" in log
    second = frame_lines(480, 240, seed=2)
    produce(frames_job.bootstrap, frames_job.topics["in"], second)
    final = frames_job.start(stop_at_end=True)
    code, log = finish(final, 180)
    assert code == 0, log[-3000:]
    check_against_reference(frames_job, first + second)


def test_sigkill_mid_backlog_then_restart_loses_nothing(frames_job):
    lines = frame_lines(0, 720, seed=3)
    produce(frames_job.bootstrap, frames_job.topics["in"], lines)
    process = frames_job.start()
    frames_job.wait_for_second(START + 300, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    final = frames_job.start(stop_at_end=True)
    code, log = finish(final, 180)
    assert code == 0, log[-3000:]
    check_against_reference(frames_job, lines)

