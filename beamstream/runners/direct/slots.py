"""The progress slots a pipeline and its feed process share: a small memory-mapped file.

Eight 64-bit integers (layout in ``feed.py``): the last event the pipeline
acknowledged, the sink watermark, a stop request, ... A file rather than
``multiprocessing.shared_memory``, so that every party (the feed process, the
steps of the pipeline, the run that owns the feed) attaches by path, without
a process-wide registry and without Python's resource tracker claiming the
segment. Writers only ever raise a slot, so no lock is needed.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile

from beamstream.io.elements import NO_WATERMARK
from beamstream.runners.direct.feed import _SINK_WATERMARK, _SLOTS

_SIZE = 8 * _SLOTS


class FeedSlots:
    """Attached slots: index them like a list of ints."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "r+b")  # noqa: SIM115 - closed in close()
        self._map = mmap.mmap(self._file.fileno(), _SIZE)
        self._view: memoryview | None = memoryview(self._map).cast("q")

    @classmethod
    def create(cls) -> FeedSlots:
        """New slots in a temporary file (deleted by ``close(delete=True)``)."""
        fd, path = tempfile.mkstemp(prefix="beamstream-feed-", suffix=".slots")
        with os.fdopen(fd, "wb") as out:
            out.write(bytes(_SIZE))
        slots = cls(path)
        slots[_SINK_WATERMARK] = NO_WATERMARK
        return slots

    def __getitem__(self, index: int) -> int:
        assert self._view is not None, "slots closed"
        return self._view[index]

    def __setitem__(self, index: int, value: int) -> None:
        assert self._view is not None, "slots closed"
        self._view[index] = value

    def raise_to(self, index: int, value: int) -> None:
        """Sets the slot to ``value`` if that is higher (acks and watermarks only move on)."""
        if self._view is not None and value > self._view[index]:
            self._view[index] = value

    @property
    def closed(self) -> bool:
        return self._view is None

    def close(self, delete: bool = False) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
            self._map.close()
            self._file.close()
        if delete:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
