"""Run the gateway in-process on a free loopback port, and read topics back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import requests
from aiohttp import web
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from beamstream.gateway.server import build, build_parser


@dataclass
class Gateway:
    url: str
    session: requests.Session

    def post(self, body: bytes | str, token: str | None = None, **headers: str):
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.post(f"{self.url}/v1/events", data=body, headers=headers, timeout=60)

    def get(self, path: str):
        return self.session.get(f"{self.url}{path}", timeout=30)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a /metrics page, by prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@contextlib.contextmanager
def running_gateway(argv: Sequence[str]) -> Iterator[Gateway]:
    """The gateway built from CLI flags (as ``beamstream ingest`` would), served in a thread."""
    app, _gate = build(build_parser().parse_args([*argv, "--port", "0"]))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started: dict[str, object] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            started["port"] = runner.addresses[0][1]
        except BaseException as exc:  # surfaced to the test below
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True, name="gateway")
    thread.start()
    ready.wait(30)
    if "error" in started:
        raise started["error"]  # type: ignore[misc]
    session = requests.Session()
    try:
        yield Gateway(f"http://127.0.0.1:{started['port']}", session)
    finally:
        session.close()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@dataclass
class Record:
    value: bytes
    key: bytes | None
    headers: dict[str, str]


def read_topic(
    bootstrap: str, topic: str, until: int | bytes, timeout_s: float = 30.0
) -> list[Record]:
    """Every record of ``topic`` from the start, reading until ``until`` records or
    until a record with value ``until`` (a marker) arrived, at most ``timeout_s``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s

        def done() -> bool:
            if isinstance(until, int):
                return len(out) >= until
            return any(r.value == until for r in out)

        while not done() and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    out.append(
                        Record(r.value, r.key, {k: v.decode() for k, v in (r.headers or [])})
                    )
        return out
    finally:
        consumer.close(autocommit=False)
