"""Parsing options strictly and running a pipeline: what every ``run()`` shares.

Beam's ``PipelineOptions`` silently discards arguments it does not know; a
typo such as ``--per_second_snk`` would then run with a default. Here unknown
arguments and missing required options are errors with one clear line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)
from apache_beam.runners.runner import PipelineResult

_LOG = logging.getLogger(__name__)


class OptionsError(ValueError):
    """Bad command-line options; the message is the one line to show."""


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
    if flags:
        raise OptionsError(f"unknown option(s): {' '.join(flags)} (see --help)")
    if unknown:
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
    """Builds on ``test_pipeline`` or a new Pipeline, runs, and waits unless told not to."""
    from beamstream.io.kafka_source import commit_deferred, discard_deferred

    pipeline = test_pipeline or beam.Pipeline(options=options)
    build(pipeline, options)
    discard_deferred()
    try:
        result = pipeline.run()
    except BaseException:
        discard_deferred()
        raise
    if wait:
        try:
            result.wait_until_finish()
        except BaseException as exc:
            discard_deferred()
            if not isinstance(exc, KeyboardInterrupt):
                raise
            _LOG.warning("interrupted: cancelling the pipeline")
            try:
                result.cancel()
            except Exception as cancel_error:  # best effort on an interrupted runner
                _LOG.warning("cancel failed: %s", cancel_error)
            raise
        if str(result.state) == "DONE":
            commit_deferred()
    return result


def is_streaming(options: PipelineOptions) -> bool:
    return bool(options.view_as(StandardOptions).streaming)
