"""A streaming run that fails after a graceful stop was requested must say so.

Before: the failure was swallowed as if it were the stop's own cancel, the
run printed "offsets of written results committed" and exited 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.frames_job import produce

pytestmark = pytest.mark.integration


def test_failure_after_sigterm_exits_nonzero_with_one_line_and_claims_no_commit(
    kafka_broker, tmp_path
):
    topic = kafka_broker.new_topic("stop-fail", partitions=2)
    produce(kafka_broker.bootstrap, topic, ['{"timestamp": 1700000000, "uid": "u"}'] * 10)
    marker = tmp_path / "waiting"
    log_path = tmp_path / "log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fail_after_stop",
                "--streaming",
                f"--source=kafka://{kafka_broker.bootstrap}/{topic}?group=g-stop-fail",
                f"--sink={tmp_path}/out",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FAIL_AFTER_STOP_MARKER": str(marker), "PYTHONWARNINGS": "ignore"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the pipeline never reached its failing step"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        (tmp_path / "waiting.sent").touch()
        code = process.wait(120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    output = log_path.read_text()
    assert code == 1, output[-3000:]
    ours = [line for line in output.splitlines() if line.startswith("beamstream fail-after-stop:")]
    assert len(ours) == 1, output[-3000:]
    assert "InjectedFailure: injected failure after the stop was requested" in ours[0]
    assert "SIGTERM" in ours[0]
    assert "offsets of written results committed" not in output
    assert "Traceback" not in output.split(ours[0])[-1]  # the line is the last word
