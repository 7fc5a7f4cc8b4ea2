"""The exported metrics as real Prometheus and a real Pushgateway see them.

A streaming ``beamstream frames`` run (a subprocess, as a user runs it, on the
test broker) serves ``--metrics_port``; a Prometheus server scrapes it every
second and its query API must show the contract's names and labels with the
frames read and the invalid ones. The same run and a batch run push to a
Pushgateway, which must hold them under ``job``/``app``.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from beamstream.pipelines import frames
from tests.services.ports import free_port
from tests.services.prometheus import Prometheus, Pushgateway, running
from tests.support.frames_job import Frames, finish, frame_lines, log_of, produce

pytestmark = pytest.mark.integration

APP, JOB = "frames-prom", "prom-it"
SELECT = f'{{app="{APP}",job="{JOB}"}}'


def _invalid_lines() -> list[str]:
    """Frames the pipeline must reject, of two kinds."""
    return ["not json"] * 9 + [json.dumps({"timestamp": 1_700_000_000 + i}) for i in range(8)]


def _wait_for(check, timeout: float, what: str, process=None):
    """Polls ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None:
            assert process.poll() is None, log_of(process)[-3000:]
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout} s (last: {last!r})")


def _value(vector: list[dict]) -> float | None:
    return float(vector[0]["value"][1]) if len(vector) == 1 else None


def _pushed(gateway: Pushgateway, job: str, app: str) -> dict[str, list[dict]]:
    """Metric families the Pushgateway holds for the group job/app: name -> samples."""
    for group in gateway.groups():
        labels = group["labels"]
        if labels.get("job") == job and labels.get("app") == app:
            return {
                name: family["metrics"]
                for name, family in group.items()
                if isinstance(family, dict) and "metrics" in family
            }
    return {}


def test_prometheus_scrapes_a_streaming_run_and_a_pushgateway_receives_it(
    kafka_broker, tmp_path
):
    topics = {
        "in": kafka_broker.new_topic("prom-in", partitions=2),
        "sec": kafka_broker.new_topic("prom-sec", partitions=1),
        "min": kafka_broker.new_topic("prom-min", partitions=1),
        "dlq": kafka_broker.new_topic("prom-dlq", partitions=1),
    }
    valid = frame_lines(0, 30, seed=7)
    invalid = _invalid_lines()
    lines = valid + invalid
    produce(kafka_broker.bootstrap, topics["in"], lines)
    job = Frames(kafka_broker.bootstrap, topics, group="g-prometheus")
    port = free_port()
    (tmp_path / "prom").mkdir()
    (tmp_path / "push").mkdir()
    with (
        running(Pushgateway, tmp_path / "push") as gateway,
        running(Prometheus, tmp_path / "prom", [f"127.0.0.1:{port}"]) as prometheus,
    ):
        process = job.start(
            False,
            f"--metrics_port={port}",
            f"--app_name={APP}",
            f"--job_name={JOB}",
            f"--dead_letter_sink=kafka://{kafka_broker.bootstrap}/{topics['dlq']}",
            f"--pushgateway={gateway.url}",
            "--push_interval=1",
        )
        try:
            consumed = _wait_for(
                lambda: _value(prometheus.query(f"messages_consumed_total{SELECT}")) == len(lines),
                180,
                f"messages_consumed_total == {len(lines)} in Prometheus",
                process,
            )
            assert consumed
            errors = _wait_for(
                lambda: _value(prometheus.query(f"sum(message_errors_total{SELECT})")),
                30,
                "message_errors_total",
                process,
            )
            assert errors == len(invalid)
            by_exception = prometheus.query(f"message_errors_total{SELECT}")
            assert by_exception and all(
                {"app", "job", "exception"} <= series["metric"].keys() for series in by_exception
            )
            assert {s["metric"]["exception"] for s in by_exception} <= {"InvalidFrame"}
            assert _value(prometheus.query(f"dead_letters_total{SELECT}")) == len(invalid)
            assert _value(prometheus.query(f"messages_produced_total{SELECT}")) is not None
            series = prometheus.query(f"messages_consumed_total{SELECT}")[0]["metric"]
            assert series["app"] == APP and series["job"] == JOB
            assert not prometheus.query('{__name__=~"beamstream_.*"}')

            live = _wait_for(
                lambda: _pushed(gateway, JOB, APP).get("messages_consumed_total"),
                30,
                "a push of messages_consumed_total",
                process,
            )
            assert float(live[0]["value"]) == len(lines)
            assert live[0]["labels"]["app"] == APP and live[0]["labels"]["job"] == JOB
        finally:
            process.send_signal(signal.SIGTERM)
            code, log = finish(process, 120)
        assert code == 0, log[-3000:]


def test_a_batch_run_pushes_its_totals_to_the_pushgateway(tmp_path):
    source = tmp_path / "frames.jsonl"
    valid = [
        json.dumps({"timestamp": 1_700_000_000 + i / 10, "uid": f"u{i % 5}"}) for i in range(300)
    ]
    source.write_text("\n".join(valid + _invalid_lines()) + "\n")
    (tmp_path / "push").mkdir()
    with running(Pushgateway, tmp_path / "push") as gateway:
        frames.run(
            [
                f"--source={source}",
                f"--per_second_sink={tmp_path}/sec",
                f"--per_minute_sink={tmp_path}/min",
                f"--dead_letter_sink={tmp_path}/dead",
                f"--pushgateway={gateway.url}",
                "--app_name=frames/batch",  # a '/' takes the Pushgateway's base64 form
                "--job_name=push-it",
                "--metrics_namespace=shop",
            ]
        )
        pushed = _pushed(gateway, "push-it", "frames/batch")
        assert pushed, gateway.groups()
        consumed = pushed["shop_messages_consumed_total"]
        assert float(consumed[0]["value"]) == 300 + len(_invalid_lines())
        assert consumed[0]["labels"]["app"] == "frames/batch"
        assert consumed[0]["labels"]["job"] == "push-it"
        errors = pushed["shop_message_errors_total"]
        assert sum(float(e["value"]) for e in errors) == len(_invalid_lines())
        assert all(e["labels"]["exception"] for e in errors)
        text = gateway.metrics_text()
        assert 'shop_messages_consumed_total{app="frames/batch",instance="",job="push-it"}' in text
