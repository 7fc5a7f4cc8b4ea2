"""Beam's trigger driver builds a CombineFn class at every combining-state access; once is enough.

In Beam 2.77, ``_CombiningValueStateTag.without_extraction`` (``transforms/
trigger.py``) defines a new ``NoExtractionCombineFn`` class each time it is
called, and the trigger driver of the FnApiRunner and the DirectRunner calls
it whenever a trigger adds to or reads its combining state: for every window
of every element it processes and at every timer (``AfterCount`` of a late
pane, the watermark trigger's own state). Building a class costs ~10 µs; a
batch ``metrics`` run of 200,000 records built 60,000 of them.

The class depends only on the tag's CombineFn, so one is kept per CombineFn
and the returned tag is the one Beam would build (same name, an equivalent
CombineFn). Runners that group outside Python (Prism, Flink, Dataflow) do not
use this code; ``run_pipeline`` installs the cache for those that do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from beamstream.runners import patching

_LOG = logging.getLogger(__name__)
_MARK = "_beamstream_cached_no_extraction"
_MAX_CACHED = 1024  # distinct CombineFns in trigger state: a handful per trigger class


def install() -> bool:
    """Wraps ``_CombiningValueStateTag.without_extraction`` (idempotent); False if Beam differs."""
    from apache_beam.transforms import trigger

    tag_class = getattr(trigger, "_CombiningValueStateTag", None)
    if not patching.wrap_once(tag_class, "without_extraction", _MARK, _cached):
        _LOG.warning("trigger state cache not installed: unexpected Beam internals")
        return False
    return True


def _cached(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # id(combine_fn) -> (combine_fn, its no-extraction CombineFn). The entry holds
    # the CombineFn itself, so its id cannot be reused by another while cached.
    cache: dict[int, tuple[Any, Any]] = {}

    def without_extraction(self):
        fn = self.combine_fn
        hit = cache.get(id(fn))
        if hit is None or hit[0] is not fn:
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            hit = cache[id(fn)] = (fn, original(self).combine_fn)
        return type(self)(self.tag, hit[1])

    without_extraction.__wrapped__ = original  # type: ignore[attr-defined]
    return without_extraction
