"""Counting every bundle's counter updates on the streaming DirectRunner.

Beam 2.77's DirectRunner gives each bundle a fresh ``MetricsContainer``, but
each worker thread's ``StateSampler`` caches a step's scoped states, and with
them the container of the step's *first* bundle on that thread. Later bundles
therefore count into that first container, which was committed when its own
bundle ended, and their updates never reach ``result.metrics()``: a ``Map``
fed by three ``TestStream`` events reported 2 of its 4 records. Streaming runs
run many bundles per step, so ``messages_consumed`` and friends undercounted.

``install()`` wraps ``TransformExecutor.call``: when a bundle runs on a thread
that already holds a cached container for its step, the counter increase of
that container during the bundle is committed as the bundle's own update.
Only counters are carried over (the only metric kind beamstream reports).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

_LOG = logging.getLogger(__name__)
_INSTALLED = False


def _cached_container(state_sampler: Any, step_label: str) -> Any:
    """The container the sampler's cached states of this step count into, if any."""
    from apache_beam.runners.common import NameContext

    step = NameContext(step_label).metrics_name()
    states = getattr(state_sampler, "_states_by_name", None) or {}
    for name, state in states.items():
        if name.step_name == step:
            return state.metrics_container
    return None


def _counter_increase(before: dict, after: dict) -> dict:
    return {
        key: value - before.get(key, 0)
        for key, value in after.items()
        if value != before.get(key, 0)
    }


def counting_every_bundle(original: Callable) -> Callable:
    """``TransformExecutor.call`` that also commits what a stale cached container counted."""
    from apache_beam.metrics.execution import MetricUpdates

    def call(self, state_sampler):
        try:
            label = self._applied_ptransform.full_label
            metrics = self._evaluation_context.metrics()
            bundle = self._input_bundle
        except AttributeError:  # Beam's executor changed: count as Beam does
            return original(self, state_sampler)
        stale = _cached_container(state_sampler, label)
        before = stale.get_cumulative().counters if stale is not None else None
        result = original(self, state_sampler)
        if stale is not None and before is not None:
            increase = _counter_increase(before, stale.get_cumulative().counters)
            if increase:
                update = MetricUpdates(counters=increase)
                metrics.commit_logical(bundle, update)
                metrics.commit_physical(bundle, update)
        return result

    call.__module__ = __name__
    return call


def install() -> bool:
    """Patches the DirectRunner's executor (idempotent); False if Beam differs."""
    global _INSTALLED
    if _INSTALLED:
        return True
    from apache_beam.runners.direct import executor

    transform_executor = getattr(executor, "TransformExecutor", None)
    original = getattr(transform_executor, "call", None)
    if transform_executor is None or original is None:
        _LOG.warning("counter fix not installed: unexpected Beam internals")
        return False
    transform_executor.call = counting_every_bundle(original)
    _INSTALLED = True
    return True
