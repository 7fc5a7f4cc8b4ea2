"""Portable runners (Prism, Flink): a job's state stream lives as long as the job.

Beam 2.77's ``JobServiceHandle.run`` opens the job's state and message
streams with ``--job_server_timeout`` (300 s by default) as their gRPC
deadline, so ``wait_until_finish`` fails with ``DEADLINE_EXCEEDED`` after five
minutes of any run, and its clean-up then stops the Prism job server, killing
the job (seen on a streaming run of ``beamstream frames``; apache/beam#35867
reports the same error). The time-out is meant for requests to the job
service; here it still bounds connecting and preparing the job, and the two
streams, which last until the job ends, get no deadline.
"""

from __future__ import annotations

import functools
from typing import Any

from apache_beam.runners.portability import portable_runner

from beamstream.runners import patching

_INSTALLED = "_beamstream_streams_without_deadline"


def install() -> None:
    """Opens job state streams without a deadline; idempotent."""
    patching.wrap_once(portable_runner.JobServiceHandle, "run", _INSTALLED, _without_deadline)


def _without_deadline(original):
    @functools.wraps(original)
    def run(self: Any, preparation_id: str):
        timeout, self.timeout = self.timeout, None
        try:
            return original(self, preparation_id)
        finally:
            self.timeout = timeout

    return run
