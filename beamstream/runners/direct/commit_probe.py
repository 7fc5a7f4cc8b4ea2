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

from beamstream.runners.direct.feed import _SINK_WATERMARK
from beamstream.runners.direct.slots import FeedSlots


class _ReportSinkWatermark(beam.DoFn):
    """A watermark timer behind the sinks: when it fires at T, every result up to T is written.

    At most one timer is pending, so a steady stream of heartbeats cannot keep
    pushing it ahead of the watermark.
    """

    PENDING = ReadModifyWriteStateSpec("pending", VarIntCoder())
    LATEST = ReadModifyWriteStateSpec("latest", VarIntCoder())
    FIRE = TimerSpec("fire", TimeDomain.WATERMARK)

    def __init__(self, slots_paths: list[str]):
        self._slots_paths = slots_paths
        self._feeds: list[FeedSlots] = []

    def setup(self):
        # The feeds know of this probe already (``live_reads.prepare`` said so
        # before the run started, so no commit precedes this setup).
        self._feeds = [FeedSlots(path) for path in self._slots_paths]

    def teardown(self):
        for slots in self._feeds:
            slots.close()
        self._feeds = []

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
        for slots in self._feeds:
            slots.raise_to(_SINK_WATERMARK, timestamp.micros)
        later = latest.read()
        latest.clear()
        if later is not None and later > timestamp.micros:
            pending.write(later)
            fire.set(Timestamp(micros=later))
        else:
            pending.clear()
        return []


class CommitAfterWrites(beam.PTransform):
    """Tells live feeds how far the given writes have got.

    Applied to (the feed's heartbeats, *what the sinks return*): the sinks'
    output watermark moves only once everything before it has been written.
    ``slots_paths``: the progress slots of the feeds to tell.
    """

    def __init__(self, slots_paths: list[str]):
        super().__init__()
        self._slots_paths = slots_paths

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
        return keyed | "ReportSinkWatermark" >> beam.ParDo(_ReportSinkWatermark(self._slots_paths))
