"""Load test of the HTTP ingest gateway on loopback, bounded in requests and time.

    .venv/bin/python -m bench.ingest_load [--requests 4000] [--events-per-request 10]
        [--concurrency 32] [--time-limit 60]

Starts a throwaway broker (Apache Kafka, else Tansu) and ``beamstream ingest`` (own process, as in
production), drives POST /v1/events with an aiohttp client, then reads the
topic back and checks that every acknowledged event is there. Prints
requests/s, events/s and latency percentiles, with a same-run reference: the
plain publisher pushing the same events straight to the broker.
Client, gateway and broker share the machine's cores, so figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp

from beamstream.io.clients import open_publisher
from bench.kafka_bench import broker
from tests.gateway.harness import read_topic
from tests.services.ports import free_port, wait_for_port


async def _drive(url: str, requests: int, per_request: int, concurrency: int, limit_s: float):
    latencies: list[float] = []
    acked: set[str] = set()
    errors: dict[str, int] = {}
    next_request = iter(range(requests))
    deadline = time.monotonic() + limit_s

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in next_request:
            if time.monotonic() > deadline:
                return
            ids = [f"r{n}-{i}" for i in range(per_request)]
            body = "\n".join(json.dumps({"id": i, "user": f"u{n % 97}", "v": n}) for i in ids)
            started = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/x-ndjson"}
                ) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
            if status == 200:
                acked.update(ids)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, acked, errors


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--events-per-request", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--time-limit", type=float, default=60.0)
    args = p.parse_args(argv)

    with broker() as kafka:
        topic = kafka.new_topic("ingest-bench", partitions=4)
        ref_topic = kafka.new_topic("ingest-bench-ref", partitions=4)
        sink = f"kafka://{kafka.bootstrap}/{topic}"
        port = free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "beamstream.cli", "ingest", "--sink", sink,
             "--port", str(port), "--key-field", "user"],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            alive = lambda: gateway.poll() is None  # noqa: E731
            if not wait_for_port("127.0.0.1", port, time.monotonic() + 30, alive):
                print("gateway did not start", file=sys.stderr)
                return 1
            url = f"http://127.0.0.1:{port}/v1/events"
            elapsed, latencies, acked, errors = asyncio.run(
                _drive(url, args.requests, args.events_per_request, args.concurrency,
                       args.time_limit)
            )
        finally:
            gateway.terminate()
            gateway.wait(30)

        records = read_topic(kafka.bootstrap, topic, len(acked), 120)
        found = {json.loads(r.value)["id"] for r in records}
        missing = len(acked - found)

        total = args.requests * args.events_per_request
        started = time.perf_counter()
        with open_publisher(f"kafka://{kafka.bootstrap}/{ref_topic}") as pub:
            for n in range(total):
                pub.publish(json.dumps({"id": f"r{n}", "user": f"u{n % 97}", "v": n}),
                            key=f"u{n % 97}")
            pub.flush(timeout=120)
        ref_elapsed = time.perf_counter() - started

    done = len(latencies)
    print(f"gateway: {done} requests x {args.events_per_request} events, "
          f"concurrency {args.concurrency}, {elapsed:.1f} s (cpus: {os.cpu_count()})")
    print(f"  {done / elapsed:,.0f} requests/s, {len(acked) / elapsed:,.0f} events/s")
    print(f"  latency p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms, "
          f"max {max(latencies, default=float('nan')) * 1000:.1f} ms")
    print(f"  errors: {errors or 0}; acknowledged events missing from the topic: {missing} "
          f"of {len(acked)}")
    print(f"reference: plain publisher, {total} events straight to the broker: "
          f"{total / ref_elapsed:,.0f} events/s")
    return 0 if not errors and not missing and done == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
