"""Local streaming from the real broker: batched and record-at-a-time sources agree.

A holdout-style stream (disorder, a gap, invalid records) is read by the live
feed twice, once as ``MessageBatch`` elements and once as single ``Message``
elements, through ``FrameMetrics`` on the streaming DirectRunner. Final
per-second and per-minute results and dead letters must be identical, equal to
an independent count, and the backlog must produce windows before it is read
to the end.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from kafka import KafkaProducer

from beamstream.io.elements import MessageBatch
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka import ReadFromKafka
from beamstream.synthetic import frames
from beamstream.transforms.frame_metrics import FrameMetrics
from tests.support import runs
from tests.support.frames_reference import reference

pytestmark = pytest.mark.integration

_SEEN: dict[str, list] = {}


def _record(element, key):
    _SEEN[key].append(element)


def _count_read(element, key):
    _SEEN[key].append(element.size if isinstance(element, MessageBatch) else 1)
    return element


def _first_result(element, key):
    """Notes how many records had been read when a window result came out."""
    _SEEN[key].append(sum(_SEEN[key.replace("first", "read")]))
    return element


def _run(uri: str, batched: bool) -> dict[str, list]:
    tag = f"{'batched' if batched else 'records'}-{len(_SEEN)}"
    for name in ("sec", "min", "dead", "read", "first"):
        _SEEN[f"{tag}-{name}"] = []
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=options)
    read = (
        p
        | ReadFromKafka(
            uri,
            batched=batched,
            event_time=EventTimePolicy(field="timestamp", max_out_of_orderness_s=2.0),
        )
        | "CountRead" >> beam.Map(_count_read, f"{tag}-read")
    )
    out = read | FrameMetrics(allowed_lateness_s=5)
    (
        out["per_second"]
        | "First" >> beam.Map(_first_result, f"{tag}-first")
        | "Sec" >> beam.Map(_record, f"{tag}-sec")
    )
    out["per_minute"] | "Min" >> beam.Map(_record, f"{tag}-min")
    out["dead_letters"] | "Dead" >> beam.Map(_record, f"{tag}-dead")
    runs.run_to_end(p)  # live feed and its commits, as run_pipeline gives
    return {name: _SEEN[f"{tag}-{name}"] for name in ("sec", "min", "dead", "read", "first")}


def _final(rows, field):
    order = {"ON_TIME": 0, "LATE": 1}
    result = {}
    for row in sorted(rows, key=lambda r: (order[r["pane"]], r[field])):
        result[row["window_start"]] = row[field]
    return result


def _topic_with(kafka_broker, name: str, lines: list[str]) -> str:
    topic = kafka_broker.new_topic(name, partitions=2)
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, linger_ms=10, batch_size=256 * 1024
    )
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % 2)
    producer.flush()
    producer.close()
    return f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end"


def test_batched_and_record_sources_agree(kafka_broker):
    lines = list(
        frames(
            30_000, per_second=200, users=300, disorder_s=1.5, invalid_every=499, gaps=((40, 46),)
        )
    )
    uri = _topic_with(kafka_broker, "shapes", lines)
    batched, records = _run(uri, True), _run(uri, False)
    want_seconds, want_minutes, invalid = reference(lines)
    for run in (batched, records):
        assert _final(run["sec"], "frames") == want_seconds
        assert _final(run["min"], "unique_users") == want_minutes
        assert sum(run["read"]) == len(lines)
        assert len(run["dead"]) == invalid
    assert sorted(d["source"] for d in batched["dead"]) == sorted(
        d["source"] for d in records["dead"]
    )


def test_backlog_emits_windows_before_it_is_read_to_the_end(kafka_broker):
    lines = list(frames(200_000, per_second=1000, users=1000, disorder_s=1.0))
    run = _run(_topic_with(kafka_broker, "backlog", lines), True)
    assert sum(run["read"]) == len(lines)
    # the first per-second result came out before the backlog was read to the end
    # (up to 8 events of 20,000 records may be in flight: ~140k of 200k here)
    assert min(run["first"]) < len(lines)
