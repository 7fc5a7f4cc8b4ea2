"""File sinks write JSON Lines, count what they wrote as messages_produced, and never
rewrite or delete a file under their prefix in a streaming run."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from beamstream import counters
from beamstream.io.files import final_records, read_json_lines
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


def _streaming_options() -> PipelineOptions:
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return options


def test_streaming_file_sink_writes_new_files_per_window_and_keeps_earlier_runs(tmp_path: Path):
    """A restart must not delete or rewrite what an earlier run wrote under the prefix."""
    prefix = str(tmp_path / "out" / "sec")
    (tmp_path / "out").mkdir()
    earlier = {
        # today's streaming shard name, and a file of an earlier run of this sink
        "sec-00000-of-00001.jsonl": b'{"window_start":0,"frames":1,"pane":"ON_TIME"}\n',
        "sec-19700101T000000Z-19700101T000001Z-r20000101T000000000000Z0000-00000-abc.jsonl": (
            b'{"window_start":0,"frames":1,"pane":"ON_TIME"}\n'
        ),
    }
    for name, content in earlier.items():
        (tmp_path / "out" / name).write_bytes(content)
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements(
            [TimestampedValue(0, 0.2), TimestampedValue(0, 0.4), TimestampedValue(1, 1.5)]
        )
        .advance_watermark_to(3)
        .add_elements([TimestampedValue(0, 0.9)])  # late, within the allowed lateness
        .advance_watermark_to(5)
        .advance_watermark_to_infinity()
    )
    pipeline = TestPipeline(options=_streaming_options())
    counts = (
        pipeline
        | stream
        | beam.WindowInto(
            window.FixedWindows(1),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=Duration(seconds=30),
        )
        | beam.combiners.Count.PerElement()
        | beam.Map(lambda kv: {"window_start": kv[0], "frames": kv[1]})
    )
    results = counts | WriteMessages(prefix)
    names = results | beam.Map(lambda r: r.file_name.rsplit("/", 1)[-1])
    assert_that(names, lambda got: _three_files(got))
    result = pipeline.run()
    result.wait_until_finish()

    for name, content in earlier.items():  # still there, byte for byte
        assert (tmp_path / "out" / name).read_bytes() == content
    new = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name not in earlier)
    assert len(new) == 3, new  # window 0 on time, window 0 late, window 1 on time
    assert all(not name.startswith(".") for name in new), new  # no temporary file left
    first = [n for n in new if n.startswith("sec-19700101T000000Z-19700101T000001Z-")]
    assert [n.split("-")[4] for n in first] == ["00000", "00001"]  # pane indices, in order
    # The documented reading: last record per window in file-name order.
    assert {k: r["frames"] for k, r in final_records(prefix).items()} == {0: 3, 1: 1}
    assert [r["frames"] for r in read_json_lines(prefix) if r["window_start"] == 0] == [1, 1, 2, 3]
    assert _produced(result) == 3


def _three_files(names):
    assert len(names) == 3, names


def test_streaming_file_sink_global_window_writes_each_bundle(tmp_path: Path):
    """Unbounded records in the global window (dead letters) are written as they come."""
    stream = (
        TestStream()
        .add_elements([{"i": 0}, {"i": 1}])
        .advance_watermark_to(10)
        .add_elements([{"i": 2}])
        .advance_watermark_to_infinity()
    )
    pipeline = TestPipeline(options=_streaming_options())
    _ = pipeline | stream | WriteMessages(str(tmp_path / "live"))
    result = pipeline.run()
    result.wait_until_finish()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(f.startswith("live-global-r") for f in files), files
    assert sorted(r["i"] for r in read_json_lines(str(tmp_path / "live"))) == [0, 1, 2]
    assert _produced(result) == 3


def test_building_a_streaming_file_sink_touches_nothing(tmp_path: Path):
    existing = tmp_path / "live-00000-of-00001.jsonl"
    existing.write_bytes(b'{"i":0}\n')
    pipeline = TestPipeline(options=_streaming_options())
    _ = (
        pipeline
        | TestStream().add_elements([{"i": 1}])
        | WriteMessages(str(tmp_path / "new" / "live"))
    )
    _ = (
        pipeline
        | "Again" >> TestStream().add_elements([{"i": 1}])
        | "Same" >> WriteMessages(str(tmp_path / "live"))
    )
    assert existing.read_bytes() == b'{"i":0}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live-00000-of-00001.jsonl"]
