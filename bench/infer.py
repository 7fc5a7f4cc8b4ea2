"""Inference throughput: ``beamstream infer`` on the DirectRunner vs same-run references.

    python -m bench.infer [--requests 200000] [--max_batch_size 2000] [--workdir DIR]
                          [--kafka_requests 200000 | --kafka_requests 0]

Writes N digit requests (held-out images, alternately as ``features`` and as
8x8 ``image``) to a JSON Lines file, then in the same run measures

* the pipeline: file -> parse -> RunInference (keyed, verified handler) ->
  format -> file, on the DirectRunner (FnApiRunner in batch), start-up included;
* ``predict_proba`` alone on the same requests as arrays, in batches of the same size;
* a plain Python loop: json.loads -> predict_proba in batches -> json.dumps.

and prints the rates and the pipeline/raw ratio. Target: >= 20,000 predictions/s.

Then Kafka -> Kafka (``--kafka_requests``, 0 skips it), on the tests' broker
(Apache Kafka when installed, else Tansu): the requests are produced to a
4-partition topic; the raw drain of that topic by the same client library
(``--client``; assign + poll, no processing) is measured, then ``beamstream infer`` reads it bounded
(``stop=end``) and writes the predictions to a second topic. A plain loop
with the same client (consume, json, predict_proba, json, produce; no checks)
runs the same requests between topics too: what one Python core does without
Beam. Printed: the rates, the ratios (target >= 0.5x the drain), and whether
every request was answered exactly once.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

import numpy as np

TARGET = 20_000
KAFKA_TARGET = 0.5  # of the raw drain
KAFKA_PARTITIONS = 4


def write_requests(path: str, n: int) -> np.ndarray:
    from beamstream.models import digits

    X, _ = digits.held_out()
    rows = np.resize(np.arange(len(X)), n)
    with open(path, "w", encoding="utf-8") as handle:
        for i, r in enumerate(rows):
            pixels = X[r].astype(int)
            if i % 2:
                record = {"id": f"q{i}", "features": pixels.tolist()}
            else:
                record = {"id": f"q{i}", "image": pixels.reshape(8, 8).tolist()}
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return X[rows]


class Clock:
    """Wall and CPU seconds of this process (the DirectRunner runs in it)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def raw_predict_rate(model, X: np.ndarray, batch: int) -> Clock:
    with Clock() as clock:
        for i in range(0, len(X), batch):
            model.predict_proba(X[i : i + batch])
    return clock


def plain_loop_rate(model, path: str, batch: int) -> Clock:
    clock = Clock().__enter__()
    ids: list[str] = []
    rows: list[np.ndarray] = []
    out = 0

    def flush() -> int:
        proba = model.predict_proba(np.asarray(rows))
        lines = [
            json.dumps({"id": i, "label": int(p.argmax()), "probabilities": p.round(6).tolist()})
            for i, p in zip(ids, proba)
        ]
        return len(lines)

    with open(path, "rb") as handle:
        for line in handle:
            record = json.loads(line)
            ids.append(record["id"])
            rows.append(np.asarray(record.get("features") or record["image"], float).reshape(-1))
            if len(rows) >= batch:
                out += flush()
                ids, rows = [], []
    if rows:
        out += flush()
    clock.__exit__()
    return clock


def pipeline_rate(model_dir: str, path: str, out_prefix: str, batch: int) -> tuple[Clock, int]:
    from beamstream.pipelines import infer

    clock = Clock().__enter__()
    infer.run(
        [
            f"--source={path}",
            f"--sink={out_prefix}",
            f"--model={model_dir}",
            f"--max_batch_size={batch}",
            f"--min_batch_size={min(batch, 500)}",
            "--runner=DirectRunner",
        ]
    )
    clock.__exit__()
    count = 0
    for shard in glob.glob(out_prefix + "-*.jsonl"):
        with open(shard, "rb") as handle:
            count += sum(1 for _ in handle)
    return clock, count


def request_lines(path: str, n: int) -> list[str]:
    """The first ``n`` requests of the file, repeated with fresh ids when it has fewer."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
    out = []
    for i in range(n):
        record = json.loads(lines[i % len(lines)])
        record["id"] = f"k{i}"
        out.append(json.dumps(record, separators=(",", ":")))
    return out


def read_ids(bootstrap: str, topic: str, expected: int, idle_s: float = 10.0) -> list[str]:
    """Every ``id`` on ``topic``: until ``expected`` are read or ``idle_s`` pass without any."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ids: list[str] = []
    last = time.monotonic()
    while len(ids) < expected and time.monotonic() - last < idle_s:
        for records in consumer.poll(timeout_ms=500).values():
            ids.extend(json.loads(r.value)["id"] for r in records)
            last = time.monotonic()
    consumer.close()
    return ids


