"""``beamstream collect``: measure this host every interval and publish the samples.

Each round calls the configured metric functions and publishes one message per
sample::

    {"host": "web-1", "host_id": "9f0c...", "name": "cpu_percent", "type": "gauge",
     "value": 12.5, "timestamp": 1718000000000, "labels": {"cpu": "0"}}

plus a ``collect_duration_ms`` timer per function and for the whole round.
Messages are keyed by host id (one host's samples stay in order on one Kafka
partition). A broker that goes away is reported and retried with backoff;
samples wait in a bounded buffer meanwhile (the oldest are dropped, and
counted, when it is full). Ctrl-C / SIGTERM stop after a last flush.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from beamstream.collect.host import HostIdentity, host_identity
from beamstream.collect.metrics import (
    DEFAULT_METRICS,
    REGISTRY,
    TIMER,
    MetricFunction,
    create_metric_functions,
)
from beamstream.io.uris import FileUri, KafkaUri, UriError, parse_sink

_LOG = logging.getLogger(__name__)

DURATION_METRIC = "collect_duration_ms"


class Sink(Protocol):
    def publish(self, value: Any, key: Any = None, attributes: Any = None) -> None: ...
    def flush(self, timeout: float | None = None) -> int: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- config


@dataclass
class CollectConfig:
    """What to collect: metric function names, extra labels, modules to import first."""

    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    labels: dict[str, str] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)
    interval_s: float | None = None


def load_config(path: str | Path) -> CollectConfig:
    """Reads a JSON config: ``{"metrics": [...], "labels": {...}, "imports": [...],
    "interval": "5s"}`` (every key optional)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    unknown = set(raw) - {"metrics", "labels", "imports", "interval"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    config = CollectConfig()
    if "metrics" in raw:
        if not isinstance(raw["metrics"], list) or not all(
            isinstance(m, str) for m in raw["metrics"]
        ):
            raise ValueError(f"{path}: 'metrics' must be a list of names")
        config.metrics = raw["metrics"]
    if not isinstance(raw.get("labels", {}), dict):
        raise ValueError(f"{path}: 'labels' must be an object")
    config.labels = {str(k): str(v) for k, v in raw.get("labels", {}).items()}
    config.imports = [str(m) for m in raw.get("imports", [])]
    if "interval" in raw:
        config.interval_s = parse_interval(str(raw["interval"]))
    return config


_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_interval(text: str) -> float:
    """``"500ms"``, ``"1s"``, ``"2m"``, ``"1.5"`` (seconds) → seconds."""
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"interval {text!r}: use e.g. 500ms, 1s, 2m")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"interval {text!r} must be positive")
    return seconds


# --------------------------------------------------------------------------- one round


