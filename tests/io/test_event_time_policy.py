"""A batch's event times (``of_payloads``, what readers use) are each record's ``of_payload``."""

from __future__ import annotations

import json

import pytest

from beamstream.io.event_time_policy import EventTimePolicy

PAYLOADS = [
    b'{"timestamp": 1700000000.123456, "uid": "u1"}',
    b'{"timestamp": 1700000000123, "uid": "u2"}',  # milliseconds in auto
    b'{"timestamp": 1700000000, "uid": "u3"}',
    b'{"timestamp": "2023-11-14T22:13:20.5Z"}',
    b'{"timestamp": "2023-11-14T22:13:20"}',  # no zone: no time
    b'{"timestamp": "1700000000.5"}',
    b'{"ts": 1700000001.25}',
    b'{"event_time": 1700000002.0, "timestamp": 5}',
    b'{"timestamp": true}',
    b'{"timestamp": null}',
    b'{"timestamp": 1e400}',  # infinity
    b'{"timestamp": 1e30}',  # out of range
    b'{"uid": "no time"}',
    b"[1700000000]",
    b"not json",
    b"\xff\xfe",
    b"",
    b" {\"timestamp\": 1700000003} ",
    json.dumps({"timestamp": 1700000004.999999}).encode(),
]
BROKER_MS = [1_700_000_100_000 + i for i in range(len(PAYLOADS))]
BROKER_MS[3] = None  # type: ignore[call-overload]


@pytest.mark.parametrize("field", [None, "timestamp", "ts", "event_time"])
@pytest.mark.parametrize("time_format", ["auto", "epoch_s", "epoch_ms", "iso"])
def test_a_batch_gets_each_records_own_event_time(field, time_format):
    policy = EventTimePolicy(field=field, time_format=time_format)
    expected = [policy.of_payload(v, ms) for v, ms in zip(PAYLOADS, BROKER_MS)]
    assert policy.of_payloads(PAYLOADS, BROKER_MS) == expected


def test_the_cases_differ_so_the_comparison_means_something():
    policy = EventTimePolicy(field="timestamp")
    times = policy.of_payloads(PAYLOADS, BROKER_MS)
    assert times[0] == 1_700_000_000_123_456 and times[1] == 1_700_000_000_123_000
    assert times[6] == 1_700_000_001_250_000  # ts when timestamp is missing
    assert times[4] is None and times[8] is None and times[14] is None
    assert EventTimePolicy().of_payloads(PAYLOADS, BROKER_MS)[3] is None  # broker time
