"""Parsing options strictly and running a pipeline: what every ``run()`` shares.

Beam's ``PipelineOptions`` silently discards arguments it does not know; a
typo such as ``--per_second_snk`` would then run with a default. Here unknown
arguments and missing required options are errors with one clear line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)
from apache_beam.runners.runner import PipelineResult

from beamstream import runners
from beamstream.errors import UserError
from beamstream.launch import cores
from beamstream.launch.context import RunContext
from beamstream.launch.options import OperationsOptions
from beamstream.ops.exporter import MetricsExporter
from beamstream.runners import portable, split_guard, trigger_state

_LOG = logging.getLogger(__name__)


class OptionsError(UserError, ValueError):
    """Bad command-line options; the message is the one line to show."""


class RunFailed(RuntimeError):
    """The pipeline failed after a graceful stop was requested; the message is one line."""


class _StrictParser(_BeamArgumentParser):
    """Raises instead of printing Beam's several-hundred-line usage and exiting."""

    def error(self, message):
        raise OptionsError(message)


def _full_parser() -> _BeamArgumentParser:
    parser = _StrictParser(allow_abbrev=False)
    seen: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own extension point
    return parser


def parse_options(argv: Sequence[str] | None, required: Sequence[str] = ()) -> PipelineOptions:
    """PipelineOptions from argv; unknown or missing options raise OptionsError."""
    argv = list(argv or [])
    parser = _full_parser()
    known, unknown = parser.parse_known_args(argv)
    flags = [u for u in unknown if u.startswith("-")]
    runner = runners.short_runner_name(getattr(known, "runner", None))
    if flags and runner not in runners.LOCAL_RUNNERS:
        # Flink and Dataflow take options of their Java side that Python does
        # not declare (e.g. --checkpointing_interval): pass them on.
        names = " ".join(flag.split("=", 1)[0] for flag in flags)  # values may be secrets
        _LOG.info("passing options on to %s: %s", runner, names)
    elif flags:
        raise OptionsError(f"unknown option(s): {' '.join(flags)} (see --help)")
    elif unknown:
        raise OptionsError(f"unexpected argument(s): {' '.join(unknown)}")
    missing = [name for name in required if getattr(known, name, None) in (None, "")]
    if missing:
        raise OptionsError(f"missing required option(s): {', '.join('--' + m for m in missing)}")
    return PipelineOptions(argv)


def run_pipeline(
    build: Callable[[beam.Pipeline, PipelineOptions], object],
    options: PipelineOptions,
    test_pipeline: beam.Pipeline | None = None,
    wait: bool = True,
) -> PipelineResult:
    """Builds on ``test_pipeline`` or a new Pipeline, runs, and waits unless told not to.

    The run's own state (``RunContext``: deferred commits, live feeds) starts
    here, after the pipeline is built, and ends with the run; with
    ``wait=False`` its live feeds end with this process.
    """
    pipeline = test_pipeline or beam.Pipeline(options=options)
    build(pipeline, options)
    context = RunContext(pipeline)
    exporter = _metrics_exporter(options, build)
    portable.install()  # Prism, also when Beam's DirectRunner switches to it
    split_guard.install()  # the SDK harness in this process (LOOPBACK, FnApiRunner)
    trigger_state.install()  # the FnApiRunner's and the DirectRunner's trigger driver
    cores.use_cores(pipeline)
    try:
        result = pipeline.run()
    except BaseException:
        context.failed()
        context.close()
        if exporter is not None:
            exporter.close()
        raise
    _say_runner(result, options)
    if exporter is not None:  # finishes on its own when the run ends, however it ends
        exporter.finish_when_done(result)
    if not wait:
        return result
    try:
        _wait_for_run(result, options, context)
        if str(result.state) == "DONE":
            context.succeeded()
    except BaseException:
        context.failed()
        raise
    finally:
        context.close()
    if exporter is not None:
        exporter.finish(result)  # final values pushed (and served) before returning
    return result


def _wait_for_run(result: PipelineResult, options: PipelineOptions, context: RunContext) -> None:
    """Waits for the run; a first SIGINT/SIGTERM of a streaming run stops it gracefully."""
    stop = _graceful_stop(options, result, context)
    try:
        with stop:
            _wait(result, stop, context.feed_failure)
    except BaseException as exc:
        if stop.requested and not isinstance(exc, KeyboardInterrupt):
            # A real failure (what the stop's own cancel causes never gets
            # here): no success line, no claim that offsets were committed.
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise RunFailed(
                f"the run failed after {stop.signal_name} asked it to stop: "
                f"{type(exc).__name__}: {first_line} (results it had not written "
                "are not committed; a run from the committed offsets reads them again)"
            ) from exc
        if isinstance(exc, KeyboardInterrupt):
            _LOG.warning("interrupted: cancelling the pipeline")
            try:
                result.cancel()
            except Exception as cancel_error:  # best effort on an interrupted runner
                _LOG.warning("cancel failed: %s", cancel_error)
        raise
    if stop.requested:
        print(f"beamstream: {stop.summary()}", file=sys.stderr, flush=True)


