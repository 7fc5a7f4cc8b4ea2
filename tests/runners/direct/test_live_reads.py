"""Run time on the DirectRunner: live feeds for reads, probes behind sinks (no broker needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import apache_beam as beam
from apache_beam.io.unbounded_source import ReadFromUnboundedSource
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import window

import beamstream
from beamstream.io.kafka.read import ReadFromKafka
from beamstream.io.sinks import WriteMessages
from beamstream.io.sources import ReadMessages
from beamstream.launch.context import RunContext
from beamstream.runners.direct import live_reads
from beamstream.runners.direct.commit_probe import CommitAfterWrites
from beamstream.runners.direct.read_feed import ReadLiveFeed

# No broker listens here: building and preparing a run must not need one.
URI = "kafka://127.0.0.1:9/frames?group=g"


def _transforms(pipeline: beam.Pipeline) -> list[beam.PTransform]:
    found: list[beam.PTransform] = []

    class _All(PipelineVisitor):
        def enter_composite_transform(self, node) -> None:
            found.append(node.transform)

        def visit_transform(self, node) -> None:
            found.append(node.transform)

    pipeline.visit(_All())
    return found


def _streaming_pipeline(tmp_path, sinks: int = 2) -> beam.Pipeline:
    pipeline = beam.Pipeline(options=PipelineOptions(["--streaming"]))
    counts = (
        pipeline
        | "Read" >> ReadMessages(URI)
        | beam.WindowInto(window.FixedWindows(60), allowed_lateness=5)
        | beam.Map(lambda _: 1)
        | beam.CombineGlobally(sum).without_defaults()
    )
    for n in range(sinks):
        _ = counts | f"Write{n}" >> WriteMessages(str(tmp_path / f"out{n}"))
    return pipeline


def test_expand_has_no_side_effects_and_builds_the_source_read(tmp_path):
    pipeline = _streaming_pipeline(tmp_path)
    kinds = {type(t) for t in _transforms(pipeline)}
    assert ReadFromKafka in kinds and ReadFromUnboundedSource in kinds
    assert TestStream not in kinds and ReadLiveFeed not in kinds


def test_a_run_replaces_the_read_and_puts_the_probe_behind_every_sink(tmp_path):
    pipeline = _streaming_pipeline(tmp_path, sinks=2)
    assert len(live_reads.streaming_reads(pipeline)) == 1
    assert len(live_reads.sink_outputs(pipeline)) == 2
    context = RunContext(pipeline)
    try:
        assert len(context.feeds) == 1 and context.feeds[0].process.poll() is None
        kinds = [type(t) for t in _transforms(pipeline)]
        assert ReadFromKafka not in kinds
        assert kinds.count(ReadLiveFeed) == 1 and kinds.count(TestStream) == 1
        assert kinds.count(CommitAfterWrites) == 1
    finally:
        context.close()
    assert context.feeds == []


def test_two_runs_in_one_process_own_their_feeds(tmp_path):
    first, second = (RunContext(_streaming_pipeline(tmp_path / d)) for d in ("a", "b"))
    try:
        feeds = [first.feeds[0], second.feeds[0]]
        assert feeds[0].slots_path != feeds[1].slots_path
        assert first.request_stop(flush=False) == 1
        assert feeds[0].stop_mode != 0 and feeds[1].stop_mode == 0
    finally:
        first.close()
        second.close()
    assert all(feed.process.poll() is not None for feed in feeds)


def test_a_batch_run_starts_no_feed(tmp_path):
    pipeline = beam.Pipeline()
    _ = pipeline | ReadMessages(URI + "&stop=end") | WriteMessages(str(tmp_path / "out"))
    context = RunContext(pipeline)
    try:
        assert context.feeds == []
        assert len(context.deferred.reads) == 1  # committed once the run succeeded
    finally:
        context.close()


def test_io_imports_nothing_of_the_direct_runner():
    io_dir = Path(beamstream.__file__).parent / "io"
    offenders = []
    for path in io_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            direct = [n for n in names if n.startswith("beamstream.runners.direct")]
            offenders += [f"{path.name}: {n}" for n in direct]
    assert offenders == []
