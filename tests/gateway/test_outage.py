"""Broker unreachable → 503 with Retry-After after a bounded wait, then recovery.

A broker of its own, advertised on a proxy's port, so every client
connection (metadata included) goes through the proxy the test cuts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.harness import metric_samples, read_topic, running_gateway
from tests.support.proxied_broker import ProxiedBroker, start_proxied_broker

pytestmark = pytest.mark.integration


@pytest.fixture()
def proxied_broker(tmp_path: Path) -> Iterator[ProxiedBroker]:
    with start_proxied_broker(tmp_path, topics={"outage": 1}) as broker:
        yield broker


def test_unreachable_broker_gives_503_then_recovers(proxied_broker) -> None:
    broker = proxied_broker
    argv = ["--sink", f"kafka://{broker.bootstrap}/outage", "--publish-timeout", "1.5"]
    acked: list[bytes] = []
    with running_gateway(argv) as gw:
        body = b'{"phase":"before"}'
        assert gw.post(body).status_code == 200
        acked.append(body)

        broker.proxy.cut()
        with ThreadPoolExecutor(8) as pool:  # concurrent clients all get a bounded answer
            answers = list(pool.map(lambda i: gw.post(f'{{"phase":"down","i":{i}}}'), range(8)))
        assert [a.status_code for a in answers] == [503] * 8
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers)
        assert gw.get("/healthz").json()["publisher"] == "failing"
        errors = metric_samples(gw.get("/metrics").text)
        assert errors[("message_errors_total", (("reason", "unavailable"),))] == 8

        broker.proxy.restore()
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = f'{{"phase":"after","attempt":{len(statuses)}}}'.encode()
            r = gw.post(body)
            statuses.append(r.status_code)
            if r.status_code == 200:
                acked.append(body)
                break
            assert r.status_code == 503
            time.sleep(0.5)
        assert statuses[-1] == 200, statuses
        for i in range(5):
            body = f'{{"phase":"after","i":{i}}}'.encode()
            assert gw.post(body).status_code == 200
            acked.append(body)
        assert gw.get("/healthz").json()["publisher"] == "ok"

    values = [r.value for r in read_topic(broker.bootstrap, "outage", acked[-1])]
    assert set(acked) <= set(values)  # 503-answered events may also be there: at-least-once
