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


def is_too_late(event_us: int, size_us: int, allowed_lateness_us: int, watermark_us: int) -> bool:
    """True when the fixed window holding ``event_us`` closed before ``watermark_us``."""
    end = window_start(event_us, size_us) + size_us
    return end - 1 + allowed_lateness_us < watermark_us
