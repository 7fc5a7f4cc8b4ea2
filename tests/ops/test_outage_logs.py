"""Outages are reported once (with reminders and the end), and client log floods are held back."""

from __future__ import annotations

import logging

import pytest

from beamstream.io import outage as outage_module
from beamstream.io.outage import Outage
from beamstream.log_flood import RepeatFilter


def test_an_outage_is_reported_once_then_reminded_then_ended(caplog, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(outage_module.time, "monotonic", lambda: now[0])
    outage = Outage("Kafka at b:9092")
    with caplog.at_level(logging.WARNING, logger="beamstream"):
        for _ in range(50):
            outage.failed(ConnectionError("refused"))
            now[0] += 0.1
        now[0] += outage_module.REMIND_S
        outage.failed(ConnectionError("refused"))
        outage.succeeded()
        outage.succeeded()  # nothing to end twice
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "Kafka at b:9092 unreachable (ConnectionError: refused); retrying"
    assert lines[1].startswith("Kafka at b:9092 still unreachable after 35 s")
    assert lines[2].startswith("Kafka at b:9092 reachable again after 35.")
    assert len(lines) == 3


def _record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_repeats_of_a_client_message_pass_once_per_interval(monkeypatch):
    import beamstream.log_flood as log_flood

    now = [0.0]
    monkeypatch.setattr(log_flood.time, "monotonic", lambda: now[0])
    flood = RepeatFilter("kafka", interval_s=30)
    passed = [
        flood.filter(_record("kafka.net.transport", f"<Transport 127.0.0.1:{port}> disconnected"))
        for port in range(1000, 1100)
    ]
    assert passed.count(True) == 1
    now[0] = 31.0
    later = _record("kafka.net.transport", "<Transport 127.0.0.1:2000> disconnected")
    assert flood.filter(later)
    assert "[99 similar in the last 30 s]" in later.getMessage()


@pytest.mark.parametrize("name", ["beamstream", "apache_beam.runners", "kafkaesque"])
def test_other_loggers_are_never_held_back(name):
    flood = RepeatFilter("kafka.", interval_s=30)
    assert all(flood.filter(_record(name, "same message")) for _ in range(5))
