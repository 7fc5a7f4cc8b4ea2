"""Pub/Sub in pipelines: event-time streaming on the DirectRunner against the emulator."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import window

from beamstream.io.clients import Subscriber, open_publisher, open_subscriber
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.pubsub import ReadFromPubSubMessages, WriteToPubSubMessages
from beamstream.io.sinks import WriteMessages
from beamstream.io.sources import ReadMessages
from beamstream.io.uris import UriError
from tests.services.ports import unique_name
from tests.support.runs import cancel, start

DEADLINE_S = 60.0


class _PerSecond(beam.DoFn):
    def process(self, count, win=beam.DoFn.WindowParam):
        yield {"second": int(win.start), "count": count}


def _count_per_second(pipeline: beam.Pipeline, source, sink: str) -> None:
    _ = (
        pipeline
        | "Read" >> source
        | beam.WindowInto(window.FixedWindows(1))
        | beam.Map(lambda _: 1)
        | beam.CombineGlobally(sum).without_defaults()
        | beam.ParDo(_PerSecond())
        | WriteMessages(sink)
    )


def _publish_in_order(topic: str, payloads, attributes=None, chunk: int = 100) -> None:
    """Publishes in order: the client sends its batches concurrently, so without a
    flush between them a later batch can reach Pub/Sub first, seconds of event
    time ahead, and make the earlier one late (seen on CI: 4 s of a replay lost)."""
    with open_publisher(f"pubsub://{topic}") as pub:
        for i, payload in enumerate(payloads):
            pub.publish(payload, attributes=attributes[i] if attributes else None)
            if (i + 1) % chunk == 0:
                pub.flush()


def _collect_counts(sub: Subscriber, expected_total: int) -> Counter:
    """Reads per-second results until they add up to the total (bounded), plus a grace pull."""
    counts: Counter = Counter()
    deadline = time.monotonic() + DEADLINE_S
    while sum(counts.values()) < expected_total and time.monotonic() < deadline:
        for m in sub.receive(100, 1.0):
            record = m.json()
            counts[record["second"]] += record["count"]
            m.ack()
    for m in sub.receive(100, 1.0):  # a duplicate or extra window would show up here
        record = m.json()
        counts[record["second"]] += record["count"]
        m.ack()
    return counts


def _in_and_out(emulator, prefix: str) -> tuple[str, str, str, str]:
    """Fresh input and output topics, each with a subscription: (topic, sub, topic, sub)."""
    frames_topic = emulator.create_topic(unique_name(prefix))
    out_topic = emulator.create_topic(unique_name(f"{prefix}-out"))
    return (
        frames_topic,
        emulator.create_subscription(frames_topic, unique_name(f"{prefix}-sub")),
        out_topic,
        emulator.create_subscription(out_topic, unique_name(f"{prefix}-out-sub")),
    )


def _streaming() -> beam.Pipeline:
    return beam.Pipeline(options=PipelineOptions(flags=[], streaming=True))


@pytest.mark.integration
def test_streaming_count_from_timestamp_attribute(pubsub_emulator) -> None:
    frames_topic, frames_sub, out_topic, out_sub = _in_and_out(pubsub_emulator, "frames")

    pipeline = _streaming()
    source = ReadFromPubSubMessages(
        f"pubsub://{frames_sub}",
        timestamp_attribute="ts",
        event_time=EventTimePolicy(field=None, idle_timeout_s=1.0),
    )
    _count_per_second(pipeline, source, f"pubsub://{out_topic}")
    result, run = start(pipeline)
    try:
        # Frames carry no time in the payload: event time comes from the attribute.
        start_ms = (int(time.time()) - 30) * 1000
        expected: Counter = Counter()
        stamps = [start_ms + i * 7 for i in range(600)]  # ~4.2 s of event time
        expected.update(ts // 1000 for ts in stamps)
        _publish_in_order(
            frames_topic,
            [{"uid": f"u{i % 13}"} for i in range(len(stamps))],
            attributes=[{"ts": str(ts)} for ts in stamps],
        )
        with open_subscriber(f"pubsub://{out_sub}") as sub:
            got = _collect_counts(sub, sum(expected.values()))
    finally:
        cancel(result, run)
    assert dict(got) == dict(expected)


@pytest.mark.integration
def test_replay_a_year_old_backlog_matches_plain_python(pubsub_emulator) -> None:
    """Old event times are not late: the watermark follows event time, not the wall clock."""
    frames_topic, frames_sub, out_topic, out_sub = _in_and_out(pubsub_emulator, "replay")

    rng = random.Random(4)
    base_ms = (int(time.time()) - 365 * 86_400) * 1000
    times = [base_ms + i * 4 + rng.randint(-500, 0) for i in range(2000)]  # 8 s, 0.5 s disorder
    lines = [json.dumps({"uid": f"u{rng.randint(1, 50)}", "timestamp": t}) for t in times]
    lines.insert(700, "not json")  # no event time: delivered, counted, does not move the watermark
    _publish_in_order(frames_topic, lines)

    # The same per-second counts, in plain Python (the unparseable line has no second).
    expected = Counter(t // 1000 for t in times)

    pipeline = _streaming()
    source = ReadMessages(
        f"pubsub://{frames_sub}",
        batched=False,
        # Long enough that a slow first pull on a busy machine is not taken for an
        # idle source (whose watermark would then follow the wall clock, a year on).
        event_time=EventTimePolicy(field="timestamp", idle_timeout_s=3.0),
    )
    _ = (
        pipeline
        | "Read" >> source
        | beam.Filter(lambda m: m.event_time_us is not None)
        | beam.WindowInto(window.FixedWindows(1))
        | beam.Map(lambda _: 1)
        | beam.CombineGlobally(sum).without_defaults()
        | beam.ParDo(_PerSecond())
        | WriteMessages(f"pubsub://{out_topic}")
    )
    result, run = start(pipeline)
    try:
        with open_subscriber(f"pubsub://{out_sub}") as sub:
            got = _collect_counts(sub, len(times))
    finally:
        cancel(result, run)
    assert dict(got) == dict(expected)


@pytest.mark.integration
def test_year_old_frames_published_to_an_idle_pipeline_are_on_time(pubsub_emulator) -> None:
    """A backfill into a running pipeline: a source that read nothing holds its watermark."""
    frames_topic, frames_sub, out_topic, out_sub = _in_and_out(pubsub_emulator, "backfill")

    pipeline = _streaming()
    source = ReadMessages(
        f"pubsub://{frames_sub}",
        batched=False,
        # Once data flows, a pause longer than this releases the watermark: on a
        # loaded machine the publisher below may pause ~1 s, so not shorter.
        event_time=EventTimePolicy(field="timestamp", idle_timeout_s=3.0),
    )
    _count_per_second(pipeline, source, f"pubsub://{out_topic}")
    result, run = start(pipeline)
    try:
        time.sleep(10)  # idle since start, far beyond the idle timeout
        base_ms = (int(time.time()) - 365 * 86_400) * 1000
        times = [base_ms + i * 5 for i in range(1000)]
        _publish_in_order(frames_topic, [json.dumps({"uid": "u", "timestamp": t}) for t in times])
        with open_subscriber(f"pubsub://{out_sub}") as sub:
            got = _collect_counts(sub, len(times))
    finally:
        cancel(result, run)
    assert dict(got) == dict(Counter(t // 1000 for t in times))


@pytest.mark.integration
def test_batched_read_carries_attributes_and_watermarks(pubsub_emulator) -> None:
    topic = pubsub_emulator.create_topic(unique_name("batched"))
    sub = pubsub_emulator.create_subscription(topic, unique_name("batched-sub"))
    out_topic = pubsub_emulator.create_topic(unique_name("batched-out"))
    out_sub = pubsub_emulator.create_subscription(out_topic, unique_name("batched-out-sub"))
    base_ms = 1_700_000_000_000
    with open_publisher(f"pubsub://{topic}") as pub:
        for i in range(300):
            pub.publish({"timestamp": base_ms + i * 10}, key="k", attributes={"i": str(i)})

    pipeline = _streaming()
    _ = (
        pipeline
        | ReadMessages(
            f"pubsub://{sub}",
            batched=True,
            event_time=EventTimePolicy(field="timestamp", idle_timeout_s=1.0),
        )
        | beam.FlatMap(
            lambda b: [
                {
                    "i": int(dict(h)["i"]),
                    "key": k.decode(),
                    "event_ms": e // 1000,
                    "wm_before_event": b.watermark_us <= e,
                }
                for h, k, e in zip(b.headers, b.keys, b.event_times_us)
            ]
        )
        | WriteMessages(f"pubsub://{out_topic}")
    )
    result, run = start(pipeline)
    got = []
    try:
        with open_subscriber(f"pubsub://{out_sub}") as reader:
            deadline = time.monotonic() + DEADLINE_S
            while len(got) < 300 and time.monotonic() < deadline:
                for m in reader.receive(300, 1.0):
                    got.append(m.json())
                    m.ack()
    finally:
        cancel(result, run)
    assert sorted(r["i"] for r in got) == list(range(300))
    assert {r["key"] for r in got} == {"k"}
    assert all(r["event_ms"] == base_ms + r["i"] * 10 for r in got)
    assert all(r["wm_before_event"] for r in got)


def test_runners_other_than_direct_use_beams_native_pubsub_io() -> None:
    options = PipelineOptions(
        flags=[], runner="PortableRunner", streaming=True, job_endpoint="localhost:1"
    )
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | ReadFromPubSubMessages(
            "pubsub://projects/beamstream-test/subscriptions/frames-sub", timestamp_attribute="ts"
        )
        | WriteToPubSubMessages("pubsub://projects/beamstream-test/topics/counts")
    )
    urns = {t.spec.urn for t in pipeline.to_runner_api().components.transforms.values()}
    names = {t.unique_name for t in pipeline.to_runner_api().components.transforms.values()}
    assert "beam:transform:pubsub_read:v1" in urns
    assert "WriteToPubSubMessages/WriteToPubSub" in names


def test_a_subscription_is_not_a_sink() -> None:
    with pytest.raises(UriError, match="sink is a topic"):
        WriteToPubSubMessages("pubsub://projects/beamstream-test/subscriptions/frames-sub")


@pytest.mark.integration
def test_stop_request_flushes_open_windows_and_stops_the_feed(pubsub_emulator) -> None:
    frames_topic, frames_sub, out_topic, out_sub = _in_and_out(pubsub_emulator, "stop")
    start_s = 1_700_000_000
    # 5 s of event time: the watermark reaches start + 2.99 s
    _publish_in_order(frames_topic, [{"timestamp": start_s * 1000 + i * 10} for i in range(500)])

    pipeline = _streaming()
    # A long idle timeout: only the flush can close the last three windows.
    read = ReadMessages(
        f"pubsub://{frames_sub}",
        event_time=EventTimePolicy(field="timestamp", idle_timeout_s=600),
    )
    _ = (
        pipeline
        | "Read" >> read
        | beam.WindowInto(window.FixedWindows(1))
        | beam.Map(lambda _: 1)
        | beam.CombineGlobally(sum).without_defaults()
        | beam.ParDo(_PerSecond())
        | WriteMessages(f"pubsub://{out_topic}")
    )
    result, run = start(pipeline)
    try:
        with open_subscriber(f"pubsub://{out_sub}") as sub:
            first = _collect_counts(sub, 200)  # the two windows the watermark closed
            assert dict(first) == {start_s: 100, start_s + 1: 100}
            # Stops this run's live feed (and only it: earlier tests' runs are their own).
            assert run.request_stop(flush=True) == 1
            rest = _collect_counts(sub, 300)
    finally:
        cancel(result, run)
    assert dict(rest) == {start_s + 2: 100, start_s + 3: 100, start_s + 4: 100}


@pytest.mark.integration
# Beam's TestStream reader thread dies of the broken stream: expected here, and reported.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_message_too_large_for_the_local_feed_fails_the_run_saying_so(pubsub_emulator) -> None:
    """Beam's TestStream reader dies of a broken stream without failing the run:
    without the feed's report the run would end as if done, or hang."""
    import threading

    from beamstream.launch.run import LiveFeedFailed, run_pipeline

    topic = pubsub_emulator.create_topic(unique_name("huge"))
    sub = pubsub_emulator.create_subscription(topic, unique_name("huge-sub"))
    with open_publisher(f"pubsub://{topic}") as pub:
        pub.publish("x" * 3_800_000)  # above the 3.5 MiB of one feed event

    def build(p, _options):
        _ = p | ReadMessages(f"pubsub://{sub}") | beam.Map(lambda m: m)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_pipeline(build, PipelineOptions(flags=[], streaming=True))
        except BaseException as exc:  # checked below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the run neither failed nor ended"
    assert len(errors) == 1 and isinstance(errors[0], LiveFeedFailed), errors
    assert "RecordTooLarge" in str(errors[0]) and "3,800," in str(errors[0])
