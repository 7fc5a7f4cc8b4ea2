"""--kafka_config (kafka-python names) as librdkafka sees it under client=confluent."""

from __future__ import annotations

import pytest

from beamstream.io.kafka.client import KafkaClientError, open_client_consumer
from beamstream.io.kafka.librdkafka_config import librdkafka_config

SECRET = "s3cr3t-for-config-test"


def test_security_settings_map_to_librdkafka_names():
    got = librdkafka_config(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "beam",
            "sasl_plain_password": SECRET,
            "ssl_cafile": "/etc/ca.pem",
            "ssl_certfile": "/etc/cert.pem",
            "ssl_keyfile": "/etc/key.pem",
            "ssl_password": "kp",
            "ssl_check_hostname": False,
            "client_id": "me",
            "fetch_max_wait_ms": 50,
            "max_request_size": 1_000_000,
            "bootstrap_servers": ["a:1", "b:2"],
        }
    )
    assert got == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "beam",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/cert.pem",
        "ssl.key.location": "/etc/key.pem",
        "ssl.key.password": "kp",
        "ssl.endpoint.identification.algorithm": "none",
        "client.id": "me",
        "fetch.wait.max.ms": 50,
        "message.max.bytes": 1_000_000,
        "bootstrap.servers": "a:1,b:2",
    }


def test_librdkafka_names_pass_through_and_kafka_python_only_knobs_are_dropped():
    got = librdkafka_config({"queued.min.messages": 5, "max_poll_records": 9, "api_version": (2,)})
    assert got == {"queued.min.messages": 5}


def test_a_setting_librdkafka_rejects_is_named_without_its_value():
    pytest.importorskip("confluent_kafka")
    with pytest.raises(KafkaClientError) as err:
        open_client_consumer("confluent", ["127.0.0.1:9"], None, {}, {"security_protocol": SECRET})
    assert "security.protocol" in str(err.value)
    assert SECRET not in str(err.value)
    with pytest.raises(KafkaClientError, match="no.such.knob"):
        open_client_consumer("confluent", ["127.0.0.1:9"], None, {}, {"no_such_knob": 1})


def test_an_unknown_client_is_a_clear_error():
    with pytest.raises(KafkaClientError, match="use kafka-python or confluent"):
        open_client_consumer("rdkafka", ["127.0.0.1:9"], None, {}, {})


def test_the_uri_chooses_the_client_for_sources_and_sinks():
    from beamstream.io.kafka import ReadFromKafka
    from beamstream.io.uris import UriError, parse_kafka_uri

    assert parse_kafka_uri("kafka://h:1/t").client == "kafka-python"
    assert parse_kafka_uri("kafka://h:1/t?client=confluent").client == "confluent"
    assert ReadFromKafka("kafka://h:1/t?client=confluent&stop=end").spec.client == "confluent"
    with pytest.raises(UriError, match="client='rdkafka'; use kafka-python or confluent"):
        parse_kafka_uri("kafka://h:1/t?client=rdkafka")
