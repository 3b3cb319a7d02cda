"""A gateway reports only the meters registered behind it (issue 9): on gateway A's topic, a
reading of a meter behind gateway B, or of a meter read by people, charges nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from ingest.directory import KnownMeter
from ingest.readings import Samples, not_behind, route
from meterline.mqtt import MqttLink
from meterline.settings import Settings
from tests.conftest import unique
from tests.factories import customer
from tests.ingest.test_bridge import batch, count, kafka_records, running_bridge, sample
from tests.waiting import until

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _meter(serial: str, gateway: str | None) -> KnownMeter:
    return KnownMeter(serial, "A-1", "p", "electricity", gateway, {"active_import": "kWh"})


def test_only_meters_behind_the_gateway_are_routed() -> None:
    meters = {"own": _meter("own", "gw-a"), "theirs": _meter("theirs", "gw-b"),
              "manual": _meter("manual", None)}
    samples = Samples(gateway=["gw-a"] * 3, where=["gw-a/3"] * 3, meter=list(meters),
                      register=["active_import"] * 3, unit=["kWh"] * 3, ts=[0] * 3,
                      value=[1_000_000] * 3, raw=[{"meter": m} for m in meters])

    routed = route(samples, meters)

    assert [samples.meter[i] for i in routed.keep] == ["own"]
    assert [r for r, _ in routed.dead] == [
        "meter theirs is registered behind gateway gw-b, not gw-a in batch gw-a/3",
        "meter manual is read by people, not through gateway gw-a in batch gw-a/3",
    ]
    assert not_behind(meters["own"], "gw-a") is None


@pytest.fixture
async def publisher(make_settings: Callable[..., Settings]) -> AsyncIterator[MqttLink]:
    link = MqttLink(make_settings(), unique("pub"))
    await link.connect()
    yield link
    await link.close()


async def test_the_bridge_refuses_a_meter_of_another_gateway(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink,
) -> None:
    settings = make_settings()
    own = await customer(conn, "100", gateway_id=settings.gateway_id)
    theirs = await customer(conn, "100", gateway_id=unique("gw-other"))
    async with running_bridge(settings):
        await publisher.publish(settings.topic(settings.gateway_id, "readings"), batch(
            settings, 1, [sample(own.meter_id, "10"), sample(theirs.meter_id, "99")]))
        await until(lambda: count(
            conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s", settings.gateway_id))
    cur = await conn.execute("SELECT reason FROM dead_letters WHERE payload LIKE %s",
                             (f"%{theirs.meter_id}%",))
    assert [r for (r,) in await cur.fetchall()] == [
        f"meter {theirs.meter_id} is registered behind gateway {theirs.gateway_id}, "
        f"not {settings.gateway_id} in batch {settings.gateway_id}/1"]
    assert await count(conn, "SELECT count(*) FROM readings WHERE meter_id = %s",
                       theirs.meter_id) == 0
    records = await kafka_records(settings, 1)
    assert [(r.account, r.meter) for r in records] == [(own.account_id, own.meter_id)]
