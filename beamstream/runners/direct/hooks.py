"""beamstream's BundleBasedDirectRunner fixes, installed when (and only when) that runner runs.

``window_gc`` (a long local stream stays fast), ``direct_counters`` (its
counters count every bundle) and ``dofn_specs`` (no signature inspection per
bundle) patch Beam internals. The default DirectRunner
picks Prism or the FnApiRunner when it can, and decides only when the run
starts, so ``install()`` wraps the BundleBasedDirectRunner's own
``run_pipeline``: the patches go in when that runner starts a run and never
change a run on another runner. Every patch checks its hook points first and
leaves Beam as it is, with a warning, where they differ.
"""

from __future__ import annotations

import logging

from beamstream.runners import patching
from beamstream.runners.direct import direct_counters, dofn_specs, window_gc

_LOG = logging.getLogger(__name__)
_MARK = "_beamstream_fixes"


def install() -> bool:
    """Wraps ``BundleBasedDirectRunner.run_pipeline`` (idempotent); False if Beam differs."""
    from apache_beam.runners.direct import direct_runner

    runner = getattr(direct_runner, "BundleBasedDirectRunner", None)
    if not patching.wrap_once(runner, "run_pipeline", _MARK, _installing_fixes):
        _LOG.warning("DirectRunner fixes not installed: unexpected Beam internals")
        return False
    return True


def _installing_fixes(original):
    def run_pipeline(self, pipeline, options):
        window_gc.install()
        direct_counters.install()
        dofn_specs.install()
        return original(self, pipeline, options)

    return run_pipeline
