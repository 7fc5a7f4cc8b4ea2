"""ReadFromKafka / WriteToKafka against the real broker (Apache Kafka, or Tansu without Java)."""

from __future__ import annotations

import json
import os
import threading
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from kafka import KafkaProducer

from beamstream import counters
from beamstream.io.elements import MessageBatch
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka import ReadFromKafka, WriteToKafka
from beamstream.io.kafka.spec import KafkaReadError
from beamstream.launch.run import run_pipeline
from tests.services.ports import unique_name
from tests.support import runs
from tests.support.kafka_clients import with_client
from tests.support.kafka_offsets import committed_offsets

pytestmark = pytest.mark.integration

# Outputs collected in this process: module-level functions pickle by reference.
_SEEN: dict[str, list] = {}


def _collect(element, key):
    _SEEN[key].append(element)


def _positions(element):
    """(partition, offset) of every record, whichever shape the source emitted."""
    if isinstance(element, MessageBatch):
        return [(element.partition, o) for o in element.offsets]
    return [(element.partition, element.offset)]


def _produce(bootstrap, topic, n, partitions=4, start=0, key=False):
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    for i in range(start, start + n):
        producer.send(
            topic,
            json.dumps({"timestamp": 1_700_000_000 + i / 1000, "uid": f"u{i % 97}"}).encode(),
            key=f"k{i}".encode() if key else None,
            partition=i % partitions,
        )
    producer.flush()
    producer.close()


def _read_positions(uri, batched=True, **options) -> list[tuple[int, int]]:
    key = f"read-{len(_SEEN)}"
    _SEEN[key] = []

    def build(p, _options):
        (
            p
            | ReadFromKafka(uri, batched=batched)
            | beam.FlatMap(_positions)
            | beam.Map(_collect, key)
        )

    run_pipeline(build, PipelineOptions(**options))
    return _SEEN[key]


