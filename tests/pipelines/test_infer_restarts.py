"""Streaming inference killed while it cannot write loses no request (at-least-once).

``beamstream infer --streaming`` reads requests from the real broker while
they are produced and writes predictions to a second broker behind a TCP
proxy. The proxy is cut, so requests are taken in but their predictions
cannot be written; then the process is killed (SIGKILL). A restart from the
committed offsets (bounded, ``stop=end``) must answer every request. This
fails if a local streaming read commits what the pipeline has taken in
rather than what its sinks have written. A request may be answered twice:
that is the at-least-once promise; none may be missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.models.conftest import digits_model  # noqa: F401 - session fixture
from tests.pipelines.test_infer import requests
from tests.support.proxied_broker import start_proxied_broker

pytestmark = pytest.mark.integration

ROUNDS = 12  # the held-out split, again with fresh ids: a few thousand requests


def _produce_slowly(bootstrap: str, topic: str, lines: list[str], per_second: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    started = time.monotonic()
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % 2)
        ahead = i / per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    producer.close()


def _predicted_ids(bootstrap: str, topic: str) -> list[str]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, consumer_timeout_ms=2000, enable_auto_commit=False
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    ids = [json.loads(m.value)["id"] for m in consumer]
    consumer.close()
    return ids


def _infer(bootstrap: str, sink: str, topics: dict[str, str], model_dir, stop_at_end, log):
    source = f"kafka://{bootstrap}/{topics['in']}?group=g-infer-kill&start=committed"
    if stop_at_end:
        source += "&stop=end"
    return subprocess.Popen(
        [
            sys.executable, "-m", "beamstream.cli", "infer", "--streaming",
            f"--source={source}",
            f"--sink=kafka://{sink}/{topics['out']}",
            f"--model={model_dir}",
            "--max_batch_size=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        start_new_session=True,
    )


def test_sigkill_while_the_sink_is_cut_off_then_restart_answers_every_request(
    digits_model, kafka_broker, tmp_path  # noqa: F811
):
    model_dir, _ = digits_model
    lines, _ = requests()
    everything = []
    for round_ in range(ROUNDS):
        for line in lines:
            record = json.loads(line)
            record["id"] = f"{record['id']}-{round_}"
            everything.append(json.dumps(record))
    topics = {"in": kafka_broker.new_topic("infer-kill-in", partitions=2), "out": "predictions"}
    cut_off = start_proxied_broker(tmp_path, {"predictions": 1})
    with cut_off as sink, tempfile.TemporaryFile() as log:
        process = _infer(kafka_broker.bootstrap, sink.bootstrap, topics, model_dir, False, log)
        first, rest = everything[:200], everything[200:]
        _produce_slowly(kafka_broker.bootstrap, topics["in"], first, 10_000)
        deadline = time.monotonic() + 120
        while len(_predicted_ids(sink.bootstrap, topics["out"])) < len(first):
            assert process.poll() is None, "infer exited early"
            assert time.monotonic() < deadline, "no predictions within 120 s"
            time.sleep(0.5)
        # The pipeline is live: requests now arrive while it runs.
        producer = threading.Thread(
            target=_produce_slowly, args=(kafka_broker.bootstrap, topics["in"], rest, 500)
        )
        producer.start()
        time.sleep(2)
        sink.proxy.cut()  # requests keep being taken in; predictions cannot leave
        time.sleep(5)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        sink.proxy.restore()
        producer.join(120)

        final = _infer(kafka_broker.bootstrap, sink.bootstrap, topics, model_dir, True, log)
        assert final.wait(180) == 0, "the restarted run failed"
        answered = _predicted_ids(sink.bootstrap, topics["out"])
    wanted = {json.loads(line)["id"] for line in everything}
    assert len(wanted - set(answered)) == 0, f"{len(wanted - set(answered))} requests unanswered"
