"""The bridge's relay delivery loop is the disconnection policy's clock: a cut that waited
(for its notice period or the friendly hours) is made and sent to the gateway once its time
has come, with no money moving. Real PostgreSQL and Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ingest.commands import dispatch
from meterline.contracts import RelayCommand
from meterline.mqtt import MqttLink
from meterline.relay import decide_relays
from meterline.settings import Settings
from tests.conftest import unique
from tests.factories import customer, delivered_notice, disconnection_policy, set_balance
from tests.gateway.mqtt_probe import MqttProbe
from tests.waiting import until


async def test_a_waiting_cut_is_made_and_sent_when_its_time_comes(
        conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    # a notice of one day, cuts at any hour: the notice was given and delivered two days ago
    code = await disconnection_policy(conn, rule="notice_then_restrict", notice_days=1,
                                      working_days_only=False)
    c = await customer(conn, "10", contract_type=code, gateway_id=settings.gateway_id)
    await set_balance(conn, c.account_id, c.provider_id, "-1")
    async with conn.transaction():
        assert await decide_relays(conn, [c.account_id],
                                   now=datetime.now(UTC) - timedelta(days=2)) == []
    # the notice reached the subscriber then too: the period ran out yesterday
    await delivered_notice(conn, c.account_id, datetime.now(UTC) - timedelta(days=2))
    cur = await conn.execute("SELECT count(*) FROM relay_commands WHERE meter_id = %s",
                             (c.meter_id,))
    assert await cur.fetchone() == (0,)

    probe = MqttProbe(settings.mqtt_host, settings.mqtt_port)
    await probe.start([settings.topic(settings.gateway_id, "commands")])
    link = MqttLink(settings, unique("relay-clock"))
    await link.connect()
    ready = asyncio.Event()
    loop = asyncio.create_task(dispatch(settings, link, ready))
    try:
        command = RelayCommand.model_validate_json(
            await probe.next(settings.topic(settings.gateway_id, "commands"), timeout=20))

        async def marked_sent() -> bool:
            cur = await conn.execute("SELECT status FROM relay_commands WHERE meter_id = %s",
                                     (c.meter_id,))
            return await cur.fetchone() == ("sent",)

        await until(marked_sent, timeout=20, what="the command marked sent")
    finally:
        loop.cancel()
        with suppress(asyncio.CancelledError):
            await loop
        await link.close()
        await probe.stop()
    assert (command.meter, command.action) == (c.meter_id, "disconnect")
    cur = await conn.execute(
        "SELECT m.relay_state, r.status FROM meters m JOIN relay_commands r ON r.meter_id = m.id"
        " WHERE m.id = %s", (c.meter_id,))
    assert await cur.fetchone() == ("disconnected", "sent")
    cur = await conn.execute("SELECT count(*) FROM disconnections_due WHERE account_id = %s",
                             (c.account_id,))
    assert await cur.fetchone() == (0,)
