"""trigger_state: one no-extraction CombineFn per CombineFn, with Beam's behaviour."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import combiners, trigger, window

from beamstream.runners import trigger_state


def _no_extraction(tag):
    return tag.without_extraction().combine_fn


def test_beam_builds_a_class_per_call_and_the_cache_builds_one_per_combine_fn() -> None:
    count = trigger._CombiningValueStateTag("count", combiners.CountCombineFn())
    assert trigger_state.install()
    beams = trigger._CombiningValueStateTag.without_extraction.__wrapped__
    assert type(beams(count).combine_fn) is not type(beams(count).combine_fn)  # the cost
    assert trigger_state.install()  # idempotent
    first, second = _no_extraction(count), _no_extraction(count)
    assert first is second
    assert count.without_extraction().tag == "count"
    # Beam's behaviour: the CombineFn's accumulation, without the extraction.
    acc = first.add_input(first.add_input(first.create_accumulator(), "a"), "b")
    assert first.extract_output(acc) == 2 == count.combine_fn.extract_output(acc)
    # Prefixed tags (nested triggers) share the entry; another CombineFn has its own.
    assert _no_extraction(count.with_prefix("late")) is first
    total = trigger._CombiningValueStateTag("sum", sum)
    assert _no_extraction(total) is not first
    adding = _no_extraction(total)
    parts = [adding.add_input(adding.create_accumulator(), v) for v in (5, 7)]
    assert total.combine_fn.extract_output(adding.merge_accumulators(parts)) == 12


def test_late_panes_are_the_same_with_the_cache() -> None:
    """An AfterWatermark(late=AfterCount(1)) trigger, the one whose state is cached."""
    assert trigger_state.install()
    stream = (
        TestStream()
        .add_elements([window.TimestampedValue(("k", 1), 1)])
        .advance_watermark_to(20)
        .add_elements([window.TimestampedValue(("k", 2), 2)])
        .advance_watermark_to(21)
        .add_elements([window.TimestampedValue(("k", 3), 3)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        sums = (
            p
            | stream
            | beam.WindowInto(
                window.FixedWindows(10),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=60,
            )
            | beam.CombinePerKey(sum)
            | beam.Values()
        )
        assert_that(sums, equal_to([1, 3, 6]))
