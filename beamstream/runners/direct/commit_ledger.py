"""Which Kafka offsets a streaming read may commit without losing a result.

Committing offset ``o`` promises that a restart never needs the records before
``o`` again. That holds only when every record before ``o`` lies in a window
whose results are written for good: its end plus the allowed lateness is
behind the *sink watermark* (the event time up to which the sinks have written
everything). A restart then resumes from ``o`` with that watermark, so no
window is recomputed from part of its records: windows final at that
watermark receive re-read records as too late (dead letters, the one place
duplicates appear), all other windows are rebuilt from all of their records.

``feed_core`` decides when a read batch is safe (taken in and final; without
a probe behind the sinks, taken in). Offsets, though, are one position per
partition: ``CommitLedger`` commits a partition only up to its first batch
that is not safe yet, however many later ones are.

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

Partition = tuple[str, int]


@dataclass
class LedgerEntry:
    """One read batch of a partition: its offsets, and whether it is safe yet."""

    partition: Partition
    first_offset: int
    next_offset: int
    safe: bool = False


class CommitLedger:
    """Read batches per partition, in offset order, until they may be committed."""

    def __init__(self) -> None:
        self._entries: dict[Partition, deque[LedgerEntry]] = {}
        self._committed: dict[Partition, int] = {}

    def record(self, batch: MessageBatch) -> LedgerEntry:
        """Holds a batch just read (batches of a partition come in offset order)."""
        partition = (batch.source, batch.partition)
        entry = LedgerEntry(partition, batch.offsets[0], batch.offsets[-1] + 1)
        self._entries.setdefault(partition, deque()).append(entry)
        return entry

    def release(self, entry: LedgerEntry) -> None:
        """The batch is safe: nothing of it is needed after a restart."""
        entry.safe = True

    def safe_offsets(self) -> dict[Partition, int]:
        """Offsets that became committable since the last call (next offset to read)."""
        result: dict[Partition, int] = {}
        for partition, entries in self._entries.items():
            offset = None
            while entries and entries[0].safe:
                offset = entries.popleft().next_offset
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
