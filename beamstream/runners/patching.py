"""Wrapping one of Beam's methods once, marked so a second install leaves it alone.

beamstream's fixes to Beam internals (``portable``, ``split_guard``,
``direct.hooks``) each replace one method by a wrapper of it; this is the
part they share: find the method, wrap it once, and say whether Beam still
has the hook point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def wrap_once(
    owner: Any,
    name: str,
    mark: str,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
    *,
    static: bool = False,
) -> bool:
    """Sets ``owner.name`` to ``wrap(original)`` unless already wrapped; False if it is missing.

    ``static``: the method is a staticmethod (the wrapper is installed as one).
    """
    original = getattr(owner, name, None) if owner is not None else None
    if original is None:
        return False
    if getattr(original, mark, False):
        return True
    wrapped = wrap(original)
    setattr(wrapped, mark, True)
    setattr(owner, name, staticmethod(wrapped) if static else wrapped)
    return True
