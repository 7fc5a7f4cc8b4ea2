"""File sinks write JSON Lines and count what they wrote as messages_produced."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from beamstream import counters
from beamstream.io.sinks import WriteMessages
from tests.support.jsonl import read_shards


def _produced(result) -> int:
    wanted = beam.metrics.MetricsFilter().with_name(counters.MESSAGES_PRODUCED)
    query = result.metrics().query(wanted)
    return sum(c.committed for c in query["counters"])


def test_batch_file_sink_counts_each_record(tmp_path: Path):
    records = [{"i": i, "text": "é"} for i in range(25)]
    pipeline = TestPipeline()
    _ = pipeline | beam.Create(records) | WriteMessages(str(tmp_path / "out"))
    result = pipeline.run()
    result.wait_until_finish()
    assert sorted(read_shards(str(tmp_path / "out")), key=lambda r: r["i"]) == records
    assert _produced(result) == 25


def test_streaming_file_sink_appends_and_counts(tmp_path: Path):
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = (
        TestStream()
        .add_elements([{"i": 0}, {"i": 1}])
        .advance_watermark_to(10)
        .add_elements([{"i": 2}])
        .advance_watermark_to_infinity()
    )
    pipeline = TestPipeline(options=options)
    _ = pipeline | stream | WriteMessages(str(tmp_path / "live"))
    result = pipeline.run()
    result.wait_until_finish()
    lines = (tmp_path / "live-00000-of-00001.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["i"] for line in lines) == [0, 1, 2]
    assert _produced(result) == 3
