"""wrap_once: one wrapper per method however often a fix is installed."""

from __future__ import annotations

from beamstream.runners.patching import wrap_once


def _doubling(original):
    def wrapped(*args):
        return 2 * original(*args)

    return wrapped


def test_a_method_is_wrapped_once_and_marked():
    class Owner:
        def value(self):
            return 3

    assert wrap_once(Owner, "value", "_mark", _doubling)
    assert wrap_once(Owner, "value", "_mark", _doubling)  # a second install: no second wrapper
    assert Owner().value() == 6


def test_a_staticmethod_stays_static():
    class Owner:
        @staticmethod
        def value(x):
            return x

    assert wrap_once(Owner, "value", "_mark", _doubling, static=True)
    assert Owner.value(4) == Owner().value(4) == 8


def test_a_missing_hook_point_changes_nothing():
    class Owner:
        pass

    assert not wrap_once(Owner, "value", "_mark", _doubling)
    assert not wrap_once(None, "value", "_mark", _doubling)
    assert not hasattr(Owner, "value")
