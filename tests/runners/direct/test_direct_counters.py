"""Streaming DirectRunner counters count every bundle (Beam 2.77 kept only the first's)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from beamstream import counters


class _Consume(beam.DoFn):
    def setup(self):
        self._consumed = counters.counter(counters.MESSAGES_CONSUMED)

    def process(self, element):
        self._consumed.inc()
        yield element


def test_every_bundle_of_every_step_is_counted():
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = TestStream()
    for second in range(20):  # 20 events: many bundles per step
        stream = stream.add_elements([second, second + 100]).advance_watermark_to(second + 1)
    pipeline = TestPipeline(options=options)
    _ = (
        pipeline
        | stream.advance_watermark_to_infinity()
        | "First" >> beam.ParDo(_Consume())
        | "Second" >> beam.ParDo(_Consume())
    )
    result = pipeline.run()
    result.wait_until_finish()
    wanted = beam.metrics.MetricsFilter().with_name(counters.MESSAGES_CONSUMED)
    by_step = {c.key.step: c.committed for c in result.metrics().query(wanted)["counters"]}
    assert by_step == {"First": 40, "Second": 40}
