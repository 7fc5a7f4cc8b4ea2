"""A streaming pipeline whose step fails once a graceful stop was requested.

Run as ``python -m tests.support.fail_after_stop --source=kafka://... --sink=PATH
--streaming`` (through ``beamstream.cli``, as a user's command is run). The
first record the step sees blocks it until the test has sent SIGINT/SIGTERM
(it creates ``FAIL_AFTER_STOP_MARKER`` + ``.sent`` then); a moment later, with
the stop under way, it raises. ``FAIL_AFTER_STOP_MARKER`` names a file created
when the step is waiting, so a test knows when to send the signal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import apache_beam as beam

from beamstream import cli
from beamstream.io.sinks import WriteMessages
from beamstream.io.sources import ReadMessages
from beamstream.launch.options import SinkOptions, SourceOptions
from beamstream.launch.run import parse_options, run_pipeline


class InjectedFailure(RuntimeError):
    pass


_WAITED: list[bool] = []  # retries of the step fail at once


class _FailAfterStop(beam.DoFn):
    def process(self, message):
        marker = os.environ.get("FAIL_AFTER_STOP_MARKER")
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
        deadline = time.monotonic() + 120
        while marker and not os.path.exists(marker + ".sent") and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _WAITED:  # the signal handler runs in the main thread within 0.2 s
            _WAITED.append(True)
            time.sleep(1.0)
        raise InjectedFailure("injected failure after the stop was requested")
        yield message  # a generator, as a step's process usually is


def build(pipeline: beam.Pipeline, options) -> None:
    read = ReadMessages(options.view_as(SourceOptions).source)
    _ = (
        pipeline
        | "Read" >> read
        | "FailAfterStop" >> beam.ParDo(_FailAfterStop())
        | "Write" >> WriteMessages(options.view_as(SinkOptions).sink)
    )


def main(argv: Sequence[str]) -> int:
    options = parse_options(list(argv))
    run_pipeline(build, options)
    return 0


if __name__ == "__main__":
    cli.COMMANDS["fail-after-stop"] = (__name__, "main", "test pipeline")
    sys.exit(cli.main(["fail-after-stop", *sys.argv[1:]]))
