"""Streaming frames survive the network path to Kafka being cut and restored.

The broker runs behind a TCP proxy the test controls (the test broker keeps
its data only in memory, so restarting it is not a fault anything survives).
``beamstream frames --streaming`` reads and writes through the proxy; the
path is cut part-way through a backlog for longer than the client's retry
backoffs, then restored, and more frames are produced. The pipeline must say
the broker is unreachable, keep running, reconnect, and a final bounded run
must leave every window equal to an independent count (at-least-once: a
window may be reported again, with the same value).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from beamstream.io.kafka.client import CLIENTS
from beamstream.synthetic import START
from tests.support.frames_job import (
    Frames,
    check_against_reference,
    finish,
    frame_lines,
    produce,
    stop_cleanly,
)
from tests.support.proxied_broker import start_proxied_broker

pytestmark = pytest.mark.integration

CUT_S = 8.0


@pytest.mark.parametrize("client", CLIENTS)
def test_network_cut_and_restore_mid_stream_loses_nothing(tmp_path: Path, client: str):
    topics = {"in": "cut-in", "sec": "cut-sec", "min": "cut-min"}
    with start_proxied_broker(tmp_path, {"cut-in": 2, "cut-sec": 1, "cut-min": 1}) as broker:
        job = Frames(broker.bootstrap, topics, group="g-network-cut", client=client)
        first = frame_lines(0, 480, seed=5)
        produce(broker.bootstrap, topics["in"], first)
        process = job.start()
        job.wait_for_second(START + 120, process)

        broker.proxy.cut()
        time.sleep(CUT_S)
        assert process.poll() is None, "the pipeline died while the broker was unreachable"
        broker.proxy.restore()

        second = frame_lines(480, 120, seed=6)
        produce(broker.bootstrap, topics["in"], second)
        job.wait_for_second(START + 560, process, timeout=180)  # read after the restore
        log = stop_cleanly(process)
        assert "unreachable" in log, log[-3000:]

        final = job.start(stop_at_end=True)
        code, log = finish(final, 180)
        assert code == 0, log[-3000:]
        check_against_reference(job, first + second)
