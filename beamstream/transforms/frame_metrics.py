"""Frames per second and unique users per minute, in event time, fast.

Semantics (the frames pipeline documents them for users):

* Event-time fixed windows of 1 s and 60 s, aligned to the epoch. A window's
  result is emitted when the watermark passes its end (``ON_TIME``); frames
  that arrive later but within ``allowed_lateness`` update it with an
  accumulating ``LATE`` pane. A consumer keeping the last record per
  ``window_start`` has the final answer.
* A frame whose window had already closed (window end + allowed lateness
  behind the watermark the source announced when it read the frame) goes to
  the dead-letter output with the reason, one dead letter per frame. A frame
  too late for its second but not for its minute still counts towards that
  minute's unique users.
* Invalid frames (not JSON, not an object, missing/empty uid, missing or bad
  timestamp) go to the dead-letter output; nothing is dropped silently.

Speed: per-element overhead dominates Beam Python (design.md), so the first
step folds a whole ``MessageBatch`` (thousands of frames) into per-window
partials (counts, user sets) emitted as timestamped values inside their
windows; windowed CombineFns then merge partials. A single ``Message`` is a
batch of one, so both source shapes give the same results.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from beamstream import counters, payload_json
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.event_time import EventTimeError, format_time, parse_time
from beamstream.io.elements import Message, MessageBatch
from beamstream.transforms import hyperloglog
from beamstream.transforms.lateness import earliest_open_start

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
FRAMES_TAG = "frames"
STEP = "frame_metrics"


class InvalidFrame(ValueError):
    """The payload is not a usable frame."""


def parse_frame(value: bytes, field: str, time_format: str) -> tuple[int, str]:
    """(event time in micros, uid) of one frame, or InvalidFrame/EventTimeError."""
    try:
        record = payload_json.loads(value)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise InvalidFrame(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidFrame(f"not a JSON object but {type(record).__name__}")
    uid = record.get("uid")
    if uid is None or uid == "" or isinstance(uid, (dict, list, bool)):
        raise InvalidFrame("missing or empty uid")
    if field in record:
        raw = record[field]
    elif "ts" in record and field == "timestamp":
        raw = record["ts"]
    else:
        raise EventTimeError(f"missing event-time field {field!r}")
    return parse_time(raw, time_format), str(uid)


class FoldFrames(beam.DoFn):
    """Folds a batch of frames into per-second counts and per-minute user sets."""

    def __init__(
        self,
        allowed_lateness_s: float,
        event_time_field: str,
        time_format: str,
        approximate: bool,
        passthrough: bool,
    ):
        self._lateness_us = int(allowed_lateness_s * SECOND_US)
        self._field = event_time_field
        self._format = time_format
        self._approximate = approximate
        self._passthrough = passthrough

    def setup(self):
        self._consumed = counters.counter(counters.MESSAGES_CONSUMED)
        self._late = counters.counter(counters.LATE_RECORDS)
        self._dead = counters.counter(counters.DEAD_LETTERS)

    def process(self, element: MessageBatch | Message) -> Iterable[Any]:
        if isinstance(element, Message):
            element = MessageBatch.of([element], element.watermark_us)
        watermark = element.watermark_us
        lateness = self._lateness_us
        open_second = earliest_open_start(SECOND_US, lateness, watermark)
        open_minute = earliest_open_start(MINUTE_US, lateness, watermark)
        seconds: dict[int, int] = {}
        minutes: dict[int, Any] = {}
        source = element.source
        self._consumed.inc(len(element.values))
        for value, offset in zip(element.values, element.offsets):
            try:
                event_us, uid = parse_frame(value, self._field, self._format)
            except (InvalidFrame, EventTimeError) as exc:
                counters.error_counter(type(exc).__name__).inc()
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG,
                    dead_letter(exc, value, STEP, _where(source, element.partition, offset)),
                )
                continue
            second = event_us - event_us % SECOND_US
            minute = event_us - event_us % MINUTE_US
            late_second = second < open_second
            late_minute = minute < open_minute
            if late_second or late_minute:
                self._late.inc()
                self._dead.inc()
                closed = "per-second and per-minute" if late_minute else "per-second"
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG,
                    dead_letter(
                        f"too late: the {closed} window of event time {event_us / 1e6:.3f} closed "
                        f"(watermark {watermark / 1e6:.3f}, allowed lateness "
                        f"{lateness / 1e6:g}s)",
                        value,
                        STEP,
                        _where(source, element.partition, offset),
                        error_type="LateFrame",
                    ),
                )
            if not late_second:
                seconds[second] = seconds.get(second, 0) + 1
            if not late_minute:
                users = minutes.get(minute)
                if users is None:
                    users = minutes[minute] = hyperloglog.empty() if self._approximate else set()
                if isinstance(users, set):
                    users.add(uid)
                else:
                    hyperloglog.add(users, uid)
            if self._passthrough:
                yield beam.pvalue.TaggedOutput(
                    FRAMES_TAG,
                    window.TimestampedValue(
                        {"timestamp": event_us / 1e6, "uid": uid}, event_us / 1e6
                    ),
                )
        # Keyed by window start: see FrameMetrics on why not one global key.
        for second, count in seconds.items():
            yield beam.pvalue.TaggedOutput(
                "seconds", window.TimestampedValue((second, count), second / 1e6)
            )
        for minute, users in minutes.items():
            yield beam.pvalue.TaggedOutput(
                "minutes", window.TimestampedValue((minute, users), minute / 1e6)
            )


def _where(source: str, partition: int, offset: int) -> str:
    return f"{source}[{partition}]@{offset}" if offset >= 0 else source


class UniqueUsersFn(beam.CombineFn):
    """Union of user sets (exact) or of HyperLogLog sketches (approximate)."""

    def __init__(self, approximate: bool):
        self._approximate = approximate

    def create_accumulator(self):
        return hyperloglog.empty() if self._approximate else set()

    def add_input(self, accumulator, users):
        if self._approximate:
            return hyperloglog.merge(accumulator, users)
        accumulator |= users
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        result = next(accumulators)
        for other in accumulators:
            result = self.add_input(result, other)
        return result

    def extract_output(self, accumulator) -> int:
        if self._approximate:
            return hyperloglog.estimate(accumulator)
        return len(accumulator)


_PANES = {
    PaneInfoTiming.EARLY: "EARLY",
    PaneInfoTiming.ON_TIME: "ON_TIME",
    PaneInfoTiming.LATE: "LATE",
}


class _FormatWindow(beam.DoFn):
    def __init__(self, field: str, output_time_format: str):
        self._field = field
        self._format = output_time_format

    def process(self, keyed, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        _, value = keyed  # the key is the window's start
        # Batch runs fire each window once, with no timing: that is the final,
        # on-time result.
        yield {
            "window_start": format_time(win.start.micros, self._format),
            "window_end": format_time(win.end.micros, self._format),
            self._field: value,
            "pane": _PANES.get(pane.timing, "ON_TIME"),
        }


class _FillGaps(beam.DoFn):
    """Emits zero-count seconds between the first and last second seen.

    Seconds are gathered in state and settled by an event-time timer, so gaps
    are only declared once the watermark says no on-time result can still
    come for them (in batch runs: once, at the end).
    """

    SEEN = BagStateSpec("seen", beam.coders.VarIntCoder())
    LAST = ReadModifyWriteStateSpec("last", beam.coders.VarIntCoder())
    SETTLE = TimerSpec("settle", beam.TimeDomain.WATERMARK)

    def __init__(self, output_time_format: str):
        self._format = output_time_format

    def process(
        self,
        keyed,
        ts=beam.DoFn.TimestampParam,
        seen=beam.DoFn.StateParam(SEEN),
        settle=beam.DoFn.TimerParam(SETTLE),
    ):
        seen.add(keyed[1])
        settle.set(ts + Duration(micros=SECOND_US))

    @on_timer(SETTLE)
    def settle_gaps(self, seen=beam.DoFn.StateParam(SEEN), last=beam.DoFn.StateParam(LAST)):
        seconds = sorted(set(seen.read()))
        seen.clear()
        if not seconds:
            return
        previous = last.read()
        if previous is None:
            previous = seconds[0] - SECOND_US
        for second in seconds:
            for gap in range(previous + SECOND_US, second, SECOND_US):
                yield window.TimestampedValue(
                    {
                        "window_start": format_time(gap, self._format),
                        "window_end": format_time(gap + SECOND_US, self._format),
                        "frames": 0,
                        "pane": "ON_TIME",
                    },
                    gap / 1e6,
                )
            previous = max(previous, second)
        last.write(previous)


def _windowed(size_s: int, allowed_lateness_s: float):
    return beam.WindowInto(
        window.FixedWindows(size_s),
        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=Duration(micros=int(allowed_lateness_s * SECOND_US)),
    )


class FrameMetrics(beam.PTransform):
    """Frames (``MessageBatch`` or ``Message`` elements) → per-second and per-minute results.

    Returns a dict of PCollections: ``per_second``, ``per_minute``,
    ``dead_letters`` and (with ``passthrough``) ``frames``.

    Partials are keyed by their window's start, so each key holds one window:
    under a single global key Beam's trigger driver (``GeneralTriggerDriver``,
    which treats every WindowFn as merging) scans the key's list of windows
    for every timer, quadratic in the windows of a run, and one key cannot
    be spread over worker processes.
    """

    wants_batches = True  # the source shape this transform is fastest with

    def __init__(
        self,
        allowed_lateness_s: float = 30.0,
        event_time_field: str = "timestamp",
        time_format: str = "auto",
        unique_users: str = "exact",
        fill_gaps: bool = False,
        output_time_format: str = "epoch",
        passthrough: bool = False,
    ):
        super().__init__()
        if unique_users not in ("exact", "approximate"):
            raise ValueError(f"unique_users must be exact or approximate, not {unique_users!r}")
        self._lateness = allowed_lateness_s
        self._field = event_time_field
        self._time_format = time_format
        self._approximate = unique_users == "approximate"
        self._fill_gaps = fill_gaps
        self._output_format = output_time_format
        self._passthrough = passthrough

    def expand(self, frames):
        folded = frames | "Fold" >> beam.ParDo(
            FoldFrames(
                self._lateness, self._field, self._time_format, self._approximate, self._passthrough
            )
        ).with_outputs("seconds", "minutes", DEAD_LETTER_TAG, FRAMES_TAG)
        per_second = (
            folded.seconds
            | "Seconds" >> _windowed(1, self._lateness)
            | "SumFrames" >> beam.CombinePerKey(sum)
            | "FormatSeconds" >> beam.ParDo(_FormatWindow("frames", self._output_format))
        )
        if self._fill_gaps:
            zeros = (
                folded.seconds
                | "SecondsSeen"
                >> beam.Map(lambda keyed: ("", keyed[0])).with_output_types(tuple[str, int])
                | "GlobalSeconds" >> beam.WindowInto(window.GlobalWindows())
                | "FillGaps" >> beam.ParDo(_FillGaps(self._output_format))
                | "GapWindows" >> _windowed(1, self._lateness)  # Flatten needs one WindowFn
            )
            per_second = (per_second, zeros) | "WithGaps" >> beam.Flatten()
        per_minute = (
            folded.minutes
            | "Minutes" >> _windowed(60, self._lateness)
            | "UniqueUsers" >> beam.CombinePerKey(UniqueUsersFn(self._approximate))
            | "FormatMinutes" >> beam.ParDo(_FormatWindow("unique_users", self._output_format))
        )
        outputs = {
            "per_second": per_second,
            "per_minute": per_minute,
            "dead_letters": folded[DEAD_LETTER_TAG],
        }
        if self._passthrough:
            outputs["frames"] = folded[FRAMES_TAG]
        return outputs
