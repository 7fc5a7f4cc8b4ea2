"""The probe behind the sinks: tells a live feed how far the sinks have written.

``CommitAfterWrites`` puts an event-time timer after a pipeline's sinks; it
fires once the sinks' output watermark has passed a time, and reports that
*sink watermark* to the feed, which then knows which windows are written for
good (and which offsets it may commit).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders.coders import VarIntCoder
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from beamstream.runners.direct.feed_process import _FEEDS


class _ReportSinkWatermark(beam.DoFn):
    """A watermark timer behind the sinks: when it fires at T, every result up to T is written.

    At most one timer is pending, so a steady stream of heartbeats cannot keep
    pushing it ahead of the watermark.
    """

    PENDING = ReadModifyWriteStateSpec("pending", VarIntCoder())
    LATEST = ReadModifyWriteStateSpec("latest", VarIntCoder())
    FIRE = TimerSpec("fire", TimeDomain.WATERMARK)

    def __init__(self, feed_ids: list[str]):
        self._feed_ids = feed_ids

    def setup(self):
        self._feeds = [_FEEDS[f] for f in self._feed_ids if f in _FEEDS]
        for feed in self._feeds:
            feed.attach_probe()

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        latest=beam.DoFn.StateParam(LATEST),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        if pending.read() is None:
            pending.write(timestamp.micros)
            fire.set(timestamp)
        elif timestamp.micros > (latest.read() or timestamp.micros - 1):
            latest.write(timestamp.micros)  # re-armed there when the pending one fires

    @on_timer(FIRE)
    def fired(
        self,
        timestamp=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        latest=beam.DoFn.StateParam(LATEST),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        for feed in self._feeds:
            feed.report_sink_watermark(timestamp.micros)
        later = latest.read()
        latest.clear()
        if later is not None and later > timestamp.micros:
            pending.write(later)
            fire.set(Timestamp(micros=later))
        else:
            pending.clear()
        return []


class CommitAfterWrites(beam.PTransform):
    """Tells the live feeds of ``heartbeats`` how far the given writes have got.

    ``written`` are the PCollections sinks return; their output watermark moves
    only once everything before it has been written.
    """

    def __init__(self, feed_ids: list[str]):
        super().__init__()
        self._feed_ids = feed_ids

    def expand(self, pcolls):
        global_windows = [
            pcoll | f"Global{i}" >> beam.WindowInto(window.GlobalWindows())
            for i, pcoll in enumerate(pcolls)
        ]
        keyed = (
            global_windows
            | "Progress" >> beam.Flatten()
            | "Key" >> beam.Map(lambda _: ("", 0)).with_output_types(tuple[str, int])
        )
        return keyed | "ReportSinkWatermark" >> beam.ParDo(_ReportSinkWatermark(self._feed_ids))
