"""How a source stamps event time on what it reads, and how far it trusts order.

Sources need event time before any pipeline step runs, because the watermark
they announce is derived from it. The policy is small and picklable so it can
travel to a reader in another process or on a remote worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from beamstream import payload_json
from beamstream.event_time import EventTimeError, event_time_fields, event_time_us, parse_time


@dataclass(frozen=True)
class EventTimePolicy:
    """``field=None`` uses the broker timestamp; otherwise a JSON payload field."""

    field: str | None = None
    time_format: str = "auto"
    max_out_of_orderness_s: float = 2.0
    idle_timeout_s: float = 5.0

    def of_payload(self, value: bytes, broker_timestamp_ms: int | None) -> int | None:
        """Event time in micros, or None when the payload has no usable time.

        Records without a time are still delivered (the parsing step sends them
        to the dead-letter sink); they just do not move the watermark.
        """
        if self.field is None:
            return None if broker_timestamp_ms is None else broker_timestamp_ms * 1000
        try:
            record = payload_json.loads(value)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        try:
            return event_time_us(record, self.field, self.time_format)
        except EventTimeError:
            return None

    def of_payloads(
        self, values: Sequence[bytes], broker_timestamps_ms: Sequence[int | None]
    ) -> list[int | None]:
        """``of_payload`` of each record of a batch, with the per-record work kept minimal.

        A live feed runs this on every record it reads: the field lookup is
        decided once per batch, and JSON numbers go straight to ``parse_time``.
        """
        if self.field is None:
            return [None if ms is None else ms * 1000 for ms in broker_timestamps_ms]
        fields = event_time_fields(self.field)
        time_format = self.time_format
        loads = payload_json.loads
        out: list[int | None] = []
        append = out.append
        for value in values:
            try:
                record = loads(value)
            except (ValueError, UnicodeDecodeError, RecursionError):
                append(None)
                continue
            if type(record) is not dict:
                append(None)
                continue
            for name in fields:
                if name in record:
                    try:
                        append(parse_time(record[name], time_format))
                    except EventTimeError:
                        append(None)
                    break
            else:
                append(None)
        return out
