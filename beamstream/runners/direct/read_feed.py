"""``ReadLiveFeed``: a feed streamed into the local streaming DirectRunner through TestStream.

The first step after the ``TestStream`` acknowledges each event to the feed
(through shared memory), which drives flow control and commits, and emits a
heartbeat per event for the probe behind the sinks (``commit_probe``).
"""

from __future__ import annotations

import uuid

import apache_beam as beam
from apache_beam.transforms import window

from beamstream.runners.direct.feed import BatchCoder, FeedFactory, ProgressMarker
from beamstream.runners.direct.feed_process import _FEEDS, _FeedProcess

HEARTBEAT_TAG = "progress"


class _AckAndUnwrap(beam.DoFn):
    """Acknowledges each event to the feed and passes its value on.

    Once per event it also emits a heartbeat, timestamped at the event's
    newest event time, for the progress probe behind the sinks.
    """

    def __init__(self, feed_id: str):
        self._feed_id = feed_id
        self._feed: _FeedProcess | None = None
        self._last_seq = 0

    def setup(self):
        self._feed = _FEEDS.get(self._feed_id)

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        seq, value = element
        if isinstance(value, ProgressMarker):
            if self._feed is not None:
                self._feed.ack(seq)
            yield beam.pvalue.TaggedOutput(
                HEARTBEAT_TAG, window.TimestampedValue(("", seq), timestamp)
            )
            return
        if seq != self._last_seq:
            self._last_seq = seq
            if self._feed is not None:
                self._feed.ack(seq)
            times = getattr(value, "event_times_us", None)
            newest = max((t for t in times if t is not None), default=None) if times else None
            yield beam.pvalue.TaggedOutput(
                HEARTBEAT_TAG,
                window.TimestampedValue(
                    ("", seq), newest / 1e6 if newest is not None else timestamp
                ),
            )
        yield value


class ReadLiveFeed(beam.PTransform):
    """Streams a feed into the local streaming DirectRunner through TestStream.

    Only for the DirectRunner: the feed process lives beside the pipeline.
    After expansion, ``heartbeats`` and ``feed_id`` let ``CommitAfterWrites``
    report sink progress back to the feed.
    """

    def __init__(self, factory: FeedFactory, max_in_flight: int = 8):
        super().__init__()
        self._factory = factory
        self._max_in_flight = max_in_flight
        self.feed_id: str | None = None
        self.heartbeats: beam.PCollection | None = None

    def expand(self, pbegin):
        from apache_beam.testing.test_stream import TestStream

        self.feed_id = uuid.uuid4().hex
        process = _FeedProcess(self._factory, self._max_in_flight)
        _FEEDS[self.feed_id] = process
        outputs = (
            pbegin
            | "LiveFeed" >> TestStream(coder=BatchCoder(), endpoint=process.endpoint)
            | "Ack" >> beam.ParDo(_AckAndUnwrap(self.feed_id)).with_outputs(
                HEARTBEAT_TAG, main="records"
            )
        )
        self.heartbeats = outputs[HEARTBEAT_TAG]
        return outputs.records
