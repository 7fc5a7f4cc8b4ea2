"""Committing Kafka offsets from bundle finalizers: at once, or once the run has succeeded.

On runners with durable state (Flink, Dataflow) a finalized bundle's offsets
are committed at once, through one consumer per (servers, group, config) in
the worker process (``committer``: a connection cache, not run state).

The DirectRunner and Prism keep shuffled data in memory: a finished read
bundle is not durable, so a batch run commits only when it has succeeded.
Its finalizers run on the runner's threads in this process and hand their
offsets to the ``DeferredCommits`` of the run they belong to, a ledger
directory named by the read's deferral key; the run commits them when it is
DONE and forgets them otherwise. A finalizer whose run is not open (a pipeline run without
``run_pipeline``) commits nothing: those records are read again, never lost.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beamstream.io.kafka.spec import KafkaReadSpec, open_consumer

_LOG = logging.getLogger(__name__)
Partition = tuple[str, int]


class _Committer:
    """One consumer used only to commit."""

    def __init__(self, spec: KafkaReadSpec):
        self._consumer = open_consumer(spec)
        self._lock = threading.Lock()

    def commit(self, partition: Partition, offset: int) -> None:
        with self._lock:
            self._consumer.commit({partition: (offset, "")})


_COMMITTERS: dict[tuple[Any, ...], _Committer] = {}  # connection cache of this worker process
_LOCK = threading.Lock()


def committer(spec: KafkaReadSpec) -> _Committer:
    key = (
        spec.client,
        spec.bootstrap_servers,
        spec.group,
        tuple(sorted(spec.consumer_config.items())),
    )
    with _LOCK:
        if key not in _COMMITTERS:
            _COMMITTERS[key] = _Committer(spec)
        return _COMMITTERS[key]


def _ledger_dir(key: str) -> Path:
    return Path(tempfile.gettempdir()) / "beamstream-deferred" / key


class DeferredCommits:
    """Offsets the finalizers of one run's reads reported, committed if the run succeeds.

    The run's ledger is a directory named by each read's deferral key: a
    finalizer adds one empty file per (partition, next offset), so threads
    never write the same file and nothing is shared through this module.
    The directory exists while the run is open; a finalizer that finds none
    belongs to no open run.
    """

    def __init__(self, reads: Mapping[str, KafkaReadSpec]):
        self._reads = dict(reads)
        for key in self._reads:
            _ledger_dir(key).mkdir(parents=True, exist_ok=True)

    @property
    def reads(self) -> dict[str, KafkaReadSpec]:
        return dict(self._reads)

    def offsets(self, key: str) -> dict[Partition, int]:
        """The highest next offset per partition deferred for read ``key``."""
        found: dict[Partition, int] = {}
        directory = _ledger_dir(key)
        for entry in directory.iterdir() if directory.is_dir() else ():
            topic, partition, offset = entry.name.rsplit("@", 2)
            pair = (topic, int(partition))
            found[pair] = max(int(offset), found.get(pair, 0))
        return found

    def commit(self) -> int:
        """Commits what was deferred; returns how many partitions."""
        committed = 0
        for key, spec in self._reads.items():
            for partition, offset in self.offsets(key).items():
                committer(spec).commit(partition, offset)
                committed += 1
            self._clear(key)
        return committed

    def discard(self) -> None:
        """Forgets what was deferred (a failed run), so a rerun reads it again."""
        for key in self._reads:
            self._clear(key)

    def _clear(self, key: str) -> None:
        directory = _ledger_dir(key)
        for entry in directory.iterdir() if directory.is_dir() else ():
            entry.unlink(missing_ok=True)

    def close(self) -> None:
        for key in self._reads:
            shutil.rmtree(_ledger_dir(key), ignore_errors=True)


def defer_commit(key: str, spec: KafkaReadSpec, partition: Partition, offset: int) -> None:
    """A finalizer's offsets for the open run that owns ``key``; nothing without one."""
    directory = _ledger_dir(key)
    try:
        (directory / f"{partition[0]}@{partition[1]}@{offset}").touch()
    except FileNotFoundError:
        _LOG.warning(
            "offsets of %s not committed: the run is not open (run pipelines with "
            "beamstream.launch.run.run_pipeline to commit after success)",
            spec.topics,
        )