def _say_runner(result: PipelineResult, options: PipelineOptions) -> None:
    """Logs the runner this run is on; a warning when the DirectRunner chose Prism."""
    executed = runners.executed_by(result, options)
    if executed == "PrismRunner" and runners.runner_name(options) in runners.DIRECT_RUNNERS:
        # Beam found a Prism binary (in ~/.apache_beam/cache/prism/bin, or downloaded).
        _LOG.warning("the DirectRunner runs this pipeline on Prism")
    else:
        _LOG.info("running on %s", executed)


def _metrics_exporter(options: PipelineOptions, build: Callable) -> MetricsExporter | None:
    """A started exporter when --metrics_port or --pushgateway asks for one."""
    ops = options.view_as(OperationsOptions)
    if ops.metrics_port is None and not ops.pushgateway:
        return None
    app = ops.app_name or build.__module__.rsplit(".", 1)[-1]
    job = options.view_as(GoogleCloudOptions).job_name or "beamstream"
    return MetricsExporter(
        app,
        job,
        port=ops.metrics_port,
        pushgateway=ops.pushgateway,
        push_interval=ops.push_interval,
        linger=ops.metrics_linger,
        namespace=ops.metrics_namespace or "",
    ).start()


_ENDED = ("CANCELLED", "DONE", "FAILED")  # PipelineState names of a run that is over


class LiveFeedFailed(RunFailed):
    """A live feed's stream ended with an error; the run was cancelled."""


def _wait(result: PipelineResult, stop, feed_failure: Callable[[], str | None]) -> None:
    """Waits for the run, in a helper thread so signals reach the main thread.

    A DirectRunner run that is cancelled never wakes up a thread blocked in
    ``wait_until_finish``; after a graceful stop has cancelled the run this
    returns anyway. A failure the runner reports is raised, unless the stop's
    own cancel caused it (the live feed's stream closing under the runner;
    it is logged). A step's failure is raised even when its retries end only
    after the cancel: the cancel injects nothing into steps. A live feed that
    failed cancels the run and fails it: Beam's TestStream reader dies of a
    broken stream without failing the run, which would then end as if done.
    """
    import threading

    failure: list[tuple[BaseException, bool]] = []

    def wait() -> None:
        try:
            result.wait_until_finish()
        except BaseException as exc:  # handed to the main thread below
            failure.append((exc, stop.cancel_issued))

    waiter = threading.Thread(target=wait, name="wait-until-finish", daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(0.2)
        _fail_if_a_feed_failed(result, feed_failure)
        if stop.requested and str(result.state) in _ENDED:
            waiter.join(0.5)  # a failure may still be on its way to the waiter
            break
    _fail_if_a_feed_failed(result, feed_failure)
    for exc, after_cancel in failure:
        if not (stop.requested and after_cancel and _caused_by_cancel(exc)):
            raise exc
        _LOG.warning("after the stop cancelled the run: %s: %s", type(exc).__name__, exc)


def _fail_if_a_feed_failed(result: PipelineResult, feed_failure: Callable[[], str | None]) -> None:
    """Cancels the run (if it still runs) and raises ``LiveFeedFailed`` once a feed failed."""
    failed = feed_failure()
    if failed is not None:
        if str(result.state) not in _ENDED:
            with contextlib.suppress(Exception):
                result.cancel()
        raise LiveFeedFailed(f"the live feed failed: {failed}")


def _caused_by_cancel(exc: BaseException) -> bool:
    """What a cancelled run reports of its own cancel, not of a step.

    The streaming DirectRunner: its live feed's event stream went away (a gRPC
    error). Prism and other portable runners: "... failed in state CANCELLED".
    """
    import grpc

    text = str(exc)
    return isinstance(exc, grpc.RpcError) or "LiveFeed" in text or "in state CANCELLED" in text


def _graceful_stop(options: PipelineOptions, result: PipelineResult, context: RunContext):
    """Signal handling for streaming runs (batch runs keep Python's defaults)."""
    from beamstream.launch.options import ShutdownOptions
    from beamstream.launch.shutdown import GracefulStop

    flush = options.view_as(ShutdownOptions).on_stop == "flush"
    return GracefulStop(result, context, flush=flush, enabled=is_streaming(options))


def is_streaming(options: PipelineOptions) -> bool:
    return bool(options.view_as(StandardOptions).streaming)
