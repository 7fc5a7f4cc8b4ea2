"""Deciding lateness where the announced watermark is known.

Beam drops data for a window once the watermark passes the window's end plus
the allowed lateness, silently, at the GroupByKey. To send each too-late
record to the dead-letter sink instead, transforms decide it themselves,
against the watermark the source had announced when it read the record
(``Message.watermark_us`` / ``MessageBatch.watermark_us``), with Beam's rule:
a window [start, end) is closed when ``end - 1µs + allowed_lateness < watermark``.
Deciding against the announced watermark makes the outcome deterministic: it
does not depend on how far the runner's watermark has moved by the time a
bundle reaches the GroupByKey.
"""

from __future__ import annotations


def window_start(event_us: int, size_us: int) -> int:
    return event_us - event_us % size_us


def earliest_open_start(size_us: int, allowed_lateness_us: int, watermark_us: int) -> int:
    """The first fixed window start still open at ``watermark_us``.

    A window starting before it is closed: Beam's rule solved for the start,
    so a batch's hot loop compares one integer per window size per record.
    """
    return watermark_us - allowed_lateness_us - size_us + 1
