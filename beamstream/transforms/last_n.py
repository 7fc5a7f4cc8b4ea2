"""The last N records per key by event time, kept in state with bounded memory.

``LastN`` is a stateful DoFn over ``(key, MetricRecord)`` in the global
window. Per key it keeps at most N records, the N latest by event time (ties
broken by series and value, so the result does not depend on arrival order):
a record older than all N kept ones is ignored, whenever it arrives. Memory
per key is N records.

It emits ``{"key", "name", "labels", "records": [...oldest..newest], "as_of"}``
when the kept records changed, once the watermark has passed the newest of
them (an event-time timer): in a batch run that is once per key, at the end;
in a streaming run after each change, as the watermark moves. ``as_of`` is the
event time (µs) of the newest kept record; each record is
``{"timestamp" (µs), "value", "labels"}`` with the record's full labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.coders import BooleanCoder, PickleCoder
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from beamstream.transforms.prometheus_records import MetricRecord, split_series

# (timestamp_us, series, value, labels): sorts by event time, then deterministically.
Kept = tuple[int, str, float, dict[str, str]]


def keep_last(kept: list[Kept], record: Kept, n: int) -> list[Kept] | None:
    """``kept`` with ``record`` added, trimmed to the last ``n``; None if unchanged."""
    order = _order(record)
    if any(_order(item) == order for item in kept):
        return None
    if len(kept) >= n and order <= _order(kept[0]):
        return None
    updated = sorted([*kept, record], key=_order)
    return updated[-n:]


def _order(item: Kept) -> tuple[int, str, bool, float]:
    nan = math.isnan(item[2])  # NaN never equals itself: order it explicitly
    return item[0], item[1], nan, 0.0 if nan else item[2]


class LastN(beam.DoFn):
    """Keeps the last ``n`` records per key; emits them when they changed (see module doc)."""

    KEPT = ReadModifyWriteStateSpec("kept", PickleCoder())
    CHANGED = ReadModifyWriteStateSpec("changed", BooleanCoder())
    EMIT = TimerSpec("emit", beam.TimeDomain.WATERMARK)

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("last N needs N >= 1")
        self._n = n

    def process(
        self,
        element: tuple[str, MetricRecord | list[MetricRecord]],
        kept_state=beam.DoFn.StateParam(KEPT),
        changed_state=beam.DoFn.StateParam(CHANGED),
        emit=beam.DoFn.TimerParam(EMIT),
    ) -> None:
        _, records = element
        if isinstance(records, MetricRecord):
            records = [records]
        kept: list[Kept] = kept_state.read() or []
        changed = False
        for record in records:
            item: Kept = (record.timestamp_us, record.series, record.value, record.labels)
            updated = keep_last(kept, item, self._n)
            if updated is not None:
                kept, changed = updated, True
        if not changed:
            return
        kept_state.write(kept)
        changed_state.write(True)
        emit.set(Timestamp(micros=kept[-1][0]))

    @on_timer(EMIT)
    def on_emit(
        self,
        key=beam.DoFn.KeyParam,
        kept_state=beam.DoFn.StateParam(KEPT),
        changed_state=beam.DoFn.StateParam(CHANGED),
    ) -> Iterable[dict[str, Any]]:
        if not changed_state.read():
            return
        changed_state.clear()
        kept: list[Kept] = kept_state.read() or []
        name, labels = split_series(key)
        yield {
            "key": key,
            "name": name,
            "labels": labels,
            "records": [
                {"timestamp": t, "value": value, "labels": full_labels}
                for t, _, value, full_labels in kept
            ],
            "as_of": kept[-1][0],
        }


class KeepLastN(beam.PTransform):
    """``(key, MetricRecord)`` or ``(key, [MetricRecord, ...])`` → the last-N sets per key."""

    def __init__(self, n: int):
        super().__init__()
        self._n = n

    def expand(self, keyed):
        # A str key: deterministic coding, which state needs.
        last_n = beam.ParDo(LastN(self._n)).with_input_types(beam.typehints.Tuple[str, Any])
        return keyed | "LastN" >> last_n
