"""Worker processes for a large batch run on the DirectRunner, so it uses every core.

Beam's FnApiRunner runs a batch pipeline in this one Python process unless
``--direct_running_mode=multi_processing`` and ``--direct_num_workers=N``
ask for N SDK worker processes; it then splits each stage's input among them.
Starting them costs about 1.5 s, so they pay only for a large input: on two
cores, ``beamstream frames`` on a 93 MB file ran as fast on two processes as
on one, 140 MB 1.1x faster, 187 MB 1.3x (``bench.frames --frames 4000000``).

So a run gets one worker process per core when all of this holds, and
otherwise Beam's defaults:

* the DirectRunner, in batch, and neither option given on the command line;
* every source is a file (``ReadJsonLines``), ``MIN_INPUT_BYTES`` in all;
  Kafka and Pub/Sub reads commit or acknowledge from bundle finalizers that
  must run in this process (``runners.finalizes_in_process``);
* no SQL sink: its schema set-up is not safe from two processes at once.

When Beam's DirectRunner hands the pipeline to Prism instead (it found Prism's
binary), the two options are ignored there.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.pipeline import PipelineVisitor

from beamstream import runners

_LOG = logging.getLogger(__name__)

MIN_INPUT_BYTES = 128 * 1024 * 1024
MULTI_PROCESSING = "multi_processing"
_OWN_FLAGS = ("--direct_num_workers", "--direct_running_mode")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Transforms that keep a run in one process, by (module, class).
_SINGLE_PROCESS = (
    ("beamstream.io.kafka.read", "ReadFromKafka"),
    ("beamstream.io.pubsub.read", "ReadFromPubSubMessages"),
    ("beamstream.io.sql.write", "WriteRows"),
    ("apache_beam.testing.test_stream", "TestStream"),
)


def _loaded_classes(names: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """The classes among ``names`` whose modules are imported: a pipeline cannot hold
    the others, and importing them (SQLAlchemy, ...) would slow every run's start."""
    modules = ((sys.modules.get(module), name) for module, name in names)
    return tuple(getattr(m, name) for m, name in modules if m is not None)


class _Inputs(PipelineVisitor):
    """File patterns the pipeline reads, and whether anything rules out other processes."""

    def __init__(self) -> None:
        from beamstream.io.files import ReadJsonLines

        self._files = ReadJsonLines
        self._single_process = _loaded_classes(_SINGLE_PROCESS)
        self.patterns: list[str] = []
        self.blocker: str | None = None

    def enter_composite_transform(self, node: Any) -> None:
        self._look_at(node.transform)

    def visit_transform(self, node: Any) -> None:
        self._look_at(node.transform)

    def _look_at(self, transform: Any) -> None:
        if isinstance(transform, self._files):
            self.patterns.append(transform.pattern)
        elif isinstance(transform, self._single_process) and self.blocker is None:
            self.blocker = type(transform).__name__


def input_bytes(patterns: list[str]) -> int:
    """Total size of the files matching ``patterns`` (any Beam filesystem)."""
    from apache_beam.io.filesystems import FileSystems

    return sum(
        metadata.size_in_bytes
        for result in FileSystems.match(patterns)
        for metadata in result.metadata_list
    )


def worker_processes(pipeline: Any) -> int:
    """How many SDK worker processes this run should get: 1 means Beam's default mode."""
    options = pipeline._options  # noqa: SLF001 - what the runner will read
    flags = getattr(options, "_flags", None) or ()
    if any(flag.split("=", 1)[0] in _OWN_FLAGS for flag in flags):
        return 1  # the user chose
    if options.view_as(StandardOptions).streaming or not runners.is_direct_runner(pipeline):
        return 1
    cores = available_cores()
    if cores < 2:
        return 1
    inputs = _Inputs()
    pipeline.visit(inputs)
    if inputs.blocker is not None or not inputs.patterns:
        return 1
    if input_bytes(inputs.patterns) < MIN_INPUT_BYTES:
        return 1
    return cores


def use_cores(pipeline: Any) -> int:
    """Sets the DirectRunner's worker processes for ``pipeline`` (see the module); returns N."""
    workers = worker_processes(pipeline)
    if workers > 1:
        direct = pipeline._options.view_as(DirectOptions)  # noqa: SLF001
        direct.direct_running_mode = MULTI_PROCESSING
        direct.direct_num_workers = workers
        _LOG.info(
            "large file input: %d worker processes (--direct_num_workers=1 keeps one)", workers
        )
    return workers
