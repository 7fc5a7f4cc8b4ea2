"""``ReadLiveFeed``: a feed streamed into the local streaming DirectRunner through TestStream.

The first step after the ``TestStream`` acknowledges each event to the feed
(through shared memory), which drives flow control and commits, and emits a
heartbeat per event for the probe behind the sinks (``commit_probe``).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import window

from beamstream.runners.direct.feed import _ACKED, BatchCoder, ProgressMarker
from beamstream.runners.direct.feed_process import FeedProcess
from beamstream.runners.direct.slots import FeedSlots

HEARTBEAT_TAG = "progress"


class _AckAndUnwrap(beam.DoFn):
    """Acknowledges each event to the feed and passes its value on.

    Once per event it also emits a heartbeat, timestamped at the event's
    newest event time, for the progress probe behind the sinks.
    """

    def __init__(self, slots_path: str):
        self._slots_path = slots_path
        self._slots: FeedSlots | None = None
        self._last_seq = 0

    def setup(self):
        self._slots = FeedSlots(self._slots_path)

    def teardown(self):
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    def _ack(self, seq: int) -> None:
        if self._slots is not None:
            self._slots.raise_to(_ACKED, seq)

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        seq, value = element
        if isinstance(value, ProgressMarker):
            self._ack(seq)
            yield beam.pvalue.TaggedOutput(
                HEARTBEAT_TAG, window.TimestampedValue(("", seq), timestamp)
            )
            return
        if seq != self._last_seq:
            self._last_seq = seq
            self._ack(seq)
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
    """Streams a started feed process into the local streaming DirectRunner through TestStream.

    Applied at run time in place of a read (``live_reads``). After expansion,
    ``heartbeats`` feeds the probe behind the sinks (``CommitAfterWrites``).
    """

    def __init__(self, feed: FeedProcess):
        super().__init__()
        self._feed = feed
        self.heartbeats: beam.PCollection | None = None

    def expand(self, pbegin):
        from apache_beam.testing.test_stream import TestStream

        outputs = (
            pbegin
            | "LiveFeed" >> TestStream(coder=BatchCoder(), endpoint=self._feed.endpoint)
            | "Ack"
            >> beam.ParDo(_AckAndUnwrap(self._feed.slots_path)).with_outputs(HEARTBEAT_TAG)
        )
        self.heartbeats = outputs[HEARTBEAT_TAG]
        # The main output's tag is None, as the read it replaces had.
        return outputs[None]
