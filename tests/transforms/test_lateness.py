"""earliest_open_start must agree with Beam's closing rule at every boundary."""

from __future__ import annotations

import itertools

from beamstream.transforms.lateness import earliest_open_start, window_start


def _closed_by_beams_rule(start: int, size: int, lateness: int, watermark: int) -> bool:
    return start + size - 1 + lateness < watermark  # end - 1µs + lateness < watermark


def test_a_window_is_open_exactly_when_its_start_is_not_before_the_earliest_open_start():
    size = 1_000
    for lateness, watermark in itertools.product((0, 1, 999, 2_500), range(-3_000, 6_000, 7)):
        cutoff = earliest_open_start(size, lateness, watermark)
        for event in range(watermark - 5_000, watermark + 2_000, 13):
            start = window_start(event, size)
            closed = _closed_by_beams_rule(start, size, lateness, watermark)
            assert (start < cutoff) == closed, (event, lateness, watermark)
