"""Feed events that fit the TestStream stream: read batches cut into size-bounded chunks.

Beam's TestStream client reads the feed's gRPC stream with gRPC's default
4 MiB message limit, and a larger event ends the stream. So ``FeedCore`` cuts
each batch it reads into chunks of at most ``CHUNK_BYTES`` and puts at most
``EVENT_BYTES`` into one event. A chunk is held like the batch it came from;
only the batch's last chunk carries its acknowledgement token, so a batch is
acknowledged once all of it has been taken in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from beamstream.errors import UserError
from beamstream.io.elements import MessageBatch

EVENT_BYTES = 7 * 2**19  # 3.5 MiB: below gRPC's 4 MiB, with room for the framing
CHUNK_BYTES = EVENT_BYTES // 2  # two to an event
NO_TOKEN: Any = object()  # a chunk that is not its batch's last: nothing to acknowledge

# Encoding overhead per record, besides its value, key and headers: columns of
# ints in a pickled batch (27 bytes measured for frames), or a pickled
# ``Message`` each (109 bytes).
_OVERHEAD_BATCHED, _OVERHEAD_RECORD = 32, 128


class RecordTooLarge(UserError, RuntimeError):
    """A record larger than a feed event can carry; the message says which."""


@dataclass
class Chunk:
    """Records of one batch, as elements of the event that will carry them."""

    elements: list[tuple[Any, int]]
    size: int  # estimated encoded bytes
    oldest_us: int  # caps the watermark until taken in
    final_at_us: int
    token: Any  # the batch's token on its last chunk, else NO_TOKEN


def record_sizes(batch: MessageBatch, batched: bool) -> list[int]:
    overhead = _OVERHEAD_BATCHED if batched else _OVERHEAD_RECORD
    keys = batch.keys or [None] * len(batch.values)
    headers = batch.headers or [()] * len(batch.values)
    return [
        len(value) + len(key or b"") + sum(len(k) + len(v or b"") for k, v in head) + overhead
        for value, key, head in zip(batch.values, keys, headers)
    ]


def split(batch: MessageBatch, batched: bool) -> Iterator[tuple[MessageBatch, int]]:
    """The batch in consecutive parts of at most ``CHUNK_BYTES`` each, with their sizes."""
    sizes = record_sizes(batch, batched)
    start, size = 0, 0
    for i, record in enumerate(sizes):
        if record > EVENT_BYTES:
            where = batch.source
            if batch.offsets[i] >= 0:  # Kafka; Pub/Sub has no offsets
                where += f" partition {batch.partition}, offset {batch.offsets[i]}"
            raise RecordTooLarge(
                f"a record of {record:,} bytes ({where}) exceeds the {EVENT_BYTES:,} bytes "
                "the local streaming feed can send in one event (gRPC's 4 MiB limit); run "
                "on Prism, Flink or Dataflow, or keep records smaller"
            )
        if size + record > CHUNK_BYTES and i > start:
            yield batch.slice(start, i), size
            start, size = i, 0
        size += record
    if start == 0:
        yield batch, size
    elif start < len(sizes):
        yield batch.slice(start, len(sizes)), size
