"""``beamstream collect``: record shape, counters, host identity, config, signals, a
broker that is not there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from beamstream.collect import host as host_module
from beamstream.collect import metrics
from beamstream.collect.producer import load_config, main, parse_interval

FIELDS = {"host", "host_id", "name", "type", "value", "timestamp", "labels"}


def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 30.0) -> list:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    messages: list = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            messages.extend(batch)
    consumer.close()
    return messages


def check_shape(records: list[dict]) -> None:
    for r in records:
        assert set(r) == FIELDS
        assert r["type"] in ("gauge", "counter", "timer")
        assert isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool)
        assert r["timestamp"] > 1e12 and isinstance(r["labels"], dict)
    names = {(r["name"], r["type"]) for r in records}
    for expected in [("cpu_percent", "gauge"), ("memory_percent", "gauge"),
                     ("swap_percent", "gauge"), ("load_average", "gauge"),
                     ("net_bytes_sent", "counter"), ("net_packets_recv", "counter"),
                     ("context_switches", "counter"), ("collect_duration_ms", "timer")]:
        assert expected in names
    per_core = [r for r in records if r["name"] == "cpu_percent" and "cpu" in r["labels"]]
    assert len({r["labels"]["cpu"] for r in per_core}) == os.cpu_count()


def counters_are_monotonic(records: list[dict]) -> int:
    series: dict = defaultdict(list)
    for r in records:
        if r["type"] == "counter":
            series[(r["name"], json.dumps(r["labels"], sort_keys=True))].append(
                (r["timestamp"], r["value"])
            )
    for points in series.values():
        values = [v for _, v in sorted(points)]
        assert values == sorted(values)
    return len(series)


@pytest.mark.integration
def test_collect_three_rounds_to_kafka(kafka_broker, kafka_client, capsys):
    topic = kafka_broker.new_topic("metrics")
    uri = f"kafka://{kafka_broker.bootstrap}/{topic}?client={kafka_client}"
    assert main(["--sink", uri, "--count", "3", "--interval", "200ms"]) == 0
    published = int(capsys.readouterr().err.split(":")[1].split()[0])
    assert main(["--sink", uri, "--count", "1", "--interval", "100ms"]) == 0
    published += int(capsys.readouterr().err.split(":")[1].split()[0])
    messages = read_topic(kafka_broker.bootstrap, topic, published)
    assert len(messages) == published
    records = [json.loads(m.value) for m in messages]
    check_shape(records)
    assert len({r["timestamp"] for r in records}) == 4
    assert counters_are_monotonic(records) >= 4
    host_ids = {r["host_id"] for r in records}
    assert len(host_ids) == 1  # stable across the two runs
    assert {m.key.decode() for m in messages} == host_ids


def test_config_selects_metrics_and_adds_labels(tmp_path):
    config = tmp_path / "collect.json"
    config.write_text(json.dumps({"metrics": ["memory", "context_switches"],
                                  "labels": {"env": "test"}, "interval": "100ms"}))
    out = tmp_path / "m.jsonl"
    assert main(["--sink", str(out), "--config", str(config), "--count", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["name"] for r in records} == {
        "memory_percent", "swap_percent", "context_switches", "interrupts", "collect_duration_ms"
    }
    assert all(r["labels"]["env"] == "test" for r in records)
    assert {r["labels"].get("function") for r in records if r["type"] == "timer"} == {
        "memory", "context_switches", None
    }


def test_custom_metrics_register_by_name(tmp_path):
    @metrics.register_metric("test_answer")
    def answer():
        return [metrics.Sample("answer", metrics.GAUGE, 42, {"unit": "none"})]

    try:
        out = tmp_path / "m.jsonl"
        assert main(["--sink", str(out), "--metrics", "test_answer", "--count", "1",
                     "--interval", "10ms", "--host_id", "fixed-id"]) == 0
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(r["name"], r["value"], r["host_id"]) for r in records if r["name"] == "answer"] \
            == [("answer", 42, "fixed-id")]
        with pytest.raises(ValueError, match="already registered"):
            metrics.register_metric("test_answer")(lambda: [])
    finally:
        metrics.REGISTRY.pop("test_answer")
    with pytest.raises(KeyError, match="test_answer"):
        metrics.create_metric_functions(["test_answer"])


def test_host_id_is_generated_once_and_kept(tmp_path):
    no_machine_id = [str(tmp_path / "missing-machine-id")]
    first = host_module.host_identity(machine_id_paths=no_machine_id, state_dir=tmp_path)
    second = host_module.host_identity(machine_id_paths=no_machine_id, state_dir=tmp_path)
    assert first.source == "generated" and second.source == "stored"
    assert first.host_id == second.host_id
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    from_os = host_module.host_identity(machine_id_paths=[str(machine_id)], state_dir=tmp_path)
    assert from_os.source == "machine-id" and "0123456789abcdef" not in from_os.host_id
    assert from_os == host_module.host_identity(machine_id_paths=[str(machine_id)])
    assert host_module.host_identity("mine").host_id == "mine"


def test_sigterm_stops_after_a_flush(tmp_path):
    out = tmp_path / "m.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "beamstream.cli", "collect", "--sink", str(out),
         "--interval", "100ms", "--metrics", "memory"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["host_id"] for line in lines)
    assert "SIGTERM" in err and "0 unsent" in err and "Traceback" not in err


def test_an_unreachable_broker_is_reported_not_a_crash(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["--sink", f"kafka://127.0.0.1:{port}/metrics", "--count", "1",
                 "--interval", "10ms", "--metrics", "memory", "--drain_timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "unsent" in err and "0 samples published" in err


def test_config_and_interval_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"metrics": "cpu"}')
    with pytest.raises(ValueError, match="list of names"):
        load_config(bad)
    assert parse_interval("500ms") == 0.5 and parse_interval("2m") == 120
    with pytest.raises(ValueError):
        parse_interval("soon")
