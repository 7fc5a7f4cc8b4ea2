"""Streaming frames with file sinks survive a stop and a restart from committed offsets.

``beamstream frames --streaming`` reads a Kafka backlog into
``--per_second_sink DIR/sec --per_minute_sink DIR/min``, is stopped with
SIGTERM part-way and restarted (``start=committed``, then ``stop=end`` to
close every window). Every file the first run wrote must still be there,
byte for byte, and the last record per window in file-name order (what
docs/operations.md tells a reader to keep, ``final_records``) must equal an
independent count over all frames. Passes whether the first run committed
offsets or not (then the restart re-reads everything).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from beamstream.io.files import final_records, read_json_lines
from beamstream.synthetic import START
from tests.support.frames_job import Frames, finish, frame_lines, log_of, produce, stop_cleanly
from tests.support.frames_reference import reference

pytestmark = pytest.mark.integration


class FileFrames(Frames):
    """The same job with its results in JSON Lines files under ``out``."""

    def __init__(self, out: Path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = out

    def sink_args(self) -> list[str]:
        return [f"--per_second_sink={self.out}/sec", f"--per_minute_sink={self.out}/min"]

    def wait_for_second(self, second: int, process, timeout: float = 120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert process.poll() is None, log_of(process)[-3000:]
            if any(r["window_start"] >= second for r in read_json_lines(f"{self.out}/sec")):
                return
            time.sleep(0.5)
        process.kill()
        process.wait(30)
        raise AssertionError(f"no result for second {second} within {timeout} s")


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_sigterm_and_restart_keep_every_file_and_the_last_record_per_window_is_right(
    kafka_broker, tmp_path, request
):
    topic = kafka_broker.new_topic("files-in", partitions=2)
    job = FileFrames(
        tmp_path / "out",
        kafka_broker.bootstrap,
        {"in": topic},
        group=f"g-{request.node.name[-20:]}",
    )
    first = frame_lines(0, 480, seed=5)
    produce(job.bootstrap, topic, first)
    process = job.start()
    job.wait_for_second(START + 400, process)
    log = stop_cleanly(process)
    assert "stopped on SIGTERM" in log
    written = _snapshot(job.out)
    assert any(name.startswith("sec-") for name in written), sorted(written)

    second = frame_lines(480, 240, seed=6)
    produce(job.bootstrap, topic, second)
    final = job.start(stop_at_end=True)
    code, log = finish(final, 180)
    assert code == 0, log[-3000:]

    after = _snapshot(job.out)
    kept = {name: after.get(name) == content for name, content in written.items()}
    assert all(kept.values()), [name for name, same in kept.items() if not same][:5]
    assert len(after) > len(written)  # the restart added files; it rewrote none
    want_seconds, want_minutes, _ = reference(first + second)
    got_seconds = {k: r["frames"] for k, r in final_records(f"{job.out}/sec").items()}
    got_minutes = {k: r["unique_users"] for k, r in final_records(f"{job.out}/min").items()}
    assert got_seconds == want_seconds
    assert got_minutes == want_minutes
