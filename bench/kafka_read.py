"""Bounded ReadFromKafka vs the raw kafka-python drain, same topic, same run.

    python -m bench.kafka_read [--records 1000000]

Prints records/s for (a) kafka-python assign+poll with no processing and
(b) a bounded ReadFromKafka -> count pipeline on the DirectRunner, batched
shape (what aggregating pipelines use), and their ratio (target >= 0.6).
(c) the record shape (one element per record) on a smaller slice, for scale.
"""

from __future__ import annotations

import argparse
import json
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beamstream.io.elements import MessageBatch
from beamstream.io.kafka import ReadFromKafka
from beamstream.launch.run import run_pipeline
from bench.kafka_bench import broker, produce, raw_drain


class _Count(beam.DoFn):
    def setup(self):
        self._records = Metrics.counter("bench", "records")

    def process(self, element):
        self._records.inc(element.size if isinstance(element, MessageBatch) else 1)


def pipeline_rate(uri: str, batched: bool, expected: int) -> float:
    def build(p, _options):
        p | ReadFromKafka(uri, batched=batched) | beam.ParDo(_Count())

    started = time.monotonic()
    result = run_pipeline(build, PipelineOptions())
    elapsed = time.monotonic() - started
    counted = result.metrics().query(MetricsFilter().with_name("records"))["counters"]
    total = sum(c.committed for c in counted)
    assert total == expected, (total, expected)
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--record-shape-records", type=int, default=100_000)
    args = parser.parse_args()
    with broker() as b:
        topic = b.create_topic("bench-read", partitions=4)
        lines = (
            json.dumps({"timestamp": 1_700_000_000 + i / 1000, "uid": f"u{i % 5000}"})
            for i in range(args.records)
        )
        produce(b.bootstrap, topic, lines, 4)
        raw = raw_drain(b.bootstrap, topic, args.records)
        batched = pipeline_rate(f"kafka://{b.bootstrap}/{topic}?stop=end", True, args.records)
        small = b.create_topic("bench-read-records", partitions=4)
        produce(
            b.bootstrap, small, (json.dumps({"i": i}) for i in range(args.record_shape_records)), 4
        )
        records = pipeline_rate(
            f"kafka://{b.bootstrap}/{small}?stop=end", False, args.record_shape_records
        )
    print(f"(a) raw kafka-python drain (assign+poll):     {raw:>10,.0f} records/s")
    print(
        f"(b) ReadFromKafka -> count, batched shape:    {batched:>10,.0f} records/s"
        f"  ratio {batched / raw:.2f} (target >= 0.60)"
    )
    print(
        f"(c) ReadFromKafka -> count, record shape:     {records:>10,.0f} records/s"
        f"  ({args.record_shape_records:,} records)"
    )


if __name__ == "__main__":
    main()
