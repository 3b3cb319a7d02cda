"""The real parts every test session needs, started and stopped by the session itself:
a database of its own on the machine's PostgreSQL (created, migrated, dropped), a
Kafka-compatible broker (Tansu) on a free port, and the machine's Mosquitto."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest

from meterline import db
from meterline.kafka import free_port, port_open, start_broker, stop_process
from meterline.settings import Settings

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_HOST = os.environ.get("METERLINE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("METERLINE_TEST_MQTT_PORT", "1883"))


def unique(prefix: str) -> str:
    """An id no other test of this run uses (topics, gateways, accounts share brokers)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    name = f"meterline_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        yield url
    finally:
        await db.drop_database(url)


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    port = free_port()
    proc = start_broker(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    if not port_open(MQTT_HOST, MQTT_PORT):
        pytest.fail(f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT} (start mosquitto)")
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def make_settings(
    pg_url: str, kafka_bootstrap: str, mqtt_broker: tuple[str, int], tmp_path: Any
) -> Callable[..., Settings]:
    """Settings pointing at this session's real parts, with topics of the test's own."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": pg_url,
            "kafka_bootstrap": kafka_bootstrap,
            "mqtt_host": mqtt_broker[0],
            "mqtt_port": mqtt_broker[1],
            "readings_topic": unique("readings"),
            "gateway_id": unique("gw"),
            "mqtt_topic_root": unique("meterline-test") + "/v1",
            "bridge_client_id": unique("bridge"),
            "rating_group": unique("rating"),
            "rating_data_dir": tmp_path / "rating",
            "rating_web_port": free_port(),
            "gateway_state_dir": tmp_path / "gateway",
            "rating_session_timeout": 10.0,
            # services started by tests serve /metrics and /ready on ports of their own
            "bridge_metrics_port": free_port(),
            "gateway_metrics_port": free_port(),
            "sim_metrics_port": free_port(),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make
