"""Pub/Sub read throughput on the DirectRunner, against the raw pull rate.

Publishes N frames (default 50,000) to a topic with two subscriptions, then
in the same run measures

* the raw drain: the plain subscriber pulling and acking 1,000 at a time;
* the pipeline: ``ReadMessages(pubsub://...)`` → count, record shape and batch
  shape (each on its own subscription), until every message was counted.

Uses ``PUBSUB_EMULATOR_HOST`` when set, else starts the emulator.
Run: ``.venv/bin/python -m bench.pubsub_read [N]``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beamstream.io.clients import open_publisher, open_subscriber
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.sources import ReadMessages
from tests.support.runs import cancel

PROJECT = "beamstream-bench"
_COUNTED = {"n": 0}
_LOCK = threading.Lock()


class _Count(beam.DoFn):
    def process(self, element):
        n = element.size if hasattr(element, "values") else 1
        with _LOCK:
            _COUNTED["n"] += n


def _publish(topic: str, n: int) -> float:
    start = time.perf_counter()
    with open_publisher(f"pubsub://{topic}") as pub:
        for i in range(n):
            pub.publish(json.dumps({"uid": f"u{i % 5000}", "timestamp": 1_700_000_000_000 + i}))
    return time.perf_counter() - start


def _drain(subscription: str, n: int) -> float:
    start = time.perf_counter()
    got = 0
    with open_subscriber(f"pubsub://{subscription}") as sub:
        while got < n:
            batch = sub.receive(1000, 5.0)
            for m in batch:
                m.ack()
            got += len(batch)
    return time.perf_counter() - start


def _pipeline(subscription: str, n: int, batched: bool) -> float:
    _COUNTED["n"] = 0
    pipeline = beam.Pipeline(options=PipelineOptions(flags=[], streaming=True))
    _ = (
        pipeline
        | ReadMessages(
            f"pubsub://{subscription}",
            batched=batched,
            event_time=EventTimePolicy(field="timestamp", idle_timeout_s=2.0),
        )
        | beam.ParDo(_Count())
    )
    start = time.perf_counter()
    result, run = start(pipeline)
    deadline = start + 600
    while _COUNTED["n"] < n and time.perf_counter() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    cancel(result, run)
    if _COUNTED["n"] < n:
        print(f"  pipeline counted only {_COUNTED['n']} of {n}", file=sys.stderr)
    return elapsed


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 50_000
    emulator = None
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        from tests.services.pubsub_emulator import start_pubsub_emulator

        emulator = start_pubsub_emulator(Path(tempfile.mkdtemp(prefix="bench-pubsub-")))
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        from google.cloud import pubsub_v1

        admin_pub, admin_sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        suffix = str(int(time.time()))
        topic = admin_pub.create_topic(name=f"projects/{PROJECT}/topics/bench-{suffix}").name
        subs = {}
        for name in ("raw", "records", "batches"):
            subs[name] = admin_sub.create_subscription(
                name=f"projects/{PROJECT}/subscriptions/bench-{name}-{suffix}",
                topic=topic,
                ack_deadline_seconds=60,
            ).name
        publish_s = _publish(topic, n)
        print(f"published {n} in {publish_s:.1f}s ({n / publish_s:,.0f} msgs/s)")
        raw_s = _drain(subs["raw"], n)
        print(f"raw pull+ack drain:            {n / raw_s:>9,.0f} msgs/s ({raw_s:.1f}s)")
        rec_s = _pipeline(subs["records"], n, batched=False)
        print(
            f"pipeline, Message elements:    {n / rec_s:>9,.0f} msgs/s ({rec_s:.1f}s with start-up)"
        )
        bat_s = _pipeline(subs["batches"], n, batched=True)
        print(
            f"pipeline, MessageBatch (1000): {n / bat_s:>9,.0f} msgs/s ({bat_s:.1f}s with start-up)"
        )
    finally:
        if emulator is not None:
            emulator.close()
    return 0


if __name__ == "__main__":
    # Run the imported module, not __main__: the counting DoFn must be pickled
    # by reference so that it updates this process's counter.
    from bench.pubsub_read import main as _main

    sys.exit(_main(sys.argv[1:]))
