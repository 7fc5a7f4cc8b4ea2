"""``ReadFromKafka`` and ``WriteToKafka``: pure-Python Kafka IO on kafka-python.

Reading picks its implementation in ``expand`` by runner, the way Beam picks
runner-specific implementations:

* streaming on the DirectRunner (``--streaming``, or a read that never stops):
  the live feed (``live_feed.py``), because the streaming DirectRunner cannot
  run an unbounded splittable DoFn (apache/beam#26577);
* everywhere else (batch on the DirectRunner, Prism batch and streaming,
  Flink, Dataflow, portable runners): ``KafkaPartitionSource``, an
  ``UnboundedSource`` read as a splittable DoFn with bundle finalization.

Both paths run the same ``KafkaBatchReader``. ``batched=True`` emits one
``MessageBatch`` per partition poll (for transforms that aggregate);
otherwise one ``Message`` per record.

Delivery (``commit=``, needs ``group=``):

* ``finalize`` (default, at-least-once): offsets are committed after the
  runner has durably finished the bundle that read them, through bundle
  finalization (Flink, Dataflow; Prism streaming, see below). The DirectRunner
  and Prism keep everything in memory, so there a batch run commits when it
  has succeeded (``commit_deferred()``, called by every beamstream pipeline's
  ``run``), and the streaming live feed commits what the sinks have written.
  Streaming on Prism commits at bundle finalization, when Prism has finished
  the read bundle but possibly before the windows its records belong to are
  written: a crash of the Prism process can lose the open windows' records.
* ``auto``: what was read is committed every few seconds (faster; a crash can
  lose what was read but not yet processed).
* ``none``: never commits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.pipeline import PipelineVisitor

from beamstream import counters
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka_feed import KafkaFeed
from beamstream.io.kafka_reader import KafkaReadSpec
from beamstream.io.kafka_source import KafkaPartitionSource, commit_deferred
from beamstream.io.live_feed import ReadLiveFeed
from beamstream.io.uris import KafkaUri, parse_kafka_uri
from beamstream.runners import (
    PRISM_RUNNERS,
    finalizes_in_process,
    is_local_streaming,
    pipeline_runner_name,
)

_LOG = logging.getLogger(__name__)
__all__ = ["ReadFromKafka", "WriteToKafka", "commit_deferred", "deferred_reads", "encode_value"]


def read_spec(
    uri: KafkaUri | str,
    event_time: EventTimePolicy = EventTimePolicy(),
    consumer_config: dict[str, Any] | None = None,
    max_batch: int = 5000,
) -> KafkaReadSpec:
    if isinstance(uri, str):
        uri = parse_kafka_uri(uri)
    return KafkaReadSpec(
        bootstrap_servers=uri.bootstrap_servers,
        topics=uri.topics,
        group=uri.group,
        start=uri.start,
        stop=uri.stop,
        max_records=uri.max_records,
        max_read_time=uri.max_read_time,
        commit=uri.commit,
        event_time=event_time,
        consumer_config=dict(consumer_config or {}),
        max_batch=max_batch,
    )


class ReadFromKafka(beam.PTransform):
    """Reads Kafka topics as ``Message`` or ``MessageBatch`` elements in event time."""

    def __init__(
        self,
        uri: KafkaUri | str,
        *,
        batched: bool = False,
        event_time: EventTimePolicy = EventTimePolicy(),
        consumer_config: dict[str, Any] | None = None,
        max_batch: int | None = None,
        finality: tuple[float, float] = (0.0, 0.0),
    ):
        """``finality``: (largest window, allowed lateness) in seconds of the
        pipeline's aggregations, so streaming commits wait for final windows."""
        super().__init__()
        # Batches travel as one element each: bigger ones pay the runner's
        # per-event cost less often. Single records gain nothing from it.
        max_batch = max_batch or (20_000 if batched else 5000)
        spec = read_spec(uri, event_time, consumer_config, max_batch)
        self._spec = dataclasses.replace(
            spec, commit_window_s=finality[0], commit_lateness_s=finality[1]
        )
        self._batched = batched
        self.live_feed: ReadLiveFeed | None = None
        self.deferral_key: str | None = None  # set when offsets wait for the run's success

    def expand(self, pbegin):
        spec = self._spec
        unbounded = spec.stop == "never" and spec.max_records is None and spec.max_read_time is None
        if is_local_streaming(pbegin.pipeline, unbounded):
            self.live_feed = ReadLiveFeed(KafkaFeed(spec, self._batched))
            return pbegin | "LiveFeed" >> self.live_feed
        streaming = pbegin.pipeline._options.view_as(StandardOptions).streaming  # noqa: SLF001
        if not streaming and not unbounded and finalizes_in_process(pbegin.pipeline):
            # The DirectRunner and Prism keep shuffled data in memory: a
            # finished read bundle is not durable, so a batch run commits only
            # when it succeeded. Their finalizers run in this process, where
            # run_pipeline commits what they deferred.
            self.deferral_key = uuid.uuid4().hex
            spec = dataclasses.replace(spec, deferral_key=self.deferral_key)
        if not streaming and not unbounded:
            # Batch: windows fire once, when the read is done. The FnApiRunner
            # does that anyway; Prism follows the source watermark as it goes,
            # and records behind it would come as LATE panes.
            spec = dataclasses.replace(spec, hold_watermark=True)
        if self._batched and not streaming:
            # A batch run fires windows once, at the end: no source watermark is
            # needed, and batch consumers read each record's time themselves.
            spec = dataclasses.replace(spec, stamp_event_times=False)
        # Prism takes the read stage's watermark from the bundle that finished
        # last, not the minimum over partitions: one split for all of them there.
        split = pipeline_runner_name(pbegin.pipeline) not in PRISM_RUNNERS
        source = KafkaPartitionSource(spec, self._batched, split_partitions=split)
        return pbegin | "ReadPartitions" >> beam.io.Read(source)


