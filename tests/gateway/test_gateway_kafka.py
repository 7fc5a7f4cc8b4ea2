"""The gateway against the real Kafka-protocol broker: what is acknowledged is on the topic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamstream.gateway.auth import hash_token, new_token
from tests.gateway.harness import Gateway, metric_samples, read_topic, running_gateway

pytestmark = pytest.mark.integration

TOKEN = new_token()


@pytest.fixture()
def kafka_gateway(kafka_broker, kafka_client, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    topic = kafka_broker.new_topic("ingest", partitions=1)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# test\n{hash_token(TOKEN)} tester\n{hash_token(new_token())} other\n")
    argv = [
        "--sink", f"kafka://{kafka_broker.bootstrap}/{topic}?client={kafka_client}",
        "--tokens-file", str(tokens),
        "--key-field", "user",
        "--max-body-bytes", "4096",
    ]
    with running_gateway(argv) as gw:
        yield gw, topic


def test_accepted_events_arrive_exactly_as_sent(kafka_broker, kafka_gateway) -> None:
    gw, topic = kafka_gateway
    one = '{"user": "u1", "n": 1,  "text": "h\\u00e9llo ✓"}'
    array = '[ {"user":"u2","n":2} ,{"n":3,"nested":{"a":[1,2.5,null]}},{"user":7}\n]'
    lines = '{"user":"u3","n":4}\n\n{"n":5}\r\n'
    r1 = gw.post(one, TOKEN, **{"X-Request-Id": "req-1"})
    r2 = gw.post(array, TOKEN)
    r3 = gw.post(lines, TOKEN, **{"Content-Type": "application/x-ndjson"})
    assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200]
    assert r1.json() == {"accepted": 1, "request_id": "req-1"}
    assert r1.headers["X-Request-Id"] == "req-1"
    assert r2.json()["accepted"] == 3 and r3.json()["accepted"] == 2
    rid2, rid3 = r2.json()["request_id"], r3.json()["request_id"]
    assert rid2 != rid3

    records = read_topic(kafka_broker.bootstrap, topic, 6)
    assert [(r.value, r.key, r.headers) for r in records] == [
        (one.encode(), b"u1", {"request_id": "req-1"}),
        (b'{"user":"u2","n":2}', b"u2", {"request_id": rid2}),
        (b'{"n":3,"nested":{"a":[1,2.5,null]}}', None, {"request_id": rid2}),
        (b'{"user":7}', b"7", {"request_id": rid2}),
        (b'{"user":"u3","n":4}', b"u3", {"request_id": rid3}),
        (b'{"n":5}', None, {"request_id": rid3}),
    ]

    metrics = metric_samples(gw.get("/metrics").text)
    assert metrics[("messages_produced_total", ())] == 6
    assert metrics[("ingest_requests_total", (("code", "200"), ("route", "/v1/events")))] == 3
    assert metrics[("ingest_request_duration_seconds_count", ())] == 3
    health = gw.get("/healthz").json()
    assert health["status"] == "ok" and health["publisher"] == "ok"


def _rejected_then_marker(kafka_broker, gw: Gateway, topic: str) -> list:
    """After rejected requests, a marker is published; the topic must hold only the marker."""
    marker = b'{"marker":true}'
    assert gw.post(marker, TOKEN).status_code == 200
    return [r.value for r in read_topic(kafka_broker.bootstrap, topic, marker)]


def test_unauthorized_requests_publish_nothing(kafka_broker, kafka_gateway, caplog) -> None:
    gw, topic = kafka_gateway
    caplog.set_level("DEBUG")
    bad_token = new_token()
    for headers in (
        {},
        {"Authorization": f"Bearer {bad_token}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
    ):
        r = gw.post('{"a":1}', **headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert _rejected_then_marker(kafka_broker, gw, topic) == [b'{"marker":true}']
    errors = metric_samples(gw.get("/metrics").text)
    assert errors[("message_errors_total", (("reason", "unauthorized"),))] == 4
    assert TOKEN not in caplog.text and bad_token not in caplog.text


def test_too_large_and_invalid_bodies_publish_nothing(kafka_broker, kafka_gateway) -> None:
    gw, topic = kafka_gateway
    big = json.dumps([{"pad": "x" * 100}] * 50)  # > 4096 bytes
    assert gw.post(big, TOKEN).status_code == 413

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(50):
            yield b'{"pad":"' + b"x" * 100 + b'"}\n'

    r = gw.session.post(
        f"{gw.url}/v1/events", data=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 413

    r = gw.post('[{"ok":1}, 2, "x", {"ok":2}, [1]]', TOKEN)
    assert r.status_code == 400
    assert [item["index"] for item in r.json()["items"]] == [1, 2, 4]
    assert "got number" in r.json()["items"][0]["reason"]

    ndjson = {"Content-Type": "application/x-ndjson"}
    r = gw.post('{"ok":1}\nnot json\n{"ok":2}\n7\n', TOKEN, **ndjson)
    assert r.status_code == 400
    assert [(i["index"], i["reason"][:8]) for i in r.json()["items"]] == [
        (1, "not JSON"), (3, "expected"),
    ]
    for body in ('{"a":1', '[{"a":1},', '{"a": NaN}', '', '[]', b'{"a":"\xff"}', '{"a":1} x'):
        assert gw.post(body, TOKEN).status_code == 400, body
    assert gw.post('{"a":1}', TOKEN, **{"Content-Type": "text/csv"}).status_code == 415
    assert _rejected_then_marker(kafka_broker, gw, topic) == [b'{"marker":true}']
