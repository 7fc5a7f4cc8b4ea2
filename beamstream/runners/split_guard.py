"""A split request during a read bundle whose progress is NaN treats the progress as unknown.

Beam 2.77's SDK harness answers a runner's split request for a splittable
DoFn from the element's progress, which ``SdfProcessSizedElements`` measures in
output bytes: elements counted times the mean sampled size. The harness resets
its counters for every bundle but keeps each output's size sampler, and that
sampler samples less and less often; so a reused bundle processor soon runs
bundles in which elements are counted and none is sampled. Their mean is NaN,
the progress is NaN, and ``DataInputOperation._compute_split`` fails with
``ValueError: cannot convert float NaN to integer``, which fails the bundle and
with it the job. Prism asks for a split whenever a bundle shows no progress
between two reports, which a caught-up streaming read does all the time; a
600 s live Kafka read on Prism died this way four minutes in.

A NaN progress is taken as unknown, exactly as Beam takes a missing one
(0.5 of the current element). The split logic is pure Python
(``bundle_processor``), so the guard reaches every SDK harness that imports
beamstream: the launching process (Prism's ``LOOPBACK``) and remote workers,
which import ``beamstream.io.kafka.source`` to unpickle the source.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from beamstream.runners import patching

_LOG = logging.getLogger(__name__)
_INSTALLED = "_beamstream_nan_progress_guard"

# What Beam's DataInputOperation.try_split assumes when an element has no progress.
UNKNOWN_PROGRESS = 0.5


def install() -> bool:
    """Wraps ``DataInputOperation._compute_split`` (idempotent); False if Beam differs."""
    from apache_beam.runners.worker import bundle_processor

    operation = getattr(bundle_processor, "DataInputOperation", None)
    if not patching.wrap_once(operation, "_compute_split", _INSTALLED, _guarded, static=True):
        _LOG.warning("split guard not installed: unexpected Beam internals")
        return False
    return True


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def compute_split(
        index: int, current_element_progress: float, *args: Any, **kwargs: Any
    ) -> Any:
        if isinstance(current_element_progress, float) and math.isnan(current_element_progress):
            current_element_progress = UNKNOWN_PROGRESS
        return original(index, current_element_progress, *args, **kwargs)

    return compute_split