def collect_round(
    functions: Mapping[str, MetricFunction],
    host: HostIdentity,
    labels: Mapping[str, str] | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> list[dict[str, Any]]:
    """Calls every function once; returns records sharing one timestamp."""
    timestamp = now_ms()
    extra = dict(labels or {})
    records: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(name: str, kind: str, value: float, sample_labels: Mapping[str, str]):
        return {
            "host": host.hostname,
            "host_id": host.host_id,
            "name": name,
            "type": kind,
            "value": value,
            "timestamp": timestamp,
            "labels": {**extra, **sample_labels},
        }

    for function_name, function in functions.items():
        begin = time.perf_counter()
        try:
            samples = list(function())
        except Exception as exc:  # one broken metric must not stop the others
            _LOG.warning(
                "metric function %s failed: %s: %s", function_name, type(exc).__name__, exc
            )
            samples = []
        elapsed_ms = (time.perf_counter() - begin) * 1000
        records += [record(s.name, s.type, s.value, s.labels) for s in samples]
        records.append(record(DURATION_METRIC, TIMER, round(elapsed_ms, 3),
                              {"function": function_name}))
    total_ms = (time.perf_counter() - started) * 1000
    records.append(record(DURATION_METRIC, TIMER, round(total_ms, 3), {}))
    return records


# --------------------------------------------------------------------------- sinks


class JsonLinesSink:
    """Appends records to one JSON Lines file (``--sink path.jsonl``)."""

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.target = path
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._written = 0

    def publish(self, value: Any, key: Any = None, attributes: Any = None) -> None:
        self._handle.write(json.dumps(value, separators=(",", ":")) + "\n")
        self._written += 1

    def flush(self, timeout: float | None = None) -> int:
        self._handle.flush()
        written, self._written = self._written, 0
        return written

    def close(self) -> None:
        self._handle.close()


def open_sink(uri: str) -> Sink:
    parsed = parse_sink(uri)
    if isinstance(parsed, FileUri):
        return JsonLinesSink(parsed.path)
    from beamstream.io.clients import open_publisher

    config: dict[str, Any] = {}
    if isinstance(parsed, KafkaUri):
        # Fail fast into our own backoff instead of blocking in the client.
        config.update(max_block_ms=10_000, bootstrap_timeout_ms=5_000)
    return open_publisher(parsed, **config)


def broker_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the broker is not there right now"."""
    from beamstream.io.clients import ClientError

    errors: list[type[BaseException]] = [ClientError, OSError]
    try:
        from kafka.errors import KafkaError

        errors.append(KafkaError)
    except ImportError:
        pass
    try:
        from google.api_core.exceptions import GoogleAPIError

        errors.append(GoogleAPIError)
    except ImportError:
        pass
    return tuple(errors)


# --------------------------------------------------------------------------- delivery


class Delivery:
    """Publishes buffered records, reopening the sink with backoff when it fails."""

    def __init__(
        self,
        open_sink_fn: Callable[[], Sink],
        max_pending: int = 100_000,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        flush_timeout_s: float = 30.0,
    ):
        self._flush_timeout_s = flush_timeout_s
        self._open = open_sink_fn
        self._sink: Sink | None = None
        self._pending: deque[dict[str, Any]] = deque()
        self._max_pending = max_pending
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._backoff = initial_backoff_s
        self._retry_at = 0.0
        self._errors = broker_errors()
        self.delivered = 0
        self.dropped = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        self._pending.extend(records)
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            self.dropped += overflow
            _LOG.warning("buffer full: dropped %d oldest samples (%d in total)", overflow,
                         self.dropped)

    def seconds_until_retry(self) -> float:
        return max(0.0, self._retry_at - time.monotonic())

    def try_deliver(self, force: bool = False) -> bool:
        """Publishes everything pending; False (and a backoff) when the broker fails."""
        if not self._pending:
            return True
        if not force and self.seconds_until_retry() > 0:
            return False
        batch = list(self._pending)
        try:
            if self._sink is None:
                self._sink = self._open()
            host_key = None
            for record in batch:
                host_key = record.get("host_id", host_key)
                self._sink.publish(record, key=host_key)
            self._sink.flush(timeout=self._flush_timeout_s)
        except self._errors as exc:
            self.failures += 1
            _LOG.warning(
                "cannot publish %d samples (%s: %s); retrying in %.1fs",
                len(batch), type(exc).__name__, exc, self._backoff,
            )
            self._close_quietly()
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self._max)
            return False
        # Everything up to the flush is delivered; a failed flush re-sends the
        # batch (duplicates are harmless: the store upserts on the sample key).
        for _ in batch:
            self._pending.popleft()
        self.delivered += len(batch)
        if self._backoff != self._initial:
            _LOG.warning("publishing again after %d failed attempt(s)", self.failures)
        self._backoff = self._initial
        self._retry_at = 0.0
        return True

    def _close_quietly(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except self._errors as exc:
                _LOG.info("closing the failed sink: %s", exc)

    def close(self) -> None:
        self._close_quietly()


# --------------------------------------------------------------------------- the loop


def run_collector(
    functions: Mapping[str, MetricFunction],
    host: HostIdentity,
    delivery: Delivery,
    interval_s: float,
    count: int | None = None,
    labels: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    drain_timeout_s: float = 30.0,
) -> int:
    """Collects ``count`` rounds (or until ``stop``), then drains; returns rounds done."""
    stop = stop or threading.Event()
    for function in functions.values():  # prime rate-based metrics (cpu percent)
        try:
            list(function())
        except Exception as exc:  # reported again, with its name, each round
            _LOG.debug("priming a metric function failed: %s", exc)
    rounds = 0
    next_round = time.monotonic() + min(interval_s, 0.1)
    while not stop.is_set() and (count is None or rounds < count):
        stop.wait(max(0.0, next_round - time.monotonic()))
        if stop.is_set():
            break
        next_round = max(next_round + interval_s, time.monotonic())
        delivery.add(collect_round(functions, host, labels))
        rounds += 1
        delivery.try_deliver()
    deadline = time.monotonic() + drain_timeout_s
    while delivery.pending and time.monotonic() < deadline:
        if delivery.try_deliver():
            break
        time.sleep(max(0.0, min(delivery.seconds_until_retry(), deadline - time.monotonic())))
    delivery.close()
    return rounds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream collect",
        description=(__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sink", help="kafka://host:port/topic, pubsub://projects/P/topics/T "
                        "or a .jsonl path.")
    parser.add_argument("--interval", default=None, help="Time between rounds (default 1s), "
                        "e.g. 500ms, 10s, 1m.")
    parser.add_argument("--count", type=int, default=None, help="Stop after N rounds.")
    parser.add_argument("--config", default=None, help="JSON file: metrics, labels, imports, "
                        "interval.")
    parser.add_argument("--metrics", default=None, help="Comma-separated metric functions "
                        "(overrides the config's list).")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        help="Python module to import first (registers custom metrics).")
    parser.add_argument("--host_id", default=None, help="Override the stable host id.")
    parser.add_argument("--drain_timeout", type=float, default=30.0,
                        help="Seconds to keep retrying unsent samples when stopping.")
    parser.add_argument("--list", action="store_true", help="List metric functions and exit.")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv))
    try:
        config = load_config(args.config) if args.config else CollectConfig()
    except ValueError as exc:
        parser.error(str(exc))
    for module in config.imports + args.imports:
        importlib.import_module(module)
    if args.list:
        for name, function in REGISTRY.items():
            summary = (function.__doc__ or "").strip().splitlines()
            print(f"{name:<18} {summary[0] if summary else ''}")
        return 0
    if not args.sink:
        parser.error("--sink is required")
    try:
        parse_sink(args.sink)
    except UriError as exc:
        parser.error(str(exc))
    names = args.metrics.split(",") if args.metrics else config.metrics
    try:
        functions = create_metric_functions([n.strip() for n in names if n.strip()])
        interval = parse_interval(args.interval) if args.interval else (config.interval_s or 1.0)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    if args.count is not None and args.count < 1:
        parser.error("--count must be >= 1")

    host = host_identity(args.host_id)
    stop = threading.Event()

    def request_stop(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: stop draining too
            raise KeyboardInterrupt
        _LOG.warning("%s: stopping after a last flush", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    delivery = Delivery(lambda: open_sink(args.sink))
    try:
        rounds = run_collector(
            functions, host, delivery, interval, args.count, config.labels, stop,
            drain_timeout_s=args.drain_timeout,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(
        f"collected {rounds} round(s) on {host.hostname} ({host.host_id}): "
        f"{delivery.delivered} samples published, {delivery.pending} unsent, "
        f"{delivery.dropped} dropped",
        file=sys.stderr,
    )
    return 0 if delivery.pending == 0 and delivery.dropped == 0 else 1
