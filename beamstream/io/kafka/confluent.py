"""The client interface on confluent-kafka (librdkafka): ``client=confluent``.

librdkafka differs from kafka-python in ways the interface hides: it
connects lazily (opening checks the brokers, so a wrong address fails at once
as with kafka-python), it needs a ``group.id`` even to assign partitions (an
unused placeholder when the read has no group), offsets are given at
``assign`` time, and a consume call waits for a full batch or the time-out
(``poll`` takes what is there, or waits only for the first record).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from beamstream.io.kafka.client import (
    BEGINNING,
    END,
    BrokerUnavailable,
    CommitDone,
    KafkaClientError,
    Pair,
    Records,
)
from beamstream.io.kafka.librdkafka_config import librdkafka_config, redacted_names

_NO_GROUP = "beamstream-assign-only"  # librdkafka needs a group id; never joined, never committed
_REQUEST_TIMEOUT_S = 10.0
_POLL_EVERY = 1000  # sends between serving delivery callbacks
_HOOKS = ("logger", "on_commit")  # settings that are ours, not the user's


class _LibraryLog:
    """librdkafka's log lines in Python logging, under ``kafka.`` like kafka-python's.

    One formatted message per line, so ``log_flood.RepeatFilter`` holds back
    the reconnect attempts of an outage as it does kafka-python's.
    """

    _logger = logging.getLogger("kafka.librdkafka")

    def log(self, level: int, fmt: str, *args: object) -> None:
        self._logger.log(level, fmt % args if args else fmt)


def _library():
    try:
        import confluent_kafka
    except ImportError as exc:
        raise KafkaClientError(
            "client=confluent needs confluent-kafka: pip install 'beamstream[confluent]'"
        ) from exc
    return confluent_kafka


def _unavailable(exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}")


def _is_retriable(error) -> bool:
    from confluent_kafka import KafkaError

    transient = (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._RESOLVE,
        # librdkafka forgets a partition's leader while its broker is unreachable
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
    )
    return bool(error.retriable()) or error.code() in transient


def _configured(kind: Callable[[dict], Any], conf: dict[str, Any]):
    """The client, or KafkaClientError naming the settings (values may be secrets)."""
    try:
        return kind(conf)
    except (ValueError, TypeError, _library().KafkaException) as exc:
        shown = re.sub(r'value "[^"]*"', "value", str(exc))  # librdkafka quotes bad values
        names = redacted_names({k: v for k, v in conf.items() if k not in _HOOKS})
        raise KafkaClientError(f"librdkafka rejected the settings ({names}): {shown}") from None


def _connect_timeout_s(settings: Mapping[str, Any]) -> float:
    return float(settings.get("bootstrap_timeout_ms", _REQUEST_TIMEOUT_S * 1000)) / 1000


def _check_reachable(client, timeout_s: float) -> None:
    try:
        client.list_topics(timeout=timeout_s)
    except _library().KafkaException as exc:
        raise _unavailable(exc) from exc


class ConfluentConsumer:
    """``confluent_kafka.Consumer`` with assigned partitions and positions it keeps."""

    def __init__(
        self,
        servers: Sequence[str],
        group: str | None,
        settings: Mapping[str, Any],
        config: Mapping[str, Any],
    ):
        ck = _library()
        merged = {**settings, **config}
        conf = librdkafka_config(merged)
        conf.update(
            {
                "logger": _LibraryLog(),
                "bootstrap.servers": ",".join(servers),
                "group.id": group or _NO_GROUP,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "on_commit": self._committed,
            }
        )
        self._ck = ck
        self._consumer = _configured(ck.Consumer, conf)
        self._on_commit: CommitDone | None = None
        self._tps: dict[Pair, Any] = {}
        self._positions: dict[Pair, int] = {}
        try:
            _check_reachable(self._consumer, _connect_timeout_s(merged))
        except BrokerUnavailable:
            self._consumer.close()
            raise

    def _tp(self, pair: Pair, offset: int | None = None, metadata: str | None = None):
        if offset is None:
            tp = self._tps.get(pair)
            if tp is None:
                tp = self._tps[pair] = self._ck.TopicPartition(*pair)
            return tp
        if metadata is None:
            return self._ck.TopicPartition(pair[0], pair[1], offset)
        return self._ck.TopicPartition(pair[0], pair[1], offset, metadata)

    def _request(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except self._ck.KafkaException as exc:
            if _is_retriable(exc.args[0]):
                raise _unavailable(exc) from exc
            raise

    def partitions(self, topic: str) -> list[int]:
        metadata = self._request(self._consumer.list_topics, topic, timeout=_REQUEST_TIMEOUT_S)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    def _watermarks(self, pair: Pair, timeout_s: float = _REQUEST_TIMEOUT_S) -> tuple[int, int]:
        return self._request(
            self._consumer.get_watermark_offsets, self._tp(pair), timeout=timeout_s
        )

    def assign(self, starts: Mapping[Pair, int]) -> None:
        # Logical offsets are resolved here so that positions are known at once.
        resolved: dict[Pair, int] = {}
        for pair, offset in starts.items():
            if offset in (BEGINNING, END):
                low, high = self._watermarks(pair)
                offset = low if offset == BEGINNING else high
            resolved[pair] = offset
        self._consumer.assign([self._tp(p, o) for p, o in resolved.items()])
        self._positions.update(resolved)

    def committed(self, pairs: Sequence[Pair]) -> dict[Pair, tuple[int, str] | None]:
        got = self._request(
            self._consumer.committed, [self._tp(p) for p in pairs], timeout=_REQUEST_TIMEOUT_S
        )
        return {
            (tp.topic, tp.partition): (tp.offset, tp.metadata or "") if tp.offset >= 0 else None
            for tp in got
        }

    def beginning_offsets(self, pairs: Sequence[Pair]) -> dict[Pair, int]:
        return {p: self._watermarks(p)[0] for p in pairs}

    def end_offsets(self, pairs: Sequence[Pair], timeout_s: float = 30.0) -> dict[Pair, int]:
        return {p: self._watermarks(p, timeout_s)[1] for p in pairs}

    def offsets_for_times(self, pairs: Sequence[Pair], timestamp_ms: int) -> dict[Pair, int | None]:
        got = self._request(
            self._consumer.offsets_for_times,
            [self._tp(p, timestamp_ms) for p in pairs],
            timeout=_REQUEST_TIMEOUT_S,
        )
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in got}

    def poll(self, timeout_s: float, max_records: int) -> dict[Pair, Records]:
        consume = self._consumer.consume
        try:
            # What is fetched already, at once; else wait for the first record
            # only (a consume call waits for a full batch or its time-out).
            messages = consume(max_records, 0)
            if not messages:
                messages = consume(1, timeout_s)
                if messages and max_records > 1:
                    messages.extend(consume(max_records - 1, 0))
        except self._ck.KafkaException as exc:
            if _is_retriable(exc.args[0]):
                raise _unavailable(exc) from exc
            raise
        groups: dict[Pair, list[Any]] = {}
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == self._ck.KafkaError._PARTITION_EOF:
                    continue
                if _is_retriable(error):
                    raise _unavailable(self._ck.KafkaException(error))
                raise self._ck.KafkaException(error)
            pair = (m.topic(), m.partition())
            group = groups.get(pair)
            if group is None:
                group = groups[pair] = []
            group.append(m)
        # Column by column: one comprehension per field costs less than appends per record.
        out = {
            pair: Records(
                [m.value() or b"" for m in group],
                [m.offset() for m in group],
                [m.timestamp()[1] for m in group],
                [m.key() for m in group],
                [() if (h := m.headers()) is None else tuple(h) for m in group],
            )
            for pair, group in groups.items()
        }
        for pair, records in out.items():
            self._positions[pair] = records.offsets[-1] + 1
        return out

    def position(self, pair: Pair) -> int:
        return self._positions[pair]

    def highwater(self, pair: Pair) -> int | None:
        try:
            _, high = self._consumer.get_watermark_offsets(self._tp(pair), cached=True)
        except self._ck.KafkaException:
            return None
        return high if high is not None and high >= 0 else None

    def pause(self, pair: Pair) -> None:
        self._consumer.pause([self._tp(pair)])

    def commit(
        self,
        offsets: Mapping[Pair, tuple[int, str]],
        asynchronous: bool = False,
        on_done: CommitDone | None = None,
    ) -> None:
        tps = [self._tp(p, o, m) for p, (o, m) in offsets.items()]
        if asynchronous:
            self._on_commit = on_done  # served by a later consume call
            self._consumer.commit(offsets=tps, asynchronous=True)
            return
        done = self._request(self._consumer.commit, offsets=tps, asynchronous=False)
        failed = [tp for tp in done or () if tp.error is not None]
        if failed:
            raise self._ck.KafkaException(failed[0].error)

    def _committed(self, error, _partitions) -> None:
        if self._on_commit is not None:
            self._on_commit(None if error is None else self._ck.KafkaException(error))

    def close(self) -> None:
        self._consumer.close()


class ConfluentProducer:
    """``confluent_kafka.Producer``; a failed delivery goes to the send's ``on_error``."""

    def __init__(
        self, servers: Sequence[str], settings: Mapping[str, Any], config: Mapping[str, Any]
    ):
        ck = _library()
        merged = {**settings, **config}
        conf = librdkafka_config(merged)
        conf["bootstrap.servers"] = ",".join(servers)
        conf["logger"] = _LibraryLog()
        # Only failures call back into Python: a report per delivered record costs a call each.
        conf.setdefault("delivery.report.only.error", True)
        self._ck = ck
        self._producer = _configured(ck.Producer, conf)
        self._sent = 0
        self._callbacks: dict[Callable[[BaseException], None], Callable] = {}
        _check_reachable(self._producer, _connect_timeout_s(merged))

    @staticmethod
    def _delivered(on_error: Callable[[BaseException], None], error, _message) -> None:
        if error is not None:
            on_error(_library().KafkaException(error))

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        on_error: Callable[[BaseException], None],
    ) -> None:
        callback = self._callbacks.get(on_error)
        if callback is None:
            callback = self._callbacks[on_error] = functools.partial(self._delivered, on_error)
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=callback
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
        self._sent += 1
        if self._sent % _POLL_EVERY == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float | None = None) -> None:
        left = self._producer.flush(-1 if timeout_s is None else timeout_s)
        if left:
            raise BrokerUnavailable(f"{left} message(s) not delivered within {timeout_s} s")

    def close(self) -> None:
        self._producer.flush(10)