def test_bounded_read_returns_each_record_exactly_once(kafka_broker, kafka_client):
    topic = kafka_broker.new_topic("exact", partitions=4)
    _produce(kafka_broker.bootstrap, topic, 100_000)
    seen = _read_positions(
        with_client(f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end", kafka_client)
    )
    assert len(seen) == 100_000
    assert sorted(seen) == sorted((i % 4, i // 4) for i in range(100_000))


def test_record_shape_emits_one_message_per_record(kafka_broker, kafka_client):
    topic = kafka_broker.new_topic("records", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 2_000, partitions=2)
    seen = _read_positions(
        with_client(f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end", kafka_client),
        batched=False,
    )
    assert sorted(seen) == sorted((i % 2, i // 2) for i in range(2_000))


def test_finalize_commits_and_committed_start_reads_only_new_records(kafka_broker, kafka_client):
    bootstrap = kafka_broker.bootstrap
    topic = kafka_broker.new_topic("commits", partitions=4)
    _produce(bootstrap, topic, 4_000)
    uri = with_client(
        f"kafka://{bootstrap}/{topic}?stop=end&group=g1&start=committed", kafka_client
    )
    first = _read_positions(uri)
    assert len(first) == 4_000
    assert committed_offsets(bootstrap, topic, "g1") == {p: 1_000 for p in range(4)}
    assert _read_positions(uri) == []
    _produce(bootstrap, topic, 1_000, start=4_000)
    third = _read_positions(uri)
    assert sorted(third) == sorted((i % 4, i // 4) for i in range(4_000, 5_000))


class _FailOnce(beam.DoFn):
    """Fails the run the first time it sees a given offset (marker file = already failed)."""

    def __init__(self, marker: str, offset: int):
        self._marker = marker
        self._offset = offset

    def process(self, element):
        if not os.path.exists(self._marker) and any(o == self._offset for _, o in element):
            open(self._marker, "w").close()
            raise RuntimeError("injected failure")
        yield element


def test_failed_run_commits_nothing_and_rerun_loses_nothing(kafka_broker, kafka_client, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topic = kafka_broker.new_topic("atleastonce", partitions=4)
    _produce(bootstrap, topic, 20_000)
    uri = with_client(
        f"kafka://{bootstrap}/{topic}?stop=end&group=g2&start=committed", kafka_client
    )
    key = "failing"
    _SEEN[key] = []

    def build(p, _options):
        (
            p
            | ReadFromKafka(uri, batched=True)
            | beam.Map(_positions)
            | beam.ParDo(_FailOnce(str(tmp_path / "failed"), 4_000))
            | beam.FlatMap(lambda positions: positions)
            | beam.Map(_collect, key)
        )

    with pytest.raises(Exception, match="injected failure"):
        run_pipeline(build, PipelineOptions())
    assert all(offset is None for offset in committed_offsets(bootstrap, topic, "g2").values())
    rerun = _read_positions(uri)
    # at-least-once: everything arrives on the rerun
    assert sorted(set(rerun)) == sorted((i % 4, i // 4) for i in range(20_000))
    assert committed_offsets(bootstrap, topic, "g2") == {p: 5_000 for p in range(4)}


def test_write_then_read_preserves_keys_values_and_headers(kafka_broker, kafka_client):
    bootstrap = kafka_broker.bootstrap
    topic = kafka_broker.new_topic("roundtrip", partitions=1)
    records = [{"id": i, "text": f"héllo {i}"} for i in range(50)]
    with beam.Pipeline() as p:
        (
            p
            | beam.Create(records)
            | WriteToKafka(
                with_client(f"kafka://{bootstrap}/{topic}", kafka_client),
                key_fn=lambda r: f"key-{r['id']}",
                headers_fn=lambda r: [("id", str(r["id"]).encode()), ("kind", b"test")],
            )
        )
    key = "roundtrip"
    _SEEN[key] = []

    def build(p, _options):
        (
            p
            | ReadFromKafka(with_client(f"kafka://{bootstrap}/{topic}?stop=end", kafka_client))
            | beam.Map(_collect, key)
        )

    run_pipeline(build, PipelineOptions())
    got = sorted(_SEEN[key], key=lambda m: m.offset)
    assert [json.loads(m.value) for m in got] == records
    assert [m.key for m in got] == [f"key-{i}".encode() for i in range(50)]
    assert [dict(m.headers) for m in got] == [
        {"id": str(i).encode(), "kind": b"test"} for i in range(50)
    ]


def test_write_counts_each_record_it_sends_as_produced(kafka_broker, kafka_client):
    """messages_produced counts what the Kafka sink wrote, as every other sink does."""
    topic = kafka_broker.new_topic("produced", partitions=2)
    pipeline = beam.Pipeline()
    _ = (
        pipeline
        | beam.Create([{"id": i} for i in range(40)])
        | WriteToKafka(with_client(f"kafka://{kafka_broker.bootstrap}/{topic}", kafka_client))
    )
    result = pipeline.run()
    result.wait_until_finish()
    wanted = beam.metrics.MetricsFilter().with_name(counters.MESSAGES_PRODUCED)
    assert sum(c.committed for c in result.metrics().query(wanted)["counters"]) == 40


def test_a_record_the_broker_refuses_fails_the_write_naming_it(kafka_broker, kafka_client):
    # The broker, not the client, refuses it (the topic allows 2,000 bytes, the
    # clients 1 MB): the failure comes back asynchronously, as a delivery report.
    from confluent_kafka.admin import AdminClient, NewTopic

    if not kafka_broker.is_apache_kafka:
        pytest.skip("needs the topic-level max.message.bytes of Apache Kafka")
    topic = unique_name("small-records")
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    created = admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "2000"})])
    created[topic].result(30)
    records = ["small"] * 20 + ["x" * 10_000]
    uri = with_client(f"kafka://{kafka_broker.bootstrap}/{topic}", kafka_client)
    failed = r"1 record\(s\) not delivered to Kafka topic"
    with pytest.raises(Exception, match=failed), beam.Pipeline() as p:
        _ = p | beam.Create(records) | WriteToKafka(uri)


def test_missing_topic_and_unreachable_broker_fail_with_clear_errors(kafka_broker, kafka_client):
    with pytest.raises(Exception, match="does not exist"):
        _read_positions(
            with_client(f"kafka://{kafka_broker.bootstrap}/no-such-topic?stop=end", kafka_client)
        )
    started = time.monotonic()
    with pytest.raises(Exception, match=r"cannot reach Kafka at 127\.0\.0\.1:9"):
        _read_positions(with_client("kafka://127.0.0.1:9/t?stop=end", kafka_client))
    assert time.monotonic() - started < 120  # bounded, not a hang
    assert issubclass(KafkaReadError, RuntimeError)


def test_same_bounded_pipeline_on_portable_runner(kafka_broker, kafka_client):
    """The portable path Flink and Dataflow use gives the same records."""
    topic = kafka_broker.new_topic("portable", partitions=2)
    _produce(kafka_broker.bootstrap, topic, 3_000, partitions=2)
    uri = with_client(f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end", kafka_client)
    direct = _read_positions(uri)
    portable = _read_positions(
        uri, runner="PortableRunner", job_endpoint="embed", environment_type="LOOPBACK"
    )
    assert sorted(portable) == sorted(direct)
    assert len(portable) == 3_000


def test_streaming_on_direct_runner_counts_live_records_per_window(kafka_broker, kafka_client):
    """Records produced in real time give the right per-window counts while it runs."""
    bootstrap = kafka_broker.bootstrap
    topic = kafka_broker.new_topic("live", partitions=2)
    key = "live"
    _SEEN[key] = []
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    pipeline = beam.Pipeline(options=options)
    (
        pipeline
        | ReadFromKafka(
            with_client(f"kafka://{bootstrap}/{topic}", kafka_client),
            batched=True,
            event_time=EventTimePolicy(field="timestamp", max_out_of_orderness_s=0.5),
        )
        | beam.FlatMap(
            lambda b: [beam.window.TimestampedValue(1, t / 1e6) for t in b.event_times_us if t]
        )
        | beam.WindowInto(beam.window.FixedWindows(1))
        | beam.CombineGlobally(sum).without_defaults()
        | beam.Map(lambda n, w=beam.DoFn.WindowParam: (int(w.start), n))
        | beam.Map(_collect, key)
    )
    result, run = runs.start(pipeline)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    start = int(time.time()) + 1
    sent: dict[int, int] = {}

    def produce():
        # 6 seconds of frames, 200 per second, event time = now
        while time.time() < start + 6:
            now = time.time()
            if now >= start:
                producer.send(topic, json.dumps({"timestamp": now, "uid": "u"}).encode())
                sent[int(now)] = sent.get(int(now), 0) + 1
            time.sleep(0.005)
        producer.flush()

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    deadline = time.time() + 30
    try:
        # windows up to start+4 must be complete well after the watermark passed them
        while time.time() < deadline:
            done = {w for w, _ in _SEEN[key]}
            if all(s in done for s in range(start, start + 5)):
                break
            time.sleep(0.2)
        got = dict(_SEEN[key])
        for second in range(start, start + 5):
            assert got.get(second) == sent[second], (second, got, sent)
        # results arrived while the pipeline was still running
        assert str(result.state) == "RUNNING"
    finally:
        runs.cancel(result, run)


_A_WAITING = threading.Event()  # run A has read (and deferred) everything
_A_RELEASE = threading.Event()


def _hold_until_released(element):
    _A_WAITING.set()
    assert _A_RELEASE.wait(120), "never released"
    return element


def test_two_runs_in_one_process_commit_only_their_own_offsets(kafka_broker, kafka_client):
    """Deferred batch offsets belong to their run: another run's start or end leaves them."""
    bootstrap = kafka_broker.bootstrap
    topics = {name: kafka_broker.new_topic(f"two-runs-{name}", partitions=4) for name in "ab"}
    for topic in topics.values():
        _produce(bootstrap, topic, 400)
    uris = {
        name: with_client(
            f"kafka://{bootstrap}/{topic}?stop=end&group=g-{topic}&start=committed", kafka_client
        )
        for name, topic in topics.items()
    }
    _A_WAITING.clear()
    _A_RELEASE.clear()

    def build_a(p, _options):
        # The read finishes (its offsets deferred) before the step after the shuffle blocks.
        _ = (
            p
            | ReadFromKafka(uris["a"], batched=True)
            | beam.Reshuffle()
            | beam.Map(_hold_until_released)
        )

    errors: list[BaseException] = []

    def run_a() -> None:
        try:
            run_pipeline(build_a, PipelineOptions())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run_a)
    thread.start()
    try:
        assert _A_WAITING.wait(120), "run A never got past its read"
        assert len(_read_positions(uris["b"])) == 400  # run B, start to end, meanwhile
    finally:
        _A_RELEASE.set()
        thread.join(120)
    assert not errors, errors
    for topic in topics.values():
        want = {p: 100 for p in range(4)}
        assert committed_offsets(bootstrap, topic, f"g-{topic}") == want, topic


def test_one_split_reader_holds_the_watermark_for_every_partition_and_resumes_it(
    kafka_broker, kafka_client
):
    """The Prism shape (one split over all partitions): no element is emitted behind
    a watermark reported before it, whichever partition it comes from, and a reader
    rebuilt from a checkpoint mark goes on from the watermark reported before."""
    from beamstream.io.kafka import read_spec
    from beamstream.io.kafka.source import KafkaPartitionSource

    topic = kafka_broker.new_topic("one-split", partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    base = 1_700_000_000
    for i in range(400):  # partition 0 runs 100 s ahead of partition 1 in event time
        producer.send(topic, json.dumps({"timestamp": base + 100 + i / 10}).encode(), partition=0)
        producer.send(topic, json.dumps({"timestamp": base + i / 10}).encode(), partition=1)
    producer.flush()
    producer.close()
    policy = EventTimePolicy(field="timestamp", max_out_of_orderness_s=2.0, idle_timeout_s=1000)
    spec = read_spec(
        with_client(f"kafka://{kafka_broker.bootstrap}/{topic}", kafka_client),
        policy,
        max_batch=150,
    )
    [source] = KafkaPartitionSource(spec, batched=True, split_partitions=False).split(1)
    assert source.partitions == ((topic, 0), (topic, 1))

    def drain(reader, want):
        emitted: list[tuple[int, int]] = []  # (element timestamp, watermark reported with it)
        has = reader.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if has:  # what the SDF does with each claimed element
                seen.append(reader.get_current().offsets)
                emitted.append(
                    (reader.get_current_timestamp().micros, reader.get_watermark().micros)
                )
            if sum(len(e) for e in seen) >= want:
                break
            has = reader.advance()
        return emitted

    seen: list[list[int]] = []
    reader = source.create_reader(None, None)
    first = drain(reader, 600)  # both partitions have delivered by then
    mark = reader.get_checkpoint_mark()
    reader.close()
    assert mark.watermark_us > 0 and mark.next_offsets, mark
    rebuilt = source.create_reader(None, mark)
    assert rebuilt.get_watermark().micros == mark.watermark_us
    second = drain(rebuilt, 800)
    rebuilt.close()
    assert sum(len(e) for e in seen) == 800, (mark, [(e[0], e[-1]) for e in seen])
    emitted = first + second
    for i, (_, watermark) in enumerate(emitted):
        later = [ts for ts, _ in emitted[i + 1 :]]
        assert not later or watermark <= min(later), (i, watermark, min(later))
    # partition 1 lags by 100 s: the watermark waits for it
    assert max(w for _, w in emitted) < (base + 40) * 1_000_000
