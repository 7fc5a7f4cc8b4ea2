"""Run time on the DirectRunner: live feeds in place of streaming reads, probes behind the sinks.

``expand`` of ``ReadFromKafka`` and ``ReadFromPubSubMessages`` builds the same
read on every runner, without side effects. When a run starts on the
DirectRunner, ``prepare`` replaces each read that streams with a live feed
(``PTransformOverride``, as Beam's runners swap in their own reads): it starts
the feed process, creates the subscription of a Pub/Sub topic URI, derives
the commit horizon from the pipeline's windowing (``Finality``), and puts the
probe behind every ``Sink`` of the pipeline, so the read commits only what
the sinks have written for good. The TestStream it brings makes the
DirectRunner pick its streaming runner (the BundleBasedDirectRunner).
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor, PTransformOverride

from beamstream.io.kafka.read import ReadFromKafka
from beamstream.io.pubsub.read import ReadFromPubSubMessages, create_read_subscription
from beamstream.io.sinks import Sink
from beamstream.runners import is_local_streaming
from beamstream.runners.direct.commit_probe import CommitAfterWrites
from beamstream.runners.direct.feed import FeedFactory
from beamstream.runners.direct.feed_process import FeedProcess
from beamstream.runners.direct.finality import Finality
from beamstream.runners.direct.kafka_feed import KafkaFeed
from beamstream.runners.direct.pubsub_feed import PubSubFeed
from beamstream.runners.direct.read_feed import ReadLiveFeed

_LOG = logging.getLogger(__name__)


def streaming_reads(pipeline: beam.Pipeline) -> list[AppliedPTransform]:
    """The reads of ``pipeline`` that the local streaming DirectRunner needs a live feed for."""
    found: list[AppliedPTransform] = []

    class _Reads(PipelineVisitor):
        def enter_composite_transform(self, node: AppliedPTransform) -> None:
            transform = node.transform
            if isinstance(transform, ReadFromKafka) and is_local_streaming(
                pipeline, transform.unbounded
            ) or isinstance(transform, ReadFromPubSubMessages) and is_local_streaming(
                pipeline, unbounded=True
            ):
                found.append(node)

    pipeline.visit(_Reads())
    return found


def sink_outputs(pipeline: beam.Pipeline) -> list[beam.PCollection]:
    """What every ``Sink`` of ``pipeline`` returns: their watermark follows what is written."""
    found: list[beam.PCollection] = []

    class _Sinks(PipelineVisitor):
        def enter_composite_transform(self, node: AppliedPTransform) -> None:
            if isinstance(node.transform, Sink):
                found.extend(o for o in node.outputs.values() if isinstance(o, beam.PCollection))

    pipeline.visit(_Sinks())
    return found


def _factory(read: beam.PTransform | None, finality: Finality) -> FeedFactory:
    if isinstance(read, ReadFromKafka):
        return KafkaFeed(read.spec, read.batched, finality)
    assert isinstance(read, ReadFromPubSubMessages)
    uri = read.uri
    if uri.is_subscription:
        return PubSubFeed(read.read_spec(uri.path, created=False), read.batched, finality)
    return PubSubFeed(read.read_spec(create_read_subscription(uri), True), read.batched, finality)


class _LiveReadOverride(PTransformOverride):
    def __init__(self, replacements: dict[int, ReadLiveFeed]):
        self._replacements = replacements

    def matches(self, applied_ptransform: AppliedPTransform) -> bool:
        return id(applied_ptransform.transform) in self._replacements

    def get_replacement_transform_for_applied_ptransform(
        self, applied_ptransform: AppliedPTransform
    ) -> ReadLiveFeed:
        return self._replacements[id(applied_ptransform.transform)]


def prepare(pipeline: beam.Pipeline) -> list[FeedProcess]:
    """Replaces the streaming reads of ``pipeline``; returns the feeds started (the caller's)."""
    reads = streaming_reads(pipeline)
    if not reads:
        return []
    finality = Finality.of_pipeline(pipeline)
    written = sink_outputs(pipeline)
    if not written:
        _LOG.warning(
            "no beamstream Sink in this pipeline: its live reads commit what the pipeline "
            "has taken in, not what it has written (write through beamstream.io.sinks)"
        )
    feeds: list[FeedProcess] = []
    replacements: dict[int, ReadLiveFeed] = {}
    try:
        for node in reads:
            feed = FeedProcess(_factory(node.transform, finality))
            feeds.append(feed)
            replacements[id(node.transform)] = ReadLiveFeed(feed)
        pipeline.replace_all([_LiveReadOverride(replacements)])
        for n, (feed, live) in enumerate(zip(feeds, replacements.values())):
            if written and live.heartbeats is not None:
                feed.attach_probe()
                probe = CommitAfterWrites([feed.slots_path])
                _ = (live.heartbeats, *written) | f"CommitAfterWrites{n}" >> probe
    except BaseException:
        for feed in feeds:
            feed.stop()
        raise
    return feeds
