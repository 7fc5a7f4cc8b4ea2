"""The client interface on kafka-python (``client=kafka-python``, the default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from beamstream.io.kafka.client import (
    BEGINNING,
    END,
    BrokerUnavailable,
    CommitDone,
    Pair,
    Records,
)


def _retriable(exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}")


class KafkaPythonConsumer:
    """``KafkaConsumer`` with assigned partitions; kafka-python errors become ours."""

    def __init__(
        self,
        servers: Sequence[str],
        group: str | None,
        settings: Mapping[str, Any],
        config: Mapping[str, Any],
    ):
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        merged = {**settings, **config, "bootstrap_servers": list(servers), "group_id": group}
        try:
            self._consumer = KafkaConsumer(**merged)
        except KafkaError as exc:
            raise _retriable(exc) from exc
        self._tps: dict[Pair, Any] = {}

    def _tp(self, pair: Pair):
        from kafka import TopicPartition

        tp = self._tps.get(pair)
        if tp is None:
            tp = self._tps[pair] = TopicPartition(*pair)
        return tp

    def partitions(self, topic: str) -> list[int]:
        return sorted(self._consumer.partitions_for_topic(topic) or ())

    def assign(self, starts: Mapping[Pair, int]) -> None:
        consumer = self._consumer
        consumer.assign([self._tp(p) for p in starts])
        for pair, offset in starts.items():
            if offset == BEGINNING:
                consumer.seek_to_beginning(self._tp(pair))
            elif offset == END:
                consumer.seek_to_end(self._tp(pair))
            else:
                consumer.seek(self._tp(pair), offset)
        for pair in starts:  # resolve lazy seeks now: "latest" means as of opening
            consumer.position(self._tp(pair))

    def committed(self, pairs: Sequence[Pair]) -> dict[Pair, tuple[int, str] | None]:
        found: dict[Pair, tuple[int, str] | None] = {}
        for pair in pairs:
            c = self._consumer.committed(self._tp(pair), metadata=True)
            found[pair] = None if c is None else (c.offset, c.metadata or "")
        return found

    def beginning_offsets(self, pairs: Sequence[Pair]) -> dict[Pair, int]:
        got = self._consumer.beginning_offsets([self._tp(p) for p in pairs])
        return {(tp.topic, tp.partition): off for tp, off in got.items()}

    def end_offsets(self, pairs: Sequence[Pair], timeout_s: float = 30.0) -> dict[Pair, int]:
        from kafka.errors import KafkaError

        try:
            got = self._consumer.end_offsets(
                [self._tp(p) for p in pairs], timeout_ms=int(timeout_s * 1000)
            )
        except KafkaError as exc:
            if exc.retriable:
                raise _retriable(exc) from exc
            raise
        return {(tp.topic, tp.partition): off for tp, off in got.items()}

    def offsets_for_times(self, pairs: Sequence[Pair], timestamp_ms: int) -> dict[Pair, int | None]:
        found = self._consumer.offsets_for_times({self._tp(p): timestamp_ms for p in pairs})
        return {
            p: (None if found.get(self._tp(p)) is None else found[self._tp(p)].offset)
            for p in pairs
        }

    def poll(self, timeout_s: float, max_records: int) -> dict[Pair, Records]:
        from kafka.errors import KafkaError

        try:
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            # kafka-python retries failed fetches itself; a consumer with a
            # group raises while its coordinator cannot be found.
            if exc.retriable:
                raise _retriable(exc) from exc
            raise
        out: dict[Pair, Records] = {}
        for tp, records in polled.items():
            if records:
                out[(tp.topic, tp.partition)] = Records(
                    [r.value if r.value is not None else b"" for r in records],
                    [r.offset for r in records],
                    [r.timestamp for r in records],
                    [r.key for r in records],
                    [tuple(r.headers or ()) for r in records],
                )
        return out

    def position(self, pair: Pair) -> int:
        return self._consumer.position(self._tp(pair))

    def highwater(self, pair: Pair) -> int | None:
        return self._consumer.highwater(self._tp(pair))

    def pause(self, pair: Pair) -> None:
        self._consumer.pause(self._tp(pair))

    def commit(
        self,
        offsets: Mapping[Pair, tuple[int, str]],
        asynchronous: bool = False,
        on_done: CommitDone | None = None,
    ) -> None:
        from kafka import OffsetAndMetadata

        values = {self._tp(p): OffsetAndMetadata(o, m, -1) for p, (o, m) in offsets.items()}
        if not asynchronous:
            self._consumer.commit(values)
            return

        def done(_offsets, response) -> None:
            if on_done is not None:
                on_done(response if isinstance(response, Exception) else None)

        self._consumer.commit_async(values, callback=done)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


_FLUSH_ATTEMPTS = 64  # re-waits after batch splits: enough to halve 1 MB down to one record


class KafkaPythonProducer:
    """``KafkaProducer``; a delivery failure goes to the send's ``on_error``."""

    def __init__(
        self, servers: Sequence[str], settings: Mapping[str, Any], config: Mapping[str, Any]
    ):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self._producer = KafkaProducer(
                **{**settings, **config, "bootstrap_servers": list(servers)}
            )
        except KafkaError as exc:
            raise _retriable(exc) from exc

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._producer.send(topic, value=value, key=key, headers=headers).add_errback(on_error)

    def flush(self, timeout_s: float | None = None) -> None:
        from kafka.errors import KafkaTimeoutError, UnknownError

        # kafka-python splits a batch the broker refused as too large and sends
        # the halves again, but a flush waiting on the first batch then raises
        # UnknownError('Future not done'): wait again, for the halves.
        try:
            for _ in range(_FLUSH_ATTEMPTS):
                try:
                    self._producer.flush(timeout=timeout_s)
                    return
                except UnknownError as exc:
                    if "Future not done" not in str(exc):
                        raise
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError as exc:  # as librdkafka's flush: not delivered in time
            raise _retriable(exc) from exc

    def close(self) -> None:
        self._producer.close(timeout=10)
