"""Deferred commits: each run keeps its own; a closed run's finalizers commit nothing."""

from __future__ import annotations

import logging

from beamstream.io.kafka.commits import DeferredCommits, defer_commit
from beamstream.io.kafka.read import read_spec

SPEC = read_spec("kafka://127.0.0.1:9/frames?group=g&stop=end")


def test_two_runs_keep_their_own_offsets_the_highest_per_partition():
    first, second = DeferredCommits({"run-a": SPEC}), DeferredCommits({"run-b": SPEC})
    try:
        defer_commit("run-a", SPEC, ("frames", 0), 10)
        defer_commit("run-a", SPEC, ("frames", 0), 25)  # finalizers may come in any order
        defer_commit("run-a", SPEC, ("frames", 0), 20)
        defer_commit("run-a", SPEC, ("frames", 1), 3)
        defer_commit("run-b", SPEC, ("frames", 0), 99)
        assert first.offsets("run-a") == {("frames", 0): 25, ("frames", 1): 3}
        assert second.offsets("run-b") == {("frames", 0): 99}
        first.discard()  # a failed run forgets its own, not the other's
        assert first.offsets("run-a") == {}
        assert second.offsets("run-b") == {("frames", 0): 99}
    finally:
        first.close()
        second.close()


def test_a_finalizer_of_a_run_that_is_not_open_commits_nothing(caplog):
    run = DeferredCommits({"run-c": SPEC})
    run.close()
    with caplog.at_level(logging.WARNING):
        defer_commit("run-c", SPEC, ("frames", 0), 5)
    assert "not committed" in caplog.text
    reopened = DeferredCommits({"run-c": SPEC})
    try:
        assert reopened.offsets("run-c") == {}
    finally:
        reopened.close()
