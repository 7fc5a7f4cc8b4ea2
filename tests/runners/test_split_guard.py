"""The SDK harness's split request survives a bundle whose read progress is NaN.

The first test shows the cause on the installed Beam with its own counter
classes; the others show that Beam's split fails on it and the guard does not.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from apache_beam.coders import coders
from apache_beam.runners.worker import bundle_processor, opcounters
from apache_beam.utils import counters
from apache_beam.utils.windowed_value import WindowedValue

from beamstream.runners import split_guard

NAN = float("nan")


def _beams_compute_split():
    split = bundle_processor.DataInputOperation._compute_split  # noqa: SLF001
    return getattr(split, "__wrapped__", split)


def test_a_reset_bundle_counts_elements_without_a_size():
    """Counters reset per bundle, the sampler does not: a later bundle's mean size is NaN."""
    factory = counters.CounterFactory()
    out = opcounters.OperationCounters(
        factory, "read", coders.WindowedValueCoder(coders.BytesCoder()), 0)
    for _ in range(1000):  # one long bundle: the sampler spaces its samples out
        value = WindowedValue(b"frame", 0, ())
        out.update_from(value)
        out.update_collect()
    factory.reset()  # BundleProcessor.reset() before the next bundle
    out.restart_sampling()  # SdfProcessSizedElements.process() for its element
    for _ in range(5):
        out.update_from(WindowedValue(b"frame", 0, ()))
        out.update_collect()
    assert out.element_counter.value() == 5
    # ConsumerSet.total_output_bytes() multiplies the two.
    assert math.isnan(out.element_counter.value() * out.mean_byte_counter.value()[0])


def test_beams_split_fails_on_nan_progress():
    with pytest.raises(ValueError, match="NaN"):
        _beams_compute_split()(0, NAN, float("inf"), 0.5, 1)


def test_guarded_split_takes_nan_progress_as_unknown():
    assert split_guard.install()
    split = bundle_processor.DataInputOperation._compute_split  # noqa: SLF001
    asked: list[tuple[str, float]] = []

    def try_split(by: str):
        def split_element(fraction: float):
            asked.append((by, fraction))
            return (["primary"], ["residual"])

        return split_element

    assert split(0, NAN, float("inf"), 0.5, 1, (), try_split("guard")) == (
        -1, ["primary"], ["residual"], 1)
    # Beam's own choice for an element without progress (0.5 of it done).
    _beams_compute_split()(0, 0.5, float("inf"), 0.5, 1, (), try_split("beam"))
    assert asked == [("guard", 0.5), ("beam", 0.5)]
    # Known progress is passed through unchanged.
    assert split(0, 0.2, 10, 0.5, 10) == _beams_compute_split()(0, 0.2, 10, 0.5, 10)


def test_install_is_idempotent():
    assert split_guard.install()
    first = bundle_processor.DataInputOperation._compute_split  # noqa: SLF001
    assert split_guard.install()
    assert bundle_processor.DataInputOperation._compute_split is first  # noqa: SLF001


def test_an_sdk_harness_that_unpickles_the_kafka_source_has_the_guard():
    """Remote workers run none of beamstream's launcher code, only what they import."""
    probe = (
        "import beamstream.io.kafka.source\n"
        "from apache_beam.runners.worker import bundle_processor\n"
        "split = bundle_processor.DataInputOperation._compute_split\n"
        "print(split(0, float('nan'), float('inf'), 0.5, 1, (), lambda f: ('p', 'r')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(-1, 'p', 'r', 1)"
