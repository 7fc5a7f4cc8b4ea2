"""Kafka pipelines on Prism: bounded and streaming reads give the DirectRunner's results.

On Prism the Kafka source is the ``UnboundedSource`` splittable DoFn in batch
and in streaming alike (the TestStream live feed is only for the streaming
BundleBasedDirectRunner). A bounded batch run commits once it has succeeded;
a streaming run commits through bundle finalization.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from beamstream.deploy.catalog import pipeline_modules
from beamstream.launch.run import parse_options, run_pipeline
from tests.deploy.test_portable_runner import CASES, canonical, run_on, sqlite_rows
from tests.support.jsonl import read_shards
from tests.support.kafka_offsets import committed_offsets as committed

pytestmark = pytest.mark.integration
PARTITIONS = 2
# What the DirectRunner runs batch pipelines on when it finds no Prism. Named
# directly: a DirectRunner here would first try to download Prism, and Beam
# keeps one Prism job server per process (PrismRunner.shared_handle), which can
# then stay the failed one without --prism_location for the next Prism run.
FNAPI = ["--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"]


def produce_file(bootstrap: str, topic: str, path: Path) -> dict[int, int]:
    """Produces the file's lines round-robin; returns records per partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    counts = dict.fromkeys(range(PARTITIONS), 0)
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        producer.send(topic, line.encode(), partition=i % PARTITIONS)
        counts[i % PARTITIONS] += 1
    producer.flush()
    producer.close()
    return counts


def bounded_uri(bootstrap: str, topic: str, group: str) -> str:
    """The topic from the beginning to its end, committing to ``group``."""
    return f"kafka://{bootstrap}/{topic}?group={group}&start=earliest&stop=end"


def kafka_input(kafka_broker, name: str, models, tmp_path: Path):
    """(topic, records per partition, extra args) holding the case's input."""
    write_input, _ = CASES[name]
    path = tmp_path / "input.jsonl"
    extra = write_input(path, models)
    topic = kafka_broker.new_topic(f"prism-{name}", partitions=PARTITIONS)
    return topic, produce_file(kafka_broker.bootstrap, topic, path), extra


def outputs_of(name: str, out: Path) -> dict[str, list[str]]:
    _, outputs = CASES[name]
    results = {o: canonical(read_shards(str(out / o))) for o in (*outputs, "dead_letter_sink")}
    if name == "store" and (out / "samples.db").exists():
        results["database"] = canonical(sqlite_rows(out / "samples.db"))
    return results


def answers(results: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each output's distinct records without their pane: the answers, not how often.

    Prism 2.77 fires an extra LATE pane repeating each window's accumulated
    value when the window's allowed lateness ends (with no late data; Beam's
    FnApiRunner fires once), so windowed outputs are compared by value.
    """

    def strip(row: str) -> str:
        record = json.loads(row)
        record.pop("pane", None)
        return json.dumps(record, sort_keys=True)

    return {option: sorted({strip(r) for r in rows}) for option, rows in results.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bounded_kafka_on_prism_matches_direct_runner_and_commits(
    name, kafka_broker, models, prism_args, tmp_path
):
    topic, counts, extra = kafka_input(kafka_broker, name, models, tmp_path)
    bs = kafka_broker.bootstrap

    def uri(group: str) -> str:
        return bounded_uri(bs, topic, group)

    direct = run_on(FNAPI, name, uri("direct"), extra, tmp_path / "direct")
    prism = run_on(prism_args, name, uri("prism"), extra, tmp_path / "prism")

    assert all(direct.values()), "every output has records"
    assert answers(prism) == answers(direct)
    assert committed(bs, topic, "prism") == counts
    assert committed(bs, topic, "direct") == counts


@pytest.mark.parametrize("name", sorted(set(CASES) - {"frames"}))
def test_streaming_kafka_on_prism_gives_the_direct_runners_results(
    name, kafka_broker, models, prism_args, tmp_path
):
    """frames streams in test_prism_streaming.py (windows, commits, restart)."""
    topic, _, extra = kafka_input(kafka_broker, name, models, tmp_path)
    bs = kafka_broker.bootstrap
    want = run_on(FNAPI, name, f"kafka://{bs}/{topic}?stop=end", extra, tmp_path / "direct")

    module = pipeline_modules()[name]
    _, outputs = CASES[name]
    out = tmp_path / "prism"
    out.mkdir()
    args = [
        *prism_args,
        "--streaming",
        f"--source=kafka://{bs}/{topic}?group=stream&start=earliest",
        *(f"--{o}={out / o}" for o in (*outputs, "dead_letter_sink")),
        *extra,
    ]
    if name == "store":
        args.append(f"--sink=sqlite:///{out / 'samples.db'}")
    options = parse_options(args, module.REQUIRED)
    result = run_pipeline(module.build, options, wait=False)
    try:
        deadline = time.monotonic() + 60
        got = answers(outputs_of(name, out))
        while got != answers(want) and time.monotonic() < deadline:
            assert str(result.state) == "RUNNING", result.state
            time.sleep(0.5)
            got = answers(outputs_of(name, out))
    finally:
        result.cancel()
    assert got == answers(want)
    assert all(committed(bs, topic, "stream").values()), "offsets committed by finalization"
