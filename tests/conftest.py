"""Session-scoped fixtures for the real services used by integration tests.

Every fixture starts (or reaches) its service once per session and, when that is
impossible, calls :func:`tests.services.require.service_unavailable`: the test
is skipped locally but fails when ``BEAMSTREAM_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pymysql
import pytest

from beamstream.io.kafka.client import CLIENTS as KAFKA_CLIENTS
from beamstream.runners.direct import hooks
from tests.services import databases
from tests.services.kafka_broker import BrokerStartError, KafkaBroker, broker_choice, start_broker
from tests.services.pubsub_emulator import (
    EMULATOR_HOST_ENV,
    EmulatorStartError,
    PubSubEmulator,
    start_pubsub_emulator,
)
from tests.services.require import service_unavailable

_BROKER_KIND: list[str] = []
TANSU_LIMITS = (
    "needs Apache Kafka (make engines; Java 17): the Tansu fallback under-reports "
    "end offsets and drops commit metadata"
)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Name the broker the Kafka tests used, also in -q runs (CI's)."""
    for kind in _BROKER_KIND:
        terminalreporter.write_line(f"kafka test broker: {kind}")


def pytest_report_header(config: pytest.Config) -> str:
    """Say up front which Kafka broker the integration tests will talk to."""
    from tests.services import apache_kafka

    choice = broker_choice()
    if choice == "kafka":
        return f"kafka test broker: Apache Kafka {apache_kafka.VERSION} (KRaft)"
    reason = apache_kafka.unavailable_reason() or "forced by BEAMSTREAM_TEST_BROKER"
    return f"kafka test broker: Tansu (Apache Kafka not used: {reason})"


def pytest_configure(config: pytest.Config) -> None:
    """Register markers so ``-m 'not integration'`` gives a service-free run."""
    # TestStream tests run on the DirectRunner as beamstream's own runs do.
    hooks.install()
    config.addinivalue_line(
        "markers", "tansu_ok: a Kafka test that also holds on the Tansu fallback broker"
    )
    config.addinivalue_line(
        "markers",
        "integration: needs a real service (Kafka, Pub/Sub emulator, PostgreSQL, MariaDB)",
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A single-node broker on free loopback ports, for the whole session.

    Apache Kafka (KRaft) when ``make engines`` installed it and Java is present,
    else the Tansu test broker (``tests/services/kafka_broker.py``). Yields an
    object with ``.kind``, ``.bootstrap`` ("127.0.0.1:PORT"),
    ``create_topic(name, partitions=1)`` and ``new_topic(prefix, partitions=1)``.
    Tests use ``assign()``, not ``subscribe()`` (group join on Tansu takes ~23 s).
    """
    try:
        broker = start_broker(tmp_path_factory.mktemp("kafka"))
    except (BrokerStartError, OSError) as exc:
        service_unavailable(f"could not start the {broker_choice()} test broker: {exc}")
    up = f"{broker.startup_seconds:.1f} s"
    _BROKER_KIND.append(f"{broker.kind} at {broker.bootstrap}, up in {up}")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> str:
    """``kafka-python`` (the default) or ``confluent`` (librdkafka): Kafka tests run on both."""
    if request.param == "confluent":
        pytest.importorskip(
            "confluent_kafka", reason="client=confluent needs beamstream[confluent]"
        )
    return request.param


@pytest.fixture(autouse=True)
def _kafka_tests_need_apache_kafka(request: pytest.FixtureRequest) -> None:
    """Kafka tests not marked ``tansu_ok`` need Apache Kafka.

    Tansu under-reports end offsets and drops commit metadata, which bounded
    reads and restarts rely on; on Tansu those tests skip (fail in CI).
    """
    if "kafka_broker" not in request.fixturenames or request.node.get_closest_marker("tansu_ok"):
        return
    if not request.getfixturevalue("kafka_broker").is_apache_kafka:
        service_unavailable(TANSU_LIMITS)


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    """The Pub/Sub emulator for the whole session, with PUBSUB_EMULATOR_HOST set.

    Yields an object with ``.host``, ``.project`` ("beamstream-test"),
    ``create_topic(name)`` and ``create_subscription(topic, name)`` (full paths).
    """
    try:
        emulator = start_pubsub_emulator(tmp_path_factory.mktemp("pubsub"))
    except (EmulatorStartError, OSError) as exc:
        service_unavailable(f"could not start Pub/Sub emulator: {exc}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(EMULATOR_HOST_ENV, emulator.host)
            yield emulator
    finally:
        emulator.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy-style URL of a reachable PostgreSQL (env BEAMSTREAM_POSTGRES_URL)."""
    url = databases.postgres_url()
    try:
        databases.check_postgres(url)
    except psycopg.Error as exc:
        service_unavailable(f"PostgreSQL not reachable at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """SQLAlchemy-style URL of a reachable MariaDB/MySQL (env BEAMSTREAM_MYSQL_URL)."""
    url = databases.mysql_url()
    try:
        databases.check_mysql(url)
    except pymysql.MySQLError as exc:
        service_unavailable(f"MariaDB/MySQL not reachable at {url}: {exc}")
    return url
