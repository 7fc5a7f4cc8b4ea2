"""DoFn state and timer specs from the per-class cache equal Beam's own answer."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.internal import pickler
from apache_beam.transforms import core, userstate
from apache_beam.transforms.timeutil import TimeDomain

from beamstream.runners.direct.dofn_specs import cache_key, cached

COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
FLUSH = userstate.TimerSpec("flush", TimeDomain.WATERMARK)


class Stateful(beam.DoFn):
    def process(self, element, count=beam.DoFn.StateParam(COUNT), t=beam.DoFn.TimerParam(FLUSH)):
        yield element

    @userstate.on_timer(FLUSH)
    def flushed(self):
        yield 0


class Plain(beam.DoFn):
    def process(self, element):
        yield element


def _with_state(element, count=beam.DoFn.StateParam(COUNT)):
    return element


def _dofns():
    return [
        Stateful(),
        Plain(),
        core.CallableWrapperDoFn(lambda x: [x]),
        core.CallableWrapperDoFn(_with_state),
    ]


def test_cached_specs_are_beams_for_every_kind_of_dofn_and_its_copies():
    calls = []

    def counting(dofn):
        calls.append(type(dofn).__name__)
        return userstate.get_dofn_specs(dofn)

    fast = cached(counting)
    for dofn in _dofns():
        want = userstate.get_dofn_specs(dofn)
        for copy in (dofn, pickler.roundtrip(dofn), pickler.roundtrip(dofn)):
            assert fast(copy) == want
    assert fast(Stateful())[0] == {COUNT} and fast(Stateful())[1] == {FLUSH}
    # One look per class; the wrapped callable with a StateParam default every time.
    assert calls.count("Stateful") == 1 and calls.count("Plain") == 1
    assert calls.count("CallableWrapperDoFn") == 1 + 3


def test_instances_that_can_differ_are_not_cached():
    plain = Plain()
    plain.process = lambda element: [element]
    assert cache_key(plain) is None
    assert cache_key(core.CallableWrapperDoFn(_with_state)) is None
    assert cache_key(core.CallableWrapperDoFn(lambda x, y=1: [x])) is None
    assert cache_key(Plain()) is Plain


def test_callers_get_their_own_sets():
    fast = cached(userstate.get_dofn_specs)
    state, _ = fast(Stateful())
    state.clear()
    assert fast(Stateful())[0] == {COUNT}
