"""An independent, plain-Python frames computation to check pipelines against.

Deliberately shares no code with beamstream: its own JSON handling, time
parsing and windowing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime


def _event_seconds(raw) -> float | None:
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float)):
        return raw / 1000.0 if raw > 1e11 else float(raw)
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def reference(lines: list[str]) -> tuple[dict[int, int], dict[int, int], int]:
    """(frames per second, unique users per minute, invalid count) for batch input."""
    seconds: dict[int, int] = defaultdict(int)
    minutes: dict[int, set] = defaultdict(set)
    invalid = 0
    for line in lines:
        try:
            frame = json.loads(line)
        except ValueError:
            invalid += 1
            continue
        if not isinstance(frame, dict) or not frame.get("uid"):
            invalid += 1
            continue
        t = _event_seconds(frame.get("timestamp", frame.get("ts")))
        if t is None:
            invalid += 1
            continue
        # floor to whole micros first, as event times are integer micros
        micros = int(round(t * 1_000_000))
        seconds[micros // 1_000_000] += 1
        minutes[micros // 60_000_000 * 60].add(str(frame["uid"]))
    return dict(seconds), {m: len(u) for m, u in minutes.items()}, invalid
