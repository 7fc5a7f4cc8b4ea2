"""Committing Kafka offsets from bundle finalizers: at once, or once the run has succeeded.

On runners with durable state (Flink, Dataflow) a finalized bundle's offsets
are committed at once, through one consumer per (servers, group, config) in
the worker process (``committer``: a connection cache, not run state).

The DirectRunner and Prism keep shuffled data in memory: a finished read
bundle is not durable, so a batch run commits only when it has succeeded.
Its finalizers run on the runner's threads in this process and hand their
offsets to the ``DeferredCommits`` of the run they belong to, found by the
read's deferral key; the run commits them when it is DONE and forgets them
otherwise. A finalizer whose run is not open (a pipeline run without
``run_pipeline``) commits nothing: those records are read again, never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from beamstream.io.kafka.reader import KafkaReadSpec, open_consumer

_LOG = logging.getLogger(__name__)
Partition = tuple[str, int]


class _Committer:
    """One consumer used only to commit."""

    def __init__(self, spec: KafkaReadSpec):
        self._consumer = open_consumer(spec)
        self._lock = threading.Lock()

    def commit(self, partition: Partition, offset: int) -> None:
        from kafka import OffsetAndMetadata, TopicPartition

        with self._lock:
            self._consumer.commit({TopicPartition(*partition): OffsetAndMetadata(offset, "", -1)})


_COMMITTERS: dict[tuple[Any, ...], _Committer] = {}  # connection cache of this worker process
_LOCK = threading.Lock()
# The open runs' deferred commits by deferral key: how finalizers on the
# runner's threads reach the run they belong to. Entries leave with the run.
_OPEN: dict[str, DeferredCommits] = {}


def committer(spec: KafkaReadSpec) -> _Committer:
    key = (spec.bootstrap_servers, spec.group, tuple(sorted(spec.consumer_config.items())))
    with _LOCK:
        if key not in _COMMITTERS:
            _COMMITTERS[key] = _Committer(spec)
        return _COMMITTERS[key]


class DeferredCommits:
    """Offsets the finalizers of one run's reads reported, committed if the run succeeds."""

    def __init__(self, keys: Iterable[str]):
        self._keys = set(keys)
        self._offsets: dict[str, tuple[KafkaReadSpec, dict[Partition, int]]] = {}
        with _LOCK:
            for key in self._keys:
                _OPEN[key] = self

    def defer(self, key: str, spec: KafkaReadSpec, partition: Partition, offset: int) -> None:
        with _LOCK:
            offsets = self._offsets.setdefault(key, (spec, {}))[1]
            offsets[partition] = max(offset, offsets.get(partition, 0))

    def commit(self) -> int:
        """Commits what was deferred; returns how many partitions."""
        with _LOCK:
            pending, self._offsets = list(self._offsets.values()), {}
        for spec, offsets in pending:
            for partition, offset in offsets.items():
                committer(spec).commit(partition, offset)
        return sum(len(offsets) for _, offsets in pending)

    def discard(self) -> None:
        """Forgets what was deferred (a failed run), so a rerun reads it again."""
        with _LOCK:
            self._offsets = {}

    def close(self) -> None:
        with _LOCK:
            for key in self._keys:
                if _OPEN.get(key) is self:
                    del _OPEN[key]


def defer_commit(key: str, spec: KafkaReadSpec, partition: Partition, offset: int) -> None:
    """A finalizer's offsets for the run that owns ``key``; nothing without an open run."""
    with _LOCK:
        run = _OPEN.get(key)
    if run is None:
        _LOG.warning(
            "offsets of %s not committed: the run is not open (run pipelines with "
            "beamstream.launch.run.run_pipeline to commit after success)",
            spec.topics,
        )
        return
    run.defer(key, spec, partition, offset)
