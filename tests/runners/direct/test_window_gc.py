"""Expired windows leave the streaming DirectRunner's GroupByKey state; results do not change."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.transforms.core import Windowing
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from beamstream.runners.direct.window_gc import _CollectingDriver

LATENESS_S = 5


def _windowing() -> Windowing:
    return Windowing(
        window.FixedWindows(1),
        triggerfn=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=Duration(seconds=LATENESS_S),
    )


def _panes(outputs) -> list:
    return [(o.windows, o.value, o.pane_info.timing) for o in outputs]


def _one_value_in(second: int) -> WindowedValue:
    return WindowedValue(1, Timestamp(seconds=second), [window.IntervalWindow(second, second + 1)])


def _run(collect: bool, seconds: int = 200) -> tuple[list, list[int]]:
    """Feeds one value per second (plus a late one now and then), as the runner would."""
    driver = trigger.create_trigger_driver(_windowing())
    if collect:
        driver = _CollectingDriver(driver)
    state = trigger.InMemoryUnmergedState()
    outputs, sizes = [], []
    for t in range(seconds):
        watermark = Timestamp(seconds=t - 2)  # two seconds of out-of-orderness
        values = [_one_value_in(t)]
        if t % 7 == 0 and t >= 4:
            values.append(_one_value_in(t - 4))  # late, within the allowed lateness
        outputs += _panes(driver.process_elements(state, values, watermark, watermark))
        fired, _ = state.get_timers(clear=True, watermark=watermark)
        for window_id, (name, domain, stamp, _tag) in fired:
            outputs += _panes(
                driver.process_timer(window_id, name, domain, stamp, state, watermark)
            )
        sizes.append(len(state.state))
    return outputs, sizes


def test_collected_state_stays_bounded_and_panes_are_identical():
    kept_outputs, kept_sizes = _run(collect=False)
    outputs, sizes = _run(collect=True)
    assert outputs == kept_outputs
    assert any(timing == beam.utils.windowed_value.PaneInfoTiming.LATE for _, _, timing in outputs)
    assert kept_sizes[-1] >= 190  # Beam's driver keeps every window it has seen
    assert max(sizes) <= LATENESS_S + 4  # only windows that can still change
