"""The Kafka IO tests run once per client library: the same semantics on both."""

from __future__ import annotations

import pytest

from beamstream.io.kafka.client import CLIENTS


@pytest.fixture(params=CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> str:
    """``kafka-python`` (the default) or ``confluent`` (librdkafka)."""
    if request.param == "confluent":
        pytest.importorskip(
            "confluent_kafka", reason="client=confluent needs beamstream[confluent]"
        )
    return request.param
