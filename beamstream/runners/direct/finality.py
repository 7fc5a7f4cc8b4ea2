"""When a record's results are final, derived from the pipeline's windowing.

A local streaming read may commit a record only once every window it falls
in is written for good: the end of the last such window plus that window's
allowed lateness, reached by the sink watermark. ``Finality`` computes that
from the ``WindowFn``s and allowed lateness of the pipeline's ``WindowInto``
steps, so no pipeline writes its commit horizon by hand (and none can get
it wrong when its windowing changes).

A composite that windows its elements in its own way declares the windows its
results belong to as ``RESULTS_WINDOWING`` (``WindowedMetricStats`` sends
folded sliding windows through fixed slots): its inner ``WindowInto`` steps
alone would say its results are final too early.

Steps into the global window are not aggregation horizons (re-windowing dead
letters or formatted results for the sinks); a pipeline with no other window
has per-record results, final once written.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
from apache_beam.pipeline import PipelineVisitor
from apache_beam.transforms.window import GlobalWindows, WindowFn
from apache_beam.utils.timestamp import Timestamp

from beamstream.io.elements import NO_WATERMARK

RESULTS_WINDOWING = "results_windowing"  # attribute: (WindowFn, allowed lateness in micros)


class Finality:
    """``final_at(t)``: the sink watermark from which results of a record at ``t`` are final."""

    def __init__(self, windowings: Iterable[tuple[WindowFn, int]] = ()):
        """``windowings``: (window function, allowed lateness in micros) of each aggregation."""
        self._windowings = tuple(
            (fn, lateness) for fn, lateness in windowings if not isinstance(fn, GlobalWindows)
        )

    @classmethod
    def of_pipeline(cls, pipeline: beam.Pipeline) -> Finality:
        """From every ``WindowInto`` and ``RESULTS_WINDOWING`` of ``pipeline`` (the latest wins)."""
        found: list[tuple[WindowFn, int]] = []

        class _Windows(PipelineVisitor):
            def enter_composite_transform(self, node) -> None:
                self.visit_transform(node)

            def visit_transform(self, node) -> None:
                declared = getattr(node.transform, RESULTS_WINDOWING, None)
                if declared is not None:
                    found.append(declared)
                windowing = getattr(node.transform, "windowing", None)
                if isinstance(node.transform, beam.WindowInto) and windowing is not None:
                    found.append((windowing.windowfn, windowing.allowed_lateness.micros))

        pipeline.visit(_Windows())
        return cls(found)

    @property
    def windowed(self) -> bool:
        return bool(self._windowings)

    def final_at(self, event_us: int) -> int:
        """End of the last window ``event_us`` falls in plus its lateness (``event_us`` if none)."""
        if event_us == NO_WATERMARK:
            return event_us
        final = event_us
        context = WindowFn.AssignContext(Timestamp(micros=event_us))
        for windowfn, lateness_us in self._windowings:
            ends = [w.end.micros for w in windowfn.assign(context)]
            if ends:
                final = max(final, max(ends) + lateness_us)
        return final

    def __repr__(self) -> str:
        return f"Finality({list(self._windowings)})"