def plain_kafka_loop(bootstrap: str, source: str, sink: str, n: int, client: str, model) -> float:
    """Requests/s of the plain loop between topics: consume, parse, predict, format, produce.

    The same client library as the pipeline, batches of up to 2,000 as polled;
    no validation, dead letters or counters. What one Python core can do here.
    """
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    def predict(values: list[bytes]) -> list[bytes]:
        records = [json.loads(v) for v in values]
        rows = [np.asarray(r.get("features") or r["image"], float).reshape(-1) for r in records]
        proba = model.predict_proba(np.asarray(rows))
        return [
            json.dumps(
                {"id": r["id"], "label": int(p.argmax()), "probabilities": p.round(6).tolist()}
            ).encode()
            for r, p in zip(records, proba)
        ]

    started = time.monotonic()
    done = 0
    if client == "confluent":
        from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
        from confluent_kafka import TopicPartition as ConfluentPartition

        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-loop", "enable.auto.commit": False}
        )
        parts = sorted(consumer.list_topics(source, timeout=10).topics[source].partitions)
        consumer.assign([ConfluentPartition(source, p, OFFSET_BEGINNING) for p in parts])
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        while done < n:
            values = [m.value() for m in consumer.consume(2000, 0.5) if m.error() is None]
            for out in predict(values) if values else ():
                while True:
                    try:
                        producer.produce(sink, out)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
            done += len(values)
        producer.flush(60)
        consumer.close()
    else:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=2000
        )
        tps = [TopicPartition(source, p) for p in sorted(consumer.partitions_for_topic(source))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
        while done < n:
            for records in consumer.poll(timeout_ms=500).values():
                for out in predict([r.value for r in records]):
                    producer.send(sink, out)
                done += len(records)
        producer.flush()
        producer.close()
        consumer.close()
    return done / (time.monotonic() - started)


def kafka_section(
    model_dir: str, path: str, n: int, batch: int, client: str, workers: int = 1
) -> dict:
    """Requests topic -> infer (bounded) -> predictions topic, beside the raw drain.

    ``workers`` > 1: Beam's multi-processing mode, the partitions' reads split
    among that many worker processes.
    """
    from collections import Counter

    from beamstream.pipelines import infer
    from bench.kafka_bench import broker, produce, raw_drain

    lines = request_lines(path, n)
    with broker() as b:
        requests_topic = b.create_topic("bench-infer-requests", partitions=KAFKA_PARTITIONS)
        predictions_topic = b.create_topic("bench-infer-predictions", partitions=KAFKA_PARTITIONS)
        produce(b.bootstrap, requests_topic, lines, KAFKA_PARTITIONS)
        drain = raw_drain(b.bootstrap, requests_topic, n, client)
        from beamstream.models.artifacts import load_model

        loop_topic = b.create_topic("bench-infer-loop", partitions=KAFKA_PARTITIONS)
        loop = plain_kafka_loop(
            b.bootstrap, requests_topic, loop_topic, n, client, load_model(model_dir)[0]
        )
        clock = Clock().__enter__()
        infer.run(
            [
                f"--source=kafka://{b.bootstrap}/{requests_topic}?stop=end&client={client}",
                f"--sink=kafka://{b.bootstrap}/{predictions_topic}?client={client}",
                f"--model={model_dir}",
                f"--max_batch_size={batch}",
                "--runner=DirectRunner",
                *(
                    [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
                    if workers > 1
                    else []
                ),
            ]
        )
        clock.__exit__()
        ids = read_ids(b.bootstrap, predictions_topic, n)
        kind = b.kind
    counts = Counter(ids)
    wanted = {f"k{i}" for i in range(n)}
    return {
        "broker": kind,
        "drain": drain,
        "loop": loop,
        "clock": clock,
        "answered": len(ids),
        "missing": len(wanted - set(counts)),
        "duplicated": sum(1 for c in counts.values() if c > 1),
        "unexpected": len(set(counts) - wanted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--max_batch_size", type=int, default=2000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--kafka_requests",
        type=int,
        default=200_000,
        help="Requests for the Kafka -> Kafka section (0: skip it).",
    )
    parser.add_argument(
        "--client",
        choices=("kafka-python", "confluent"),
        default="kafka-python",
        help="Kafka client library of the pipeline and of its raw-drain reference.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Worker processes of the Kafka -> Kafka pipeline (Beam's multi_processing mode).",
    )
    args = parser.parse_args()

    from beamstream.models.artifacts import load_model
    from beamstream.models.train import train_digits

    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-infer-")
    model_dir = os.path.join(workdir, "model")
    train_digits(model_dir)
    model, _ = load_model(model_dir)
    path = os.path.join(workdir, "requests.jsonl")
    X = write_requests(path, args.requests)

    n = args.requests
    # The pipeline first: BLAS threads left spinning by the reference runs would slow it.
    run, count = pipeline_rate(
        model_dir, path, os.path.join(workdir, "out", "pred"), args.max_batch_size
    )
    kafka = None
    if args.kafka_requests > 0:
        kafka = kafka_section(
            model_dir, path, args.kafka_requests, args.max_batch_size, args.client, args.workers
        )
    raw = raw_predict_rate(model, X, args.max_batch_size)
    loop = plain_loop_rate(model, path, args.max_batch_size)
    load = os.getloadavg()[0]
    print(f"requests: {n:,}, max_batch_size {args.max_batch_size}, load average {load:.1f}")
    print(f"{'':34}{'by wall clock':>16}{'by CPU time':>16}")
    rows = (
        ("raw predict_proba", raw, n),
        ("plain loop (json+predict+json)", loop, n),
        ("beamstream infer, DirectRunner", run, count),
    )
    for label, clock, done in rows:
        print(f"{label:34}{done / clock.wall:>14,.0f}/s{done / max(clock.cpu, 1e-9):>14,.0f}/s")
    print(f"pipeline wrote {count:,} predictions (start-up included)")
    print(f"pipeline / raw predict_proba (wall): {raw.wall / run.wall * count / n:.3f}")
    print(f"pipeline / plain loop (wall):        {loop.wall / run.wall * count / n:.3f}")
    rate = count / run.wall
    print(f"target {TARGET:,}/s: {'met' if rate >= TARGET else 'NOT met'} ({rate:,.0f}/s)")
    if kafka is not None:
        k, clock = args.kafka_requests, kafka["clock"]
        ratio = kafka["answered"] / clock.wall / kafka["drain"]
        exact = not (kafka["missing"] or kafka["duplicated"] or kafka["unexpected"])
        print(f"Kafka -> Kafka, {k:,} requests, {KAFKA_PARTITIONS} partitions, {kafka['broker']}")
        print(f"{f'raw {args.client} drain':34}{kafka['drain']:>14,.0f}/s")
        loop_ratio = kafka["loop"] / kafka["drain"]
        print(
            f"{'plain loop topic -> topic':34}{kafka['loop']:>14,.0f}/s"
            f"  ({loop_ratio:.3f} x the drain: one core, same client, no checks)"
        )
        rate, cpu_rate = kafka["answered"] / clock.wall, k / max(clock.cpu, 1e-9)
        workers = f", {args.workers} workers" if args.workers > 1 else ""
        label = f"beamstream infer, bounded Kafka{workers}"
        # the CPU time is this process's: with workers, most of it is theirs
        cpu_text = f"{cpu_rate:>14,.0f}/s" if args.workers == 1 else ""
        print(f"{label:34}{rate:>14,.0f}/s{cpu_text}")
        print(f"infer / plain loop topic -> topic (wall): {rate / kafka['loop']:.3f}")
        print(
            f"infer / raw drain (wall): {ratio:.3f} "
            f"(target >= {KAFKA_TARGET}: {'met' if ratio >= KAFKA_TARGET else 'NOT met'})"
        )
        print(
            f"answered exactly once: {exact} ({kafka['answered']:,} predictions, "
            f"{kafka['missing']} missing, {kafka['duplicated']} duplicated, "
            f"{kafka['unexpected']} unexpected)"
        )
    if load > (os.cpu_count() or 1):
        print("note: load average above the core count: other processes shared the CPUs")
    print("(CPU time counts every thread of this process: BLAS threads, the runner's workers)")


if __name__ == "__main__":
    main()
