"""A load generator: virtual gateways publishing readings batches at a set rate.

``meters`` virtual SDM120 meters behind gateways of ``per_gateway`` meters each; every
gateway publishes one ``ReadingsBatch`` (the MQTT contract, exactly as a real gateway does)
per ``interval`` seconds with one sample per meter, the gateways' cycles spread evenly over
the interval: ``meters / interval`` readings per second (100,000 meters every 2 s: 50,000/s).

Registers grow with wall time (each meter has its own base and average power), so they only
go up, across restarts of the generator too, and every run's readings are new ones. Batch
numbers start from the wall clock in milliseconds for the same reason.

``register_virtual_fleet`` puts the meters on the books, set-based (a second call adds
nothing): postpaid accounts of one provider with a flat tariff and no relay, zero balance
(no money is brought in), so a load run prices consumption without relay commands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from meterline.fleet import Fleet, Provider, register_fleet
from meterline.metrics import (
    LOADGEN,
    LOADGEN_BATCHES,
    LOADGEN_BEHIND,
    LOADGEN_READINGS,
    serving,
)
from meterline.mqtt import MqttLink
from meterline.settings import Settings

log = logging.getLogger("meterline.loadgen")

PROVIDER = Provider(id="loadgen", name="Load test provider", inn="7700000000")
PRICE = Decimal("5.47")  # RUB per kWh, flat
SERIAL_BASE = 700_000_000  # virtual meters' serials: SERIAL_BASE + n
REFERENCE = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # registers' zero time


@dataclass(frozen=True)
class VirtualFleet:
    meters: int
    per_gateway: int
    prefix: str = "vgw"  # gateway ids: f"{prefix}-{n}"

    @property
    def gateways(self) -> int:
        return -(-self.meters // self.per_gateway)

    def gateway_id(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    def serials(self, n: int) -> list[str]:
        """The serials behind gateway ``n``."""
        first = n * self.per_gateway
        return [str(SERIAL_BASE + k)
                for k in range(first, min(first + self.per_gateway, self.meters))]


ADDRESS = "Load test, virtual house"
_ADDRESS = """
WITH found AS (SELECT id FROM addresses WHERE full_text = %(text)s ORDER BY id LIMIT 1),
     made AS (INSERT INTO addresses (region, full_text)
              SELECT '77', %(text)s WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made
"""
_REGISTER = """
WITH m AS (
    SELECT unnest(%(serials)s::text[]) AS serial, unnest(%(gateways)s::text[]) AS gateway
), new AS (
    SELECT m.* FROM m WHERE NOT EXISTS (SELECT 1 FROM meters WHERE id = m.serial)
), accounts_in AS (
    INSERT INTO accounts (id, address_id, holder_name, billing_mode)
    SELECT 'V-' || serial, %(address)s, 'Virtual subscriber', 'postpaid' FROM new
    ON CONFLICT DO NOTHING
), balances_in AS (
    INSERT INTO balances (account_id, provider_id)
    SELECT 'V-' || serial, %(provider)s FROM new ON CONFLICT DO NOTHING
), meters_in AS (
    INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id, has_relay)
    SELECT serial, 'V-' || serial, %(provider)s, 'electricity', 'SDM120', gateway, false FROM new
)
INSERT INTO registers (meter_id, code, unit) SELECT serial, 'active_import', 'kWh' FROM new
"""


async def register_virtual_fleet(conn: psycopg.AsyncConnection[Any], fleet: VirtualFleet) -> None:
    """Put the fleet on the books (idempotent), in one transaction per 10,000 meters."""
    await register_fleet(conn, Fleet(gateway_id=fleet.gateway_id(0), meters=[], price=PRICE,
                                     provider=PROVIDER, billing_mode="postpaid"))
    cur = await conn.execute(_ADDRESS, {"text": ADDRESS})
    row = await cur.fetchone()
    assert row is not None
    await conn.commit()
    serials = [(fleet.gateway_id(g), s) for g in range(fleet.gateways) for s in fleet.serials(g)]
    for start in range(0, len(serials), 10_000):
        chunk = serials[start:start + 10_000]
        async with conn.transaction():
            await conn.execute(_REGISTER, {"serials": [s for _, s in chunk],
                                           "gateways": [g for g, _ in chunk],
                                           "address": row[0], "provider": PROVIDER.id})


class VirtualGateway:
    """One gateway's meters: serials, register bases and average powers."""

    def __init__(self, gateway_id: str, serials: list[str], seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.gateway_id = gateway_id
        self.serials = serials
        self.base = rng.uniform(100, 20_000, len(serials))  # kWh at the reference time
        self.kw = rng.uniform(0.05, 3.0, len(serials))  # average power
        self.seq = int(time.time() * 1000)

    def payload(self, now: float) -> bytes:
        """This cycle's ReadingsBatch (v1), as a gateway publishes it."""
        kwh = self.base + self.kw * ((now - REFERENCE) / 3600.0)
        at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        body = ",".join(
            f'{{"meter":"{serial}","register":"active_import","unit":"kWh",'
            f'"value":"{value:.4f}","ts":"{at}"}}'
            for serial, value in zip(self.serials, kwh.tolist(), strict=True))
        self.seq += 1
        return (f'{{"v":1,"gateway":"{self.gateway_id}","seq":{self.seq},"polled_at":"{at}",'
                f'"samples":[{body}]}}').encode()


async def publish(settings: Settings, fleet: VirtualFleet, interval: float,
                  seconds: float | None = None) -> int:
    """Publish the fleet's batches every ``interval`` seconds, for ``seconds`` (None: until
    cancelled); returns the readings published."""
    gateways = [VirtualGateway(fleet.gateway_id(g), fleet.serials(g), seed=g)
                for g in range(fleet.gateways)]
    link = MqttLink(settings, f"meterline-loadgen-{fleet.prefix}", logger=log)
    await link.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    step = interval / len(gateways)
    published = 0
    try:
        for tick in range(1 << 62):
            due = started + tick * step
            if seconds is not None and due - started >= seconds:
                break
            delay = due - loop.time()
            LOADGEN_BEHIND.set(max(0.0, -delay))
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself
            gateway = gateways[tick % len(gateways)]
            link.publish_nowait(settings.topic(gateway.gateway_id, "readings"),
                                gateway.payload(time.time()))
            published += len(gateway.serials)
            LOADGEN_READINGS.inc(len(gateway.serials))
            LOADGEN_BATCHES.inc()
        await link.drain(30)
    finally:
        await link.close()
    return published


async def run(settings: Settings, fleet: VirtualFleet, interval: float,
              seconds: float | None, register: bool) -> int:
    """What ``meterline loadgen`` does: register the fleet if asked, then publish, with
    /metrics and /ready on loadgen_metrics_port."""
    if register:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await register_virtual_fleet(conn, fleet)
        log.info("%d virtual meters registered behind %d gateways", fleet.meters,
                 fleet.gateways)
    ready = asyncio.Event()
    async with serving(LOADGEN, settings.metrics_host, settings.loadgen_metrics_port,
                       ready.is_set):
        ready.set()
        log.info("load generator ready: %d meters behind %d gateways every %gs "
                 "(%.0f readings/s) on %s", fleet.meters, fleet.gateways, interval,
                 fleet.meters / interval, settings.topic("+", "readings"))
        return await publish(settings, fleet, interval, seconds)
