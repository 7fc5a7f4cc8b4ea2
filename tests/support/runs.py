"""Starting a pipeline the way ``run_pipeline`` does, for tests that watch it while it runs."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.runner import PipelineResult

from beamstream.launch.context import RunContext


def start(pipeline: beam.Pipeline) -> tuple[PipelineResult, RunContext]:
    """Runs ``pipeline`` with its run context (live feeds on the DirectRunner) and returns both."""
    context = RunContext(pipeline)
    try:
        return pipeline.run(), context
    except BaseException:
        context.close()
        raise


def cancel(result: PipelineResult, context: RunContext) -> None:
    """Cancels the run and ends what its context owns."""
    try:
        result.cancel()
    finally:
        context.close()


def run_to_end(pipeline: beam.Pipeline) -> PipelineResult:
    """Runs ``pipeline`` with its run context until it ends by itself, then ends the context."""
    result, context = start(pipeline)
    try:
        result.wait_until_finish()
    finally:
        context.close()
    return result
