"""``ReadFromKafka``: Kafka topics as ``Message`` or ``MessageBatch`` elements, on kafka-python.

``expand`` builds one thing on every runner: ``KafkaPartitionSource``, an
``UnboundedSource`` read as a splittable DoFn with bundle finalization (batch
on the DirectRunner, Prism batch and streaming, Flink, Dataflow). Streaming on
the DirectRunner (``--streaming``, or a read that never stops) cannot run an
unbounded splittable DoFn (apache/beam#26577): there the run replaces this
read with a live feed when it starts (``beamstream.runners.direct``), the way
Beam's runners swap in their own implementations. Both run the same
``KafkaBatchReader``. ``batched=True`` emits one ``MessageBatch`` per
partition poll (for transforms that aggregate); otherwise one ``Message`` per
record.

Delivery (``commit=``, needs ``group=``):

* ``finalize`` (default, at-least-once): offsets are committed after the
  runner has durably finished the bundle that read them, through bundle
  finalization (Flink, Dataflow; Prism streaming, see below). The DirectRunner
  and Prism keep everything in memory, so there a batch run commits when it
  has succeeded (``commits.DeferredCommits``, owned by the run that
  ``run_pipeline`` starts), and the streaming live feed commits what the sinks
  have written. Streaming on Prism commits at bundle finalization, when Prism
  has finished the read bundle but possibly before the windows its records
  belong to are written: a crash of the Prism process can lose the open
  windows' records.
* ``auto``: what was read is committed every few seconds (faster; a crash can
  lose what was read but not yet processed).
* ``none``: never commits.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

import apache_beam as beam
from apache_beam.io.unbounded_source import ReadFromUnboundedSource
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.pipeline import PipelineVisitor

from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.kafka.source import KafkaPartitionSource
from beamstream.io.kafka.spec import KafkaReadSpec
from beamstream.io.uris import KafkaUri, parse_kafka_uri
from beamstream.runners import PRISM_RUNNERS, finalizes_in_process, pipeline_runner_name

_LOG = logging.getLogger(__name__)
# Streaming read bundles: reading time, and the wait before polling an empty source again.
STREAMING_BUNDLE_S = 0.25
STREAMING_POLL_INTERVAL_S = 0.05
# ... and the reading time of a bundle whose reader has caught up (live data).
STREAMING_LIVE_BUNDLE_S = 0.1
__all__ = ["ReadFromKafka", "deferred_reads", "read_spec"]


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
        client=uri.client,
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
    ):
        super().__init__()
        # Batches travel as one element each: bigger ones pay the runner's
        # per-event cost less often. Single records gain nothing from it.
        max_batch = max_batch or (20_000 if batched else 5000)
        self.spec = read_spec(uri, event_time, consumer_config, max_batch)
        self.batched = batched
        self.deferral_key: str | None = None  # set when offsets wait for the run's success

    @property
    def unbounded(self) -> bool:
        spec = self.spec
        return spec.stop == "never" and spec.max_records is None and spec.max_read_time is None

    def expand(self, pbegin):
        # No side effects here: the local streaming DirectRunner's live feed
        # replaces this read at run time (beamstream.runners.direct.live_reads).
        spec, unbounded = self.spec, self.unbounded
        streaming = pbegin.pipeline._options.view_as(StandardOptions).streaming  # noqa: SLF001
        if not streaming and not unbounded and finalizes_in_process(pbegin.pipeline):
            # The DirectRunner and Prism keep shuffled data in memory: a
            # finished read bundle is not durable, so a batch run commits only
            # when it succeeded. Their finalizers run in this process, where
            # the run's DeferredCommits keep what they report (commits.py).
            self.deferral_key = uuid.uuid4().hex
            spec = dataclasses.replace(spec, deferral_key=self.deferral_key)
        if not streaming and not unbounded:
            # Batch: windows fire once, when the read is done. The FnApiRunner
            # does that anyway; Prism follows the source watermark as it goes,
            # and records behind it would come as LATE panes.
            spec = dataclasses.replace(spec, hold_watermark=True)
        if self.batched and not streaming:
            # A batch run fires windows once, at the end: no source watermark is
            # needed, and batch consumers read each record's time themselves.
            spec = dataclasses.replace(spec, stamp_event_times=False)
        # Prism takes the read stage's watermark from the bundle that finished
        # last, not the minimum over partitions: one split for all of them there.
        split = pipeline_runner_name(pbegin.pipeline) not in PRISM_RUNNERS
        source = KafkaPartitionSource(
            spec,
            self.batched,
            split_partitions=split,
            chain=uuid.uuid4().hex,
            live_bundle_s=STREAMING_LIVE_BUNDLE_S if streaming else None,
        )
        if not streaming:
            return pbegin | "ReadPartitions" >> beam.io.Read(source)
        # A read bundle's output moves on, and its watermark counts, only once
        # the bundle ends: Beam's defaults (10 s of reading, 1 s of back-off
        # when the source is momentarily empty) put live results 5-10 s late.
        # Short bundles cost no consumer each: the reader goes on across them
        # (source._Handoffs). A caught-up reader ends its bundle sooner still
        # (live_bundle_s); a backlog is read in the longer ones.
        return pbegin | "ReadPartitions" >> _ReadShortBundles(source)


class _ReadShortBundles(beam.PTransform):
    """``beam.io.Read(source)`` with short read bundles.

    The steps keep ``Read``'s names (``ReadFromUnboundedSource/...``): a
    running Dataflow streaming job is updated in place only when its steps'
    names match.
    """

    def __init__(self, source: KafkaPartitionSource) -> None:
        super().__init__()
        self.source = source

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return pbegin | ReadFromUnboundedSource(
            self.source,
            poll_interval=STREAMING_POLL_INTERVAL_S,
            max_read_time_seconds=STREAMING_BUNDLE_S,
        )


def deferred_reads(pipeline: beam.Pipeline) -> dict[str, KafkaReadSpec]:
    """This pipeline's Kafka reads that commit only on success: deferral key -> spec."""
    reads: dict[str, KafkaReadSpec] = {}

    class _Find(PipelineVisitor):
        def enter_composite_transform(self, node) -> None:
            key = getattr(node.transform, "deferral_key", None)
            if isinstance(node.transform, ReadFromKafka) and key:
                reads[key] = node.transform.spec

    pipeline.visit(_Find())
    return reads
