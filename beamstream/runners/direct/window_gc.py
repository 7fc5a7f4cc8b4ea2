"""Garbage-collecting expired windows in the streaming DirectRunner's GroupByKey.

Beam 2.77's ``GeneralTriggerDriver`` never drops a window's state once the
watermark has passed its end plus the allowed lateness (``# TODO(robertwb):
allowed lateness`` in ``transforms/trigger.py``; apache/beam#21260 is a
neighbour), and the streaming DirectRunner deep-copies a key's whole state for
every bundle. A global aggregate (one key) therefore gets slower with every
window it has ever seen: after a 1,000-second backlog, live per-second results
came 1.2 s after the watermark instead of 0.4 s, and a day-long run would
stall. ``install()`` wraps the driver the DirectRunner creates so that, after
each step, windows past end + allowed lateness with no pending timer are
dropped: exactly the windows the driver already ignores input for.

A key is only stepped when its data or timers arrive, so a key whose last
window closed (one key per window, as ``FrameMetrics`` uses) would keep that
window forever: each window therefore gets a collection timer at end +
allowed lateness, and a key left with no state and no timers is removed from
the runner's keyed states (which it scans for timers on every step).
"""

from __future__ import annotations

import logging
from typing import Any

_LOG = logging.getLogger(__name__)
_INSTALLED = False


GC_TIMER = "beamstream-window-gc"  # a timer of ours, never shown to the trigger


class _CollectingDriver:
    """Delegates to a trigger driver, then forgets windows that can no longer change."""

    def __init__(self, driver: Any):
        self._driver = driver

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def process_elements(self, state, windowed_values, output_watermark, input_watermark=None):
        args: tuple[Any, ...] = (state, windowed_values, output_watermark)
        if input_watermark is not None:
            args += (input_watermark,)
        yield from self._driver.process_elements(*args)
        if input_watermark is not None:
            collect_expired(self._driver, state, input_watermark)
        arm_collection(self._driver, state)

    def process_timer(self, window_id, name, time_domain, timestamp, state, input_watermark=None):
        watermark = timestamp if input_watermark is None else input_watermark
        if name == GC_TIMER:
            state.clear_timer(window_id, name, time_domain)
            collect_expired(self._driver, state, watermark)
            return
        yield from self._driver.process_timer(
            window_id, name, time_domain, timestamp, state, input_watermark
        )
        collect_expired(self._driver, state, watermark)
        arm_collection(self._driver, state)


def _collectable(driver: Any, state: Any) -> bool:
    """Whether this is the merging driver over in-memory state that this module knows."""
    from apache_beam.transforms.trigger import GeneralTriggerDriver

    return (
        isinstance(driver, GeneralTriggerDriver)
        and driver.is_merging
        and hasattr(state, "state")
        and hasattr(state, "timers")
    )


def _pending(state: Any, window_ids: list) -> bool:
    """Whether the trigger still has a timer for any of these window ids (ours aside)."""
    return any(key[0] != GC_TIMER for i in window_ids for key in state.timers.get(i, ()))


def collect_expired(driver: Any, state: Any, input_watermark: Any) -> int:
    """Drops windows past end + allowed lateness without pending timers; returns how many."""
    from apache_beam.transforms.trigger import MergeableStateAdapter

    if not _collectable(driver, state):
        return 0
    adapter = MergeableStateAdapter(state)
    lateness = driver.allowed_lateness
    expired = [
        window
        for window in adapter.known_windows()
        if hasattr(window, "end")
        and input_watermark > window.end + lateness
        and not _pending(state, adapter.window_ids[window])
    ]
    for window in expired:
        for window_id in adapter.window_ids.pop(window):
            state.state.pop(window_id, None)
            state.timers.pop(window_id, None)
    if expired:
        adapter._persist_window_ids()  # noqa: SLF001 - the adapter's own way to store the ids
    return len(expired)


def arm_collection(driver: Any, state: Any) -> None:
    """Sets a collection timer just past end + allowed lateness on each window without one."""
    from apache_beam.transforms.trigger import MergeableStateAdapter, TimeDomain
    from apache_beam.utils.timestamp import Duration

    if not _collectable(driver, state):
        return
    adapter = MergeableStateAdapter(state)
    after = driver.allowed_lateness + Duration(micros=1)  # collect_expired wants it passed
    for window, window_ids in adapter.window_ids.items():
        if not hasattr(window, "end") or not window_ids:
            continue
        first = window_ids[0]
        if (GC_TIMER, TimeDomain.WATERMARK, "") not in state.timers.get(first, ()):
            state.set_timer(first, GC_TIMER, TimeDomain.WATERMARK, window.end + after)


def is_empty(state: Any) -> bool:
    """Whether a key's in-memory state holds nothing: no timers, values or window ids."""
    return (
        not any(state.timers.values())
        and not any(values for tags in state.state.values() for values in tags.values())
        and not any(state.global_state.values())
    )


def prune_empty_keys(context: Any, result: Any) -> int:
    """Removes the keys a GroupByKey step left empty from the runner's keyed states.

    Only for the streaming ``GroupAlsoByWindow`` steps, whose state is all
    ``GeneralTriggerDriver``'s; an empty key's state is made afresh if its
    key comes again. Done under the step's watermark lock, which the runner
    holds while it scans the keyed states for timers.
    """
    if type(result.transform.transform).__name__ != "_StreamingGroupAlsoByWindow":
        return 0
    states = getattr(context, "_transform_keyed_states", {}).get(result.transform)
    manager = getattr(context, "_watermark_manager", None)
    watermarks = getattr(manager, "_transform_to_watermarks", {}).get(result.transform)
    if states is None or watermarks is None or not hasattr(watermarks, "_lock"):
        return 0
    empty = [k for k, state in result.partial_keyed_state.items() if is_empty(state)]
    if not empty:
        return 0
    with watermarks._lock:  # noqa: SLF001
        for key in empty:
            if states.get(key) is result.partial_keyed_state[key]:
                del states[key]
    return len(empty)


def install() -> bool:
    """Makes the DirectRunner's streaming GroupByKey collect expired windows (idempotent).

    Returns False (and changes nothing) when this Beam's internals differ from
    the ones this was written against.
    """
    global _INSTALLED
    if _INSTALLED:
        return True
    from apache_beam.runners.direct import evaluation_context, transform_evaluator
    from apache_beam.transforms import trigger

    original = getattr(transform_evaluator, "create_trigger_driver", None)
    adapter = getattr(trigger, "MergeableStateAdapter", None)
    unmerged = getattr(trigger, "InMemoryUnmergedState", None)
    if (
        original is None
        or adapter is None
        or unmerged is None
        or not hasattr(adapter, "_persist_window_ids")
        or not hasattr(evaluation_context.EvaluationContext, "handle_result")
    ):
        _LOG.warning("window state collection not installed: unexpected Beam internals")
        return False

    def create_trigger_driver(*args, **kwargs):
        return _CollectingDriver(original(*args, **kwargs))

    handle_result = evaluation_context.EvaluationContext.handle_result

    def handle_result_and_prune(self, completed_bundle, completed_timers, result):
        committed = handle_result(self, completed_bundle, completed_timers, result)
        prune_empty_keys(self, result)
        return committed

    transform_evaluator.create_trigger_driver = create_trigger_driver
    context_class: Any = evaluation_context.EvaluationContext
    context_class.handle_result = handle_result_and_prune
    _INSTALLED = True
    return True
