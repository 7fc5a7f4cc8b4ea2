"""Which offsets a streaming read may commit without losing a result.

Committing offset ``o`` promises that a restart never needs the records before
``o`` again. That holds only when every record before ``o`` lies in a window
whose results are written for good: its end plus the allowed lateness is
behind the *sink watermark* (the event time up to which the sinks have written
everything). A restart then resumes from ``o`` with that watermark, so no
window is recomputed from part of its records: windows final at that
watermark receive re-read records as too late (dead letters, the one place
duplicates appear), all other windows are rebuilt from all of their records.

Without a probe behind the sinks there is no sink watermark, and the ledger
falls back to committing what the pipeline has taken in.

The probe learns the sink watermark from heartbeats, which carry the event
times of records. Those never reach the end of the newest window plus its
lateness, so after a backlog (or whenever data pauses) nothing would become
safe: a feed sends a progress marker at the watermark it announced once that
watermark has passed a pending finality (``MarkerSchedule``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from beamstream.io.elements import NO_WATERMARK, MessageBatch
from beamstream.runners.direct.finality import Finality

Partition = tuple[str, int]


@dataclass(frozen=True)
class _Entry:
    seq: int
    first_offset: int
    next_offset: int
    final_at_us: int  # sink watermark from which all of its records are final


class CommitLedger:
    """Read batches per partition, in offset order, until they are safe to commit."""

    def __init__(self, finality: Finality | None = None):
        self._finality = finality or Finality()
        self._entries: dict[Partition, deque[_Entry]] = {}
        self._committed: dict[Partition, int] = {}

    def final_at(self, event_us: int) -> int:
        return self._finality.final_at(event_us)

    def record(self, seq: int, batch: MessageBatch) -> None:
        known = [t for t in (batch.event_times_us or ()) if t is not None]
        newest = max(known) if known else batch.watermark_us
        entry = _Entry(seq, batch.offsets[0], batch.offsets[-1] + 1, self.final_at(newest))
        self._entries.setdefault((batch.source, batch.partition), deque()).append(entry)

    def oldest_final_at(self) -> int | None:
        """The earliest sink watermark at which some recorded batch becomes safe."""
        return min(
            (e.final_at_us for entries in self._entries.values() for e in entries), default=None
        )

    def safe_offsets(self, acked: int, sink_watermark: int | None) -> dict[Partition, int]:
        """Offsets that became safe since the last call (next offset to read)."""
        result: dict[Partition, int] = {}
        for partition, entries in self._entries.items():
            offset = None
            while entries:
                entry = entries[0]
                if entry.seq > acked:
                    break
                if sink_watermark is not None and entry.final_at_us > sink_watermark:
                    break
                offset = entry.next_offset
                entries.popleft()
            if entries and offset is not None:
                offset = min(offset, entries[0].first_offset)
            if offset is not None and offset > self._committed.get(partition, -1):
                self._committed[partition] = offset
                result[partition] = offset
        return result


class MarkerSchedule:
    """When a feed should send a progress marker to move the sink watermark on.

    A marker at the announced watermark ``W`` comes back as sink watermark
    ``W`` once everything before ``W`` is written. It is due when ``W`` has
    passed the finality of something still held and no marker already sent
    will cover it. Without a probe (``sink is None``) nothing waits on it.
    """

    def __init__(self) -> None:
        self._sent_at: int | None = None

    def due(self, announced: int, sink: int | None, pending_final_at: int | None) -> bool:
        if sink is None or pending_final_at is None or announced == NO_WATERMARK:
            return False
        if pending_final_at > announced or sink >= pending_final_at:
            return False
        if self._sent_at is not None and sink < self._sent_at and self._sent_at >= pending_final_at:
            return False  # the marker in flight covers it
        self._sent_at = announced
        return True
