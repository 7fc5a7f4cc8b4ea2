"""Synthetic frames: realistic disorder, gaps and invalid lines, reproducible by seed.

Used to make the bundled demo sample (``beamstream/data/frames_sample.jsonl``)
and the million-frame benchmark inputs, and by tests as an input generator.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

START = 1_700_000_000  # 2023-11-14T22:13:20Z


def frames(
    count: int,
    per_second: int = 1000,
    users: int = 5000,
    disorder_s: float = 2.0,
    invalid_every: int = 0,
    gaps: tuple[tuple[int, int], ...] = (),
    mixed_formats: bool = False,
    seed: int = 7,
) -> Iterator[str]:
    """JSON lines of frames spread at ``per_second``, shuffled up to ``disorder_s`` back."""
    rng = random.Random(seed)
    emitted = 0
    i = 0
    while emitted < count:
        t = START + i / per_second
        i += 1
        second = int(t - START)
        if any(a <= second < b for a, b in gaps):
            continue
        emitted += 1
        if invalid_every and emitted % invalid_every == 0:
            yield rng.choice(
                [
                    '{"uid": "u1"}',
                    "not json",
                    '{"timestamp": "yesterday", "uid": "u2"}',
                    f'{{"timestamp": {t:.3f}, "uid": ""}}',
                    "[1, 2, 3]",
                ]
            )
            continue
        if disorder_s and rng.random() < 0.1:
            t -= rng.random() * disorder_s
        uid = f"user-{rng.randrange(users)}"
        stamp: float | int | str = round(t, 3)
        if mixed_formats:
            kind = emitted % 3
            if kind == 1:
                stamp = int(round(t * 1000))
            elif kind == 2:
                from datetime import datetime, timezone

                stamp = (
                    datetime.fromtimestamp(t, tz=timezone.utc)
                    .isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z")
                )
        yield json.dumps({"timestamp": stamp, "uid": uid}, separators=(",", ":"))


def write(path: str, lines: Iterator[str]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            n += 1
    return n


if __name__ == "__main__":
    n = write(
        "beamstream/data/frames_sample.jsonl",
        frames(
            30_000,
            per_second=50,
            users=400,
            disorder_s=3.0,
            invalid_every=997,
            gaps=((120, 127), (400, 402)),
            mixed_formats=True,
        ),
    )
    print(f"wrote {n} lines to beamstream/data/frames_sample.jsonl")
