"""kafka-python setting names (``--kafka_config``) in librdkafka's names, for ``client=confluent``.

One ``--kafka_config`` serves both clients, so a pipeline switches client by
its URI alone. Names librdkafka already uses (with dots) pass through; the
ones that differ are mapped; most others are kafka-python's name with dots;
kafka-python knobs with no librdkafka meaning are dropped. librdkafka rejects
what it does not know, and ``ConfluentConsumer`` names the setting, never its
value (secrets stay out of logs and errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_RENAMED = {
    "bootstrap_servers": "bootstrap.servers",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_crlfile": "ssl.crl.location",
    "ssl_ciphers": "ssl.cipher.suites",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "max_request_size": "message.max.bytes",
    "request_timeout_ms": "socket.timeout.ms",
    "receive_buffer_bytes": "socket.receive.buffer.bytes",
    "send_buffer_bytes": "socket.send.buffer.bytes",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
}

# kafka-python knobs without a librdkafka counterpart (the reader passes its
# batch size to each consume call; librdkafka negotiates versions itself).
_DROPPED = frozenset(
    {
        "api_version",
        "api_version_auto_timeout_ms",
        "bootstrap_timeout_ms",
        "consumer_timeout_ms",
        "max_poll_records",
        "max_in_flight_requests_per_connection",
        "max_block_ms",  # librdkafka never blocks a send; a full queue is drained by polling
        "selector",
    }
)


def librdkafka_name(name: str) -> str | None:
    """librdkafka's name for a setting; None for a kafka-python-only knob."""
    if "." in name:
        return name
    if name in _DROPPED:
        return None
    return _RENAMED.get(name, name.replace("_", "."))


def librdkafka_value(name: str, value: Any) -> Any:
    if name == "ssl_check_hostname":
        return "https" if value not in (False, "false", "False", 0, "0") else "none"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def librdkafka_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The same settings under librdkafka's names."""
    out: dict[str, Any] = {}
    for name, value in settings.items():
        if value is None:
            continue
        if name == "ssl_check_hostname":
            out["ssl.endpoint.identification.algorithm"] = librdkafka_value(name, value)
            continue
        mapped = librdkafka_name(name)
        if mapped is not None:
            out[mapped] = librdkafka_value(name, value)
    return out


def redacted_names(config: Mapping[str, Any]) -> str:
    """Setting names for an error message (values may be secrets)."""
    return ", ".join(sorted(config))
