"""The DirectRunner fixes: installed at their hook points, only when that runner runs, guarded."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.direct import direct_runner, executor, transform_evaluator
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beamstream.runners.direct import direct_counters, hooks, window_gc


def test_the_fixes_go_in_when_the_bundle_based_runner_starts_a_run(monkeypatch):
    started: list[list[str]] = []
    installed: list[str] = []

    def run_pipeline(self, pipeline, options):  # stands for Beam's own
        started.append(list(installed))

    monkeypatch.setattr(direct_runner.BundleBasedDirectRunner, "run_pipeline", run_pipeline)
    monkeypatch.setattr(window_gc, "install", lambda: installed.append("window_gc") or True)
    monkeypatch.setattr(direct_counters, "install", lambda: installed.append("counters") or True)
    assert hooks.install()
    assert hooks.install()  # idempotent: wrapped once
    assert installed == []  # nothing until that runner runs

    batch = TestPipeline(runner="FnApiRunner")
    assert_that(batch | beam.Create([1, 2]), equal_to([1, 2]))
    batch.run().wait_until_finish()
    assert installed == []  # another runner's run changes nothing

    direct_runner.BundleBasedDirectRunner().run_pipeline(None, None)
    assert started == [["window_gc", "counters"]]  # in before Beam's run_pipeline starts


def test_the_patches_find_their_hook_points_in_this_beam():
    assert window_gc.install()
    assert direct_counters.install()
    assert transform_evaluator.create_trigger_driver.__module__ == window_gc.__name__
    assert executor.TransformExecutor.call.__module__ == direct_counters.__name__


def test_a_missing_hook_point_leaves_beam_as_it_is(monkeypatch):
    monkeypatch.setattr(window_gc, "_INSTALLED", False)
    monkeypatch.delattr(transform_evaluator, "create_trigger_driver")
    assert not window_gc.install()
    assert not hasattr(transform_evaluator, "create_trigger_driver")

    monkeypatch.setattr(direct_counters, "_INSTALLED", False)
    monkeypatch.delattr(executor, "TransformExecutor")
    assert not direct_counters.install()


def test_the_counter_fix_counts_as_beam_does_if_the_executor_changed():
    calls: list[str] = []

    class _Changed:  # an executor without the private attributes the fix reads
        pass

    call = direct_counters.counting_every_bundle(lambda self, sampler: calls.append(sampler))
    call(_Changed(), "sampler")
    assert calls == ["sampler"]
