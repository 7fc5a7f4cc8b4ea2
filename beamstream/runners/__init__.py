"""Which runner runs a pipeline, for the few choices in beamstream that depend on it.

Beam's default ``DirectRunner`` (``SwitchingDirectRunner``) picks the runner
only in ``run_pipeline``, after every ``expand`` has run: Prism when Beam finds
its binary (``~/.apache_beam/cache/prism/bin``, or a download) and supports
every transform (no TestStream, no ``with_exception_handling``, ...); else the
FnApiRunner for batch; else the BundleBasedDirectRunner (TestStream, Pub/Sub,
true streaming). Transforms choose in ``expand``, so they choose by what is
the same on all three: a local runner keeps its state in memory (nothing a
bundle wrote is durable before the run ends), and with the default ``LOOPBACK``
environment the SDK harness, and with it every bundle finalizer, runs in this
process. Only the streaming BundleBasedDirectRunner is chosen for sure, by the
TestStream that the local live feed puts into the pipeline.
"""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

# Beam's local runners: everything in memory, in (or beside) this process.
DIRECT_RUNNERS = frozenset({"DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner"})
PRISM_RUNNERS = frozenset({"PrismRunner"})
LOCAL_RUNNERS = DIRECT_RUNNERS | PRISM_RUNNERS


def runner_name(options: PipelineOptions) -> str:
    """The runner ``--runner`` names (class name only), ``DirectRunner`` by default."""
    return short_runner_name(options.view_as(StandardOptions).runner)


def short_runner_name(runner: object) -> str:
    """A ``--runner`` value (a name, a dotted path or a runner) as its class name."""
    if runner is not None and not isinstance(runner, str):
        return type(runner).__name__
    return str(runner or "DirectRunner").rsplit(".", 1)[-1]


def pipeline_runner_name(pipeline: Any) -> str:
    """The runner a pipeline was built for: its runner object, else its options."""
    if getattr(pipeline, "runner", None) is not None:
        return type(pipeline.runner).__name__
    return runner_name(pipeline._options)  # noqa: SLF001 - Beam has no getter


def is_direct_runner(pipeline: Any) -> bool:
    """True for Beam's DirectRunner, whichever runner it then picks underneath."""
    return pipeline_runner_name(pipeline) in DIRECT_RUNNERS


def is_local_streaming(pipeline: Any, unbounded: bool) -> bool:
    """True when a read should feed the streaming BundleBasedDirectRunner (the live feed).

    Only that runner needs it: it cannot run an unbounded splittable DoFn
    (apache/beam#26577). Prism, Flink and Dataflow run the source itself.
    """
    options = pipeline._options.view_as(StandardOptions)  # noqa: SLF001 - Beam has no getter
    return is_direct_runner(pipeline) and (bool(options.streaming) or unbounded)


def finalizes_in_process(pipeline: Any) -> bool:
    """True when bundle finalizers run in this process on a runner without durable state.

    Then a batch read can keep the offsets its finalizers report and commit
    them once the run has succeeded (``kafka_source.commit_deferred``): the
    DirectRunner (FnApiRunner, or Prism underneath) and Prism with the
    ``LOOPBACK`` environment (its default).
    """
    if pipeline_runner_name(pipeline) not in LOCAL_RUNNERS:
        return False
    environment = pipeline._options.view_as(PortableOptions).environment_type  # noqa: SLF001
    return environment in (None, "", "LOOPBACK")


def executed_by(result: Any, options: PipelineOptions) -> str:
    """Which runner a started run is on, from what ``run()`` returned.

    The DirectRunner's choice shows only in its result's type: Prism and the
    portable runners return a portable ``PipelineResult``, the FnApiRunner a
    ``RunnerResult``, the BundleBasedDirectRunner a ``DirectPipelineResult``.
    """
    kind = type(result).__name__
    named = runner_name(options)
    if kind == "DirectPipelineResult":
        return "BundleBasedDirectRunner"
    if kind == "RunnerResult":
        return "FnApiRunner"
    if type(result).__module__.endswith("portable_runner") and named in LOCAL_RUNNERS:
        return "PrismRunner"
    return named
