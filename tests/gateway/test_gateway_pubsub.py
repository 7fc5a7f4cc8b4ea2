"""The gateway against the Pub/Sub emulator: accepted events arrive exactly as sent."""

from __future__ import annotations

import time

import pytest

from beamstream.io.clients import open_subscriber
from tests.gateway.harness import running_gateway
from tests.services.ports import unique_name

pytestmark = pytest.mark.integration


def test_events_arrive_on_pubsub_with_key_and_request_id(pubsub_emulator) -> None:
    topic = pubsub_emulator.create_topic(unique_name("ingest"))
    sub = pubsub_emulator.create_subscription(topic, unique_name("ingest-sub"))
    argv = ["--sink", f"pubsub://{topic}", "--key-field", "device"]
    sent = ['{"device":"d1","v":1}', '{"v":2, "s":"ü"}', '{"device":"d1","v":3}']
    with running_gateway(argv) as gw:
        r = gw.post("[" + ",".join(sent) + "]", **{"X-Request-Id": "batch-7"})
        assert r.status_code == 200 and r.json() == {"accepted": 3, "request_id": "batch-7"}
        assert gw.post("[1]").status_code == 400

    got = []
    with open_subscriber(f"pubsub://{sub}") as subscriber:
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            for m in subscriber.receive(10, timeout=1.0):
                got.append(m)
                m.ack()
    by_value = {m.value: m for m in got}
    assert sorted(by_value) == sorted(s.encode() for s in sent)
    assert [by_value[s.encode()].key for s in sent] == [b"d1", None, b"d1"]
    assert all(m.attributes == {"request_id": "batch-7"} for m in got)
