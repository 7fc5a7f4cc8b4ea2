"""``beamstream infer``: requests in, one prediction per id out, bad requests dead-lettered."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from apache_beam.metrics.metric import MetricsFilter

from beamstream import cli, counters
from beamstream.models import digits
from beamstream.models.artifacts import MODEL_FILE, ModelArtifactError
from beamstream.pipelines import infer
from tests.models.conftest import digits_model  # noqa: F401 - session fixture
from tests.models.helpers import read_jsonl, write_jsonl

MALFORMED = [
    "not json",
    json.dumps({"id": "bad-shape", "features": [1, 2, 3]}),
    json.dumps({"id": "bad-type", "image": [["x"] * 8] * 8}),
    json.dumps({"features": [0] * 64}),
    json.dumps({"id": "bad-rows", "image": [[0] * 8] * 7}),
]


def requests(n: int | None = None) -> tuple[list[str], dict[str, int]]:
    """Held-out digits as requests (alternately ``image`` and ``features``) and their labels."""
    X, y = digits.held_out()
    lines, labels = [], {}
    for i, (x, label) in enumerate(zip(X[:n], y[:n])):
        pixels = x.astype(int)
        rid = f"d{i}"
        if i % 2:
            record = {"id": rid, "features": pixels.tolist()}
        else:
            record = {"id": rid, "image": pixels.reshape(8, 8).tolist()}
        lines.append(json.dumps(record))
        labels[rid] = int(label)
    return lines, labels


def check_predictions(predictions: list[dict], labels: dict[str, int], version: str) -> None:
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == set(labels), "every id answered"
    assert max(counts.values()) == 1, "exactly once"
    correct = sum(p["label"] == labels[p["id"]] for p in predictions)
    assert correct / len(labels) >= 0.95
    sample = predictions[0]
    assert sample["model"] == {"name": "digits", "version": version}
    assert len(sample["probabilities"]) == 10 and abs(sum(sample["probabilities"]) - 1) < 1e-4
    assert sample["latency_ms"] >= 0


def test_file_run_answers_every_request_and_dead_letters_bad_ones(digits_model, tmp_path):  # noqa: F811
    model_dir, metadata = digits_model
    lines, labels = requests(300)
    source = write_jsonl(tmp_path / "requests.jsonl", lines[:150] + MALFORMED + lines[150:])
    result = infer.run(
        [
            f"--source={source}",
            f"--sink={tmp_path / 'out' / 'pred'}",
            f"--model={model_dir}",
            f"--dead_letter_sink={tmp_path / 'out' / 'dead'}",
            "--max_batch_size=64",
        ]
    )
    predictions = read_jsonl(tmp_path / "out", "pred")
    check_predictions(predictions, labels, metadata.version)
    dead = read_jsonl(tmp_path / "out", "dead")
    assert sorted(d["payload"] for d in dead) == sorted(MALFORMED)
    assert {d["error_type"] for d in dead} == {"RequestError"}
    assert all(d["step"] == "parse_request" and d["error"] for d in dead)
    # Each record written counted once, by the sink that wrote it.
    assert _counter(result, counters.MESSAGES_CONSUMED) == len(lines) + len(MALFORMED)
    assert _counter(result, counters.MESSAGES_PRODUCED) == len(predictions) + len(dead)


def _counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed for c in found)


@pytest.mark.integration
def test_kafka_end_to_end(digits_model, kafka_broker, tmp_path):  # noqa: F811
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    model_dir, metadata = digits_model
    lines, labels = requests()  # the whole held-out split
    requests_topic = kafka_broker.new_topic("infer-requests", partitions=2)
    predictions_topic = kafka_broker.new_topic("infer-predictions", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=5)
    for i, line in enumerate(lines + MALFORMED):
        producer.send(requests_topic, line.encode(), partition=i % 2)
    producer.flush()
    producer.close()

    infer.run(
        [
            f"--source=kafka://{kafka_broker.bootstrap}/{requests_topic}?stop=end",
            f"--sink=kafka://{kafka_broker.bootstrap}/{predictions_topic}",
            f"--model={model_dir}",
            f"--dead_letter_sink={tmp_path / 'dead'}",
            "--min_batch_size=50",
            "--max_batch_size=500",
        ]
    )

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False
    )
    consumer.assign([TopicPartition(predictions_topic, 0)])
    consumer.seek_to_beginning()
    predictions = [json.loads(m.value) for m in consumer]
    consumer.close()
    check_predictions(predictions, labels, metadata.version)
    dead = read_jsonl(tmp_path, "dead")
    assert sorted(d["payload"] for d in dead) == sorted(MALFORMED)
    assert all(d["source"].startswith(requests_topic) for d in dead)


def test_tampered_model_is_refused_before_the_pipeline_runs(digits_model, tmp_path, capsys):  # noqa: F811
    model_dir = shutil.copytree(digits_model[0], tmp_path / "model")
    (model_dir / MODEL_FILE).write_bytes((model_dir / MODEL_FILE).read_bytes() + b"\0")
    source = write_jsonl(tmp_path / "r.jsonl", requests(2)[0])
    argv = [f"--source={source}", f"--sink={tmp_path / 'p'}", f"--model={model_dir}"]
    with pytest.raises(ModelArtifactError, match="sha256"):
        infer.run(argv)
    assert cli.main(["infer", *argv]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not list(tmp_path.glob("p-*"))


def test_missing_options_are_one_line_errors(capsys):
    assert cli.main(["infer", "--source=x.jsonl"]) == 2
    assert "missing required option(s): --sink, --model" in capsys.readouterr().err
