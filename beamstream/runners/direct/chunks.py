"""Feed events that fit the TestStream stream: read batches cut into size-bounded chunks.

Beam's TestStream client reads the feed's gRPC stream with gRPC's default
4 MiB message limit, and a larger event ends the stream. So ``FeedCore`` cuts
each batch it reads into chunks of at most ``CHUNK_BYTES`` and puts at most
``EVENT_BYTES`` into one event. A chunk is held like the batch it came from;
only the batch's last chunk carries its acknowledgement token, so a batch is
acknowledged once all of it has been taken in.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from beamstream.errors import UserError
from beamstream.io.elements import MessageBatch, as_elements

EVENT_BYTES = 7 * 2**19  # 3.5 MiB: below gRPC's 4 MiB, with room for the framing
CHUNK_BYTES = EVENT_BYTES // 2  # two to an event
NO_TOKEN: Any = object()  # a chunk that is not its batch's last: nothing to acknowledge

# Where to cut a batch: encoded bytes per record besides its value, key and
# headers (columns of ints in a pickled batch, or a pickled ``Message`` each).
# A chunk's size is then measured, not estimated: a small batch's own header
# (class, source name, columns) can outweigh its records.
_OVERHEAD_BATCHED, _OVERHEAD_RECORD = 32, 128
_FRAMING = 16  # protobuf, per element: tag and length of the element, its timestamp
_SEQ = 2**62  # the widest event number the server puts beside each value


class RecordTooLarge(UserError, RuntimeError):
    """A record larger than a feed event can carry; the message says which."""


@dataclass
class Chunk:
    """Records of one batch, as elements of the event that will carry them."""

    elements: list[tuple[Any, int]]
    size: int  # encoded bytes in the event, measured by encoded_size
    oldest_us: int  # caps the watermark until taken in
    final_at_us: int
    token: Any  # the batch's token on its last chunk, else NO_TOKEN


def record_sizes(batch: MessageBatch, batched: bool) -> list[int]:
    """Estimated encoded bytes of each record: where to cut."""
    overhead = _OVERHEAD_BATCHED if batched else _OVERHEAD_RECORD
    if not any(batch.keys or ()) and not any(batch.headers or ()):  # the usual case
        return [len(value) + overhead for value in batch.values]
    keys = batch.keys or [None] * len(batch.values)
    headers = batch.headers or [()] * len(batch.values)
    return [
        len(value) + len(key or b"") + sum(len(k) + len(v or b"") for k, v in head) + overhead
        for value, key, head in zip(batch.values, keys, headers)
    ]


def encoded_size(elements: list[tuple[Any, int]]) -> int:
    """The bytes these elements take in the feed server's ``AddElements`` event."""
    return sum(
        len(pickle.dumps((_SEQ, value), protocol=5)) + _FRAMING for value, _ in elements
    )


def _too_large(batch: MessageBatch, i: int, size: int) -> RecordTooLarge:
    where = batch.source
    if batch.offsets[i] >= 0:  # Kafka; Pub/Sub has no offsets
        where += f" partition {batch.partition}, offset {batch.offsets[i]}"
    return RecordTooLarge(
        f"a record of {size:,} bytes ({where}) exceeds the {EVENT_BYTES:,} bytes "
        "the local streaming feed can send in one event (gRPC's 4 MiB limit); run "
        "on Prism, Flink or Dataflow, or keep records smaller"
    )


def split(
    batch: MessageBatch, batched: bool
) -> Iterator[tuple[MessageBatch, list[tuple[Any, int]], int]]:
    """The batch in consecutive parts of at most ``CHUNK_BYTES`` encoded bytes each.

    Yields ``(part, its elements, their encoded size)``.
    """
    sizes = record_sizes(batch, batched)
    for i, record in enumerate(sizes):
        if record > EVENT_BYTES:
            raise _too_large(batch, i, record)
    start, size = 0, 0
    for i, record in enumerate(sizes):
        if size + record > CHUNK_BYTES and i > start:
            yield from _measured(batch, start, i, batched)
            start, size = i, 0
        size += record
    if start < len(sizes):
        yield from _measured(batch, start, len(sizes), batched)


def _measured(
    batch: MessageBatch, start: int, stop: int, batched: bool
) -> Iterator[tuple[MessageBatch, list[tuple[Any, int]], int]]:
    """Records ``start:stop`` as one part, or halves of it if they encode too large."""
    part = batch if (start, stop) == (0, len(batch.values)) else batch.slice(start, stop)
    elements = as_elements([part], batched)
    size = encoded_size(elements)
    if size <= CHUNK_BYTES or (stop - start == 1 and size <= EVENT_BYTES):
        yield part, elements, size
    elif stop - start == 1:
        raise _too_large(batch, start, size)
    else:
        middle = (start + stop) // 2
        yield from _measured(batch, start, middle, batched)
        yield from _measured(batch, middle, stop, batched)
