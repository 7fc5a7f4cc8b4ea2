"""Secrets stay secret: no log line, error message or dead letter carries a password.

Kafka SASL passwords come from ``--kafka_config key=env:NAME`` or
``BEAMSTREAM_KAFKA_SASL_PLAIN_PASSWORD``; database passwords from the URL
(or the driver's own environment, e.g. PGPASSWORD). Each test runs a real
pipeline or tool into a failure (or a dead letter) with the password set and
searches everything it said: every log record at DEBUG, the exception with
its whole chain and traceback, and the dead letters written.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from beamstream.io.kafka.client import CLIENTS, KAFKA_PYTHON
from beamstream.io.uris import UriError, parse_sink, parse_uri
from tests.services.ports import free_port
from tests.support.jsonl import read_shards

SECRET = "Zebra-Secret-42"  # distinctive, so a hit is never a coincidence


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _said(caplog, exc: BaseException | None = None) -> str:
    text = "\n".join(r.getMessage() for r in caplog.records)
    if exc is not None:
        text += "\n" + "".join(traceback.format_exception(exc)) + repr(exc)
    return text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://beam:{SECRET}@db.example:5432/metrics",
        f"postgresql+psycopg://beam:{SECRET}@db.example/metrics?sslmode=require",
        f"mysql://beam:{SECRET}@db.example:3306/metrics",
        f"postgresql://beam:{SECRET}%40x%2Fy@db.example/metrics",  # percent-encoded @ and /
    ],
)
def test_sql_uri_redacted_hides_the_password(url):
    uri = parse_uri(url)
    assert SECRET not in uri.redacted()
    assert "db.example" in uri.redacted() and "***" in uri.redacted()


@pytest.mark.parametrize(
    "url",
    [
        f"postgress://beam:{SECRET}@db.example/metrics",  # a typo in the scheme
        f"mysql://beam:{SECRET}@/metrics",  # no host
        f"kafka://beam:{SECRET}@broker:9092/topic",  # credentials where they do not belong
    ],
)
def test_uri_errors_do_not_echo_the_password(url):
    with pytest.raises(UriError) as err:
        parse_sink(url)
    assert SECRET not in str(err.value)


def _frames_argv(source: str, out, *config: str) -> list[str]:
    return [
        f"--source={source}",
        f"--per_second_sink={out}/sec",
        f"--per_minute_sink={out}/min",
        *(f"--kafka_config={c}" for c in config),
    ]


SASL = (
    "security_protocol=SASL_PLAINTEXT",
    "sasl_mechanism=PLAIN",
    "sasl_plain_username=beam",
    "bootstrap_timeout_ms=2000",  # fail fast: the handshake cannot succeed
)


@pytest.mark.integration
@pytest.mark.parametrize("how", ["env_reference", "beamstream_env"])
@pytest.mark.parametrize("client", CLIENTS)
def test_kafka_sasl_password_stays_out_of_logs_and_errors(
    how, client, kafka_broker, tmp_path, monkeypatch, everything_logged
):
    """The test broker speaks no SASL: the run fails at the handshake, password set."""
    from beamstream.pipelines import frames

    topic = kafka_broker.new_topic("secrets", partitions=1)
    config = list(SASL)
    if how == "env_reference":
        monkeypatch.setenv("KAFKA_PASSWORD_FOR_TEST", SECRET)
        config.append("sasl_plain_password=env:KAFKA_PASSWORD_FOR_TEST")
    else:
        monkeypatch.setenv("BEAMSTREAM_KAFKA_SASL_PLAIN_PASSWORD", SECRET)
    source = f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end&client={client}"
    with pytest.raises(Exception) as err:
        frames.run(_frames_argv(source, tmp_path, *config))
    said = _said(everything_logged, err.value)
    assert SECRET not in said
    # the client did try SASL with the password set (librdkafka: under its own names)
    assert ("SaslHandshake" if client == KAFKA_PYTHON else "sasl_plaintext://") in said
    assert "cannot reach Kafka" in said  # and the run said what went wrong


@pytest.mark.integration
def test_database_password_stays_out_of_errors_logs_and_dead_letters(
    postgres_url, tmp_path, everything_logged
):
    """Trust auth accepts any password: rows are written and refused with it in the URL."""
    from beamstream.pipelines import store

    host_part = postgres_url.split("://", 1)[1].split("@", 1)[1]
    url = f"postgresql://postgres:{SECRET}@{host_part}"
    sample = {
        "host_id": "h",
        "host": "h",
        "name": "cpu",
        "type": "gauge",
        "value": 1.5,
        "timestamp": 1_700_000_000_000,
        "labels": {},
    }
    lines = [json.dumps(sample), "not json", json.dumps(sample | {"value": "x"})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    store.run(
        [f"--source={tmp_path}/in.jsonl", f"--sink={url}", f"--dead_letter_sink={tmp_path}/dead"]
    )
    dead = read_shards(f"{tmp_path}/dead")
    assert len(dead) == 2
    assert SECRET not in json.dumps(dead)
    assert SECRET not in _said(everything_logged)

    unreachable = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/test"
    with pytest.raises(Exception) as err:
        store.run([f"--source={tmp_path}/in.jsonl", f"--sink={unreachable}", "--write_attempts=1"])
    said = _said(everything_logged, err.value)
    assert SECRET not in said
    assert "127.0.0.1" in said