def deferred_reads(pipeline: beam.Pipeline) -> list[str]:
    """Deferral keys of this pipeline's Kafka reads that commit only on success."""
    keys: list[str] = []

    class _Find(PipelineVisitor):
        def enter_composite_transform(self, node) -> None:
            key = getattr(node.transform, "deferral_key", None)
            if isinstance(node.transform, ReadFromKafka) and key:
                keys.append(key)

    pipeline.visit(_Find())
    return keys


def encode_value(value: Any) -> bytes:
    """Sink payloads: bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _WriteToKafkaFn(beam.DoFn):
    """Sends with a producer opened in ``setup``; a failed delivery fails the bundle."""

    def __init__(
        self,
        servers: tuple[str, ...],
        topic: str,
        producer_config: dict[str, Any],
        key_fn: Callable[[Any], bytes | str | None] | None,
        headers_fn: Callable[[Any], list[tuple[str, bytes]]] | None,
    ):
        self._servers = servers
        self._topic = topic
        self._config = producer_config
        self._key_fn = key_fn
        self._headers_fn = headers_fn
        self._producer: Any = None
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def setup(self):
        from kafka import KafkaProducer

        config: dict[str, Any] = {
            "bootstrap_servers": list(self._servers),
            "acks": "all",
            "linger_ms": 20,
            "batch_size": 512 * 1024,
            "max_request_size": 4 * 1024 * 1024,
            "retries": 5,
            "client_id": "beamstream",
        }
        config.update(self._config)
        self._producer = KafkaProducer(**config)
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def start_bundle(self):
        self._errors = []

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def process(self, element):
        key = self._key_fn(element) if self._key_fn else None
        if isinstance(key, str):
            key = key.encode("utf-8")
        headers = self._headers_fn(element) if self._headers_fn else None
        self._producer.send(
            self._topic, value=encode_value(element), key=key, headers=headers
        ).add_errback(self._failed)

    def finish_bundle(self):
        self._producer.flush()
        if self._errors:
            first = self._errors[0]
            raise RuntimeError(
                f"{len(self._errors)} record(s) not delivered to Kafka topic "
                f"{self._topic!r}: {type(first).__name__}: {first}"
            ) from first

    def teardown(self):
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None


class WriteToKafka(beam.PTransform):
    """Writes elements (bytes, text, or JSON-able values) to one Kafka topic."""

    def __init__(
        self,
        uri: KafkaUri | str,
        *,
        key_fn: Callable[[Any], bytes | str | None] | None = None,
        headers_fn: Callable[[Any], list[tuple[str, bytes]]] | None = None,
        producer_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self._uri = parse_kafka_uri(uri) if isinstance(uri, str) else uri
        self._key_fn = key_fn
        self._headers_fn = headers_fn
        self._config = dict(producer_config or {})

    def expand(self, pcoll):
        return pcoll | "Produce" >> beam.ParDo(
            _WriteToKafkaFn(
                self._uri.bootstrap_servers,
                self._uri.topic,
                self._config,
                self._key_fn,
                self._headers_fn,
            )
        )
