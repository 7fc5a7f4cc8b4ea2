"""A DoFn's state and timer specs, looked up once per DoFn class instead of once per bundle.

The BundleBasedDirectRunner starts every bundle of every ``ParDo`` with a
pickled copy of the DoFn and asks ``userstate.get_dofn_specs`` of it (through
``is_stateful_dofn`` and the ``DoFnSignature`` check), which builds an
``inspect.Signature`` for each of its methods: 13% of a local streaming
pipeline's CPU in a 1M-frame catch-up, where every window's result is a
bundle of its own. The specs come from the defaults of the class's methods,
so a copy of a DoFn has its class's; ``install()`` caches them per class.
DoFns whose methods can differ per instance (a wrapped callable with default
arguments, methods set on the instance) are asked every time, as before.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable
from typing import Any, cast

_LOG = logging.getLogger(__name__)
_INSTALLED = False
_NO_DEFAULTS = "callable without defaults"
_MAX_CLASSES = 1024


def cache_key(dofn: Any) -> Any:
    """What a DoFn's specs depend on, or None when that is the instance itself."""
    cls = type(dofn)
    if hasattr(dofn, "_inspect_process"):  # a wrapped callable: its arguments are process()'s
        argspec_fn = getattr(dofn, "_process_argspec_fn", None)
        target = argspec_fn() if callable(argspec_fn) else None
        if not inspect.isfunction(target) or target.__defaults__ or target.__kwdefaults__:
            return None  # a default could be a StateParam or TimerParam
        return (cls, _NO_DEFAULTS)
    own = getattr(dofn, "__dict__", {})
    if any(inspect.isfunction(v) or isinstance(v, types.MethodType) for v in own.values()):
        return None
    return cls


def cached(original: Callable[[Any], tuple[set, set]]) -> Callable[[Any], tuple[set, set]]:
    """``get_dofn_specs`` answered from a per-class cache (fresh sets for every caller)."""
    specs: dict[Any, tuple[frozenset, frozenset]] = {}

    def get_dofn_specs(dofn: Any) -> tuple[set, set]:
        key = cache_key(dofn)
        if key is None:
            return original(dofn)
        known = specs.get(key)
        if known is None:
            state, timers = original(dofn)
            if len(specs) >= _MAX_CLASSES:
                specs.clear()
            known = specs[key] = (frozenset(state), frozenset(timers))
        return set(known[0]), set(known[1])

    get_dofn_specs.__wrapped__ = original  # type: ignore[attr-defined]
    return get_dofn_specs


def install() -> bool:
    """Caches ``get_dofn_specs`` where the DirectRunner looks it up (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return True
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    original = getattr(userstate, "get_dofn_specs", None)
    looked_up = getattr(transform_evaluator, "get_dofn_specs", None)
    if not callable(original) or looked_up is not original:
        _LOG.warning("DoFn spec cache not installed: unexpected Beam internals")
        return False
    fast: Any = cached(cast(Callable[[Any], tuple[set, set]], original))
    # is_stateful_dofn and validate_stateful_dofn call the module's own name.
    userstate.get_dofn_specs = fast
    transform_evaluator.get_dofn_specs = fast
    _INSTALLED = True
    return True
