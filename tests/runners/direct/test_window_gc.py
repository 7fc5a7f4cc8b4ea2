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


def _deliver(driver, state, watermark) -> list:
    """Fires due timers as the streaming DirectRunner does: the driver clears what it handles."""
    outputs = []
    fired, _ = state.get_timers(clear=False, watermark=watermark)
    for window_id, (name, domain, stamp, _tag) in fired:
        outputs += _panes(driver.process_timer(window_id, name, domain, stamp, state, watermark))
    return outputs


def test_a_window_alone_under_its_key_is_collected_by_its_timer():
    # One key per window: nothing steps the key once its window has fired, so
    # only the collection timer at end + allowed lateness can empty it.
    from beamstream.runners.direct.window_gc import GC_TIMER, is_empty

    driver = _CollectingDriver(trigger.create_trigger_driver(_windowing()))
    state = trigger.InMemoryUnmergedState()
    start = Timestamp(seconds=0)
    outputs = _panes(driver.process_elements(state, [_one_value_in(10)], start, start))
    armed = [key for timers in state.timers.values() for key in timers if key[0] == GC_TIMER]
    assert len(armed) == 1
    outputs += _deliver(driver, state, Timestamp(seconds=11))  # the window's end: ON_TIME
    on_time = beam.utils.windowed_value.PaneInfoTiming.ON_TIME
    assert [timing for _, _, timing in outputs] == [on_time]
    assert not is_empty(state)  # late data may still come
    outputs += _deliver(driver, state, Timestamp(seconds=11 + LATENESS_S))
    assert not is_empty(state)  # a value exactly at end + lateness is still taken
    assert _deliver(driver, state, Timestamp(seconds=12 + LATENESS_S)) == []
    assert is_empty(state)
    assert state.get_timers(watermark=Timestamp(seconds=10**6))[0] == []  # nothing fires again


def test_a_key_per_window_leaves_no_keyed_state_behind_on_the_streaming_direct_runner():
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.testing.util import assert_that, equal_to

    from beamstream.runners.direct import window_gc

    assert window_gc.install()
    seconds = 60
    stream = TestStream()
    for t in range(seconds):
        stream = stream.add_elements([window.TimestampedValue((t, 1), t + 0.5)] * 3)
        stream = stream.advance_watermark_to(t + 1)
    stream = stream.advance_watermark_to_infinity()
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True, runner="DirectRunner"))
    sums = (
        pipeline
        | stream
        | beam.WindowInto(
            window.FixedWindows(1),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=Duration(seconds=LATENESS_S),
        )
        | beam.CombinePerKey(sum)
    )
    assert_that(sums, equal_to([(t, 3) for t in range(seconds)]))
    result = pipeline.run()
    result.wait_until_finish()
    keyed = result._evaluation_context._transform_keyed_states  # noqa: SLF001
    left = {
        applied.full_label: len(states)
        for applied, states in keyed.items()
        if type(applied.transform).__name__ == "_StreamingGroupAlsoByWindow"
    }
    assert left and all(n == 0 for n in left.values()), left
