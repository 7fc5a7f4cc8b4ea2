"""The Kafka feed for local streaming: how ``feed_core`` reads and commits Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from beamstream.io.kafka.reader import KafkaBatchReader
from beamstream.io.kafka.spec import KafkaReadSpec
from beamstream.runners.direct.commit_ledger import CommitLedger
from beamstream.runners.direct.feed_core import Delivery, FeedCore, Held
from beamstream.runners.direct.finality import Finality


@dataclass(frozen=True)
class KafkaFeed:
    """A picklable feed factory: the child process calls it to open the reader."""

    spec: KafkaReadSpec
    batched: bool = True

    finality: Finality = Finality()  # when a record's windows are final (from the pipeline)

    def __call__(self) -> FeedCore:
        return FeedCore(KafkaSource(KafkaBatchReader(self.spec)), self.batched, self.finality)


class KafkaSource:
    """Reads per-partition batches; commits offsets once safe, in offset order.

    A batch's ack token is its ``CommitLedger`` entry: offsets are one position
    per partition, so a safe batch is committed only once every earlier batch
    of its partition is safe too.
    """

    def __init__(self, reader: KafkaBatchReader):
        self._reader = reader
        spec = reader.spec
        self._commit = spec.commit == "finalize" and spec.group is not None
        self._ledger = CommitLedger()

    @property
    def acknowledges(self) -> bool:
        return self._commit

    @property
    def done(self) -> bool:
        return self._reader.done

    def watermark_us(self) -> int:
        return self._reader.watermark_us

    def read(self) -> list[Delivery]:
        batches = self._reader.read()
        if not self._commit:
            return [Delivery(b) for b in batches]
        return [Delivery(b, self._ledger.record(b)) for b in batches]

    def acknowledge(self, released: list[Held], sink_watermark: int | None, final: bool) -> None:
        if not self._commit:
            return
        for held in released:
            self._ledger.release(held.token)
        offsets = self._ledger.safe_offsets()
        if offsets:
            # While reading, never block on the broker; the final commit waits.
            self._reader.commit(offsets, watermark_us=sink_watermark, asynchronous=not final)

    def keep_alive(self, held: Sequence[Held]) -> None:
        """Kafka keeps uncommitted records; nothing to extend."""

    def close(self) -> None:
        self._reader.close()
