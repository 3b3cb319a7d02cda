"""The whole pipeline, every part real: Modbus meter simulators, a gateway, the machine's
Mosquitto, the bridge, the Kafka-compatible broker, the Faust rating worker, PostgreSQL and the
API over HTTP, each service in its own process as `meterline <service>` runs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymodbus.client import AsyncModbusTcpClient

from api.auth.tokens import access_token
from meterline.kafka import free_port
from meterline.mqtt import Message, MqttLink
from meterline.profiles import Codec, DataType
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, Role, User
from tests.conftest import unique
from tests.factories import customers, person
from tests.kafka_probe import rating_caught_up
from tests.services import service
from tests.waiting import until

PRICE = Decimal("5.47")
METERS = 4
POOR = 1  # unit id of the subscriber who runs out of credit
RICH_BALANCE = Decimal("1000000")
POOR_BALANCE = Decimal("3")
ENERGY = 0x0048  # SDM120 import active energy, float32 input registers
RELAY = 0  # load relay coil
FLOAT32 = Codec(DataType.FLOAT32)  # high word first, as the SDM120 holds it


@contextmanager
def platform(settings: Settings, log_dir: Path) -> Iterator[None]:
    with ExitStack() as stack:
        for name in ("simulators", "bridge", "rating", "api", "gateway"):
            stack.enter_context(service(name, settings, log_dir))
        yield


class Meter:
    """Reads a simulated meter over Modbus, as a field engineer's tool would."""

    def __init__(self, client: AsyncModbusTcpClient, unit: int) -> None:
        self.client, self.unit = client, unit

    async def energy(self) -> float:
        reply = await self.client.read_input_registers(ENERGY, count=2, device_id=self.unit)
        return float(FLOAT32.decode(reply.registers))

    async def relay_closed(self) -> bool:
        reply = await self.client.read_coils(RELAY, count=1, device_id=self.unit)
        return bool(reply.bits[0])


ConnectMeter = Callable[[int, int], Awaitable[Meter]]


@pytest.fixture
async def modbus() -> AsyncIterator[ConnectMeter]:
    """Connects to a meter (port, unit id) and closes every connection at the end."""
    clients: list[AsyncModbusTcpClient] = []

    async def connect(port: int, unit: int) -> Meter:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        clients.append(client)
        return Meter(client, unit)

    yield connect
    for client in clients:
        client.close()


_INVARIANT = """
SELECT b.account_id, b.amount,
       a.opening
       + coalesce((SELECT sum(t.amount) FROM topups t WHERE t.account_id = b.account_id), 0)
       - (s.last_value - (SELECT r.value FROM readings r WHERE r.meter_id = m.id
                           ORDER BY r.ts LIMIT 1)) * %(price)s
  FROM balances b
  JOIN meters m ON m.account_id = b.account_id
  JOIN register_state s ON s.meter_id = m.id
  JOIN (SELECT unnest(%(accounts)s::text[]) AS account_id,
               unnest(%(openings)s::numeric[]) AS opening) a ON a.account_id = b.account_id
"""


async def balances_match_consumption(conn: psycopg.AsyncConnection[Any],
                                     openings: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    """In one snapshot: every balance is its opening + top-ups - consumption x tariff, exactly."""
    cur = await conn.execute(_INVARIANT, {"price": PRICE, "accounts": list(openings),
                                          "openings": list(openings.values())})
    rows = await cur.fetchall()
    assert len(rows) == len(openings)
    for account, balance, expected in rows:
        assert balance == expected, account
    return [(account, balance) for account, balance, _ in rows]


async def forwarded(conn: psycopg.AsyncConnection[Any], gateway: str) -> int:
    cur = await conn.execute("SELECT coalesce(max(seq), -1) FROM ingest_batches "
                             "WHERE gateway_id = %s", (gateway,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_meters_pay_for_exactly_what_they_consume_end_to_end(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    tmp_path: Path, modbus: ConnectMeter,
) -> None:
    sim_port, api_port = free_port(), free_port()
    serial_base = 90_000_000 + uuid.uuid4().int % 9_000_000
    settings = make_settings(
        sim_port=sim_port, sim_meters=METERS, sim_serial_base=serial_base, sim_speedup=3600,
        gateway_rate_factor=3600,  # the gateway knows its meters run an hour a second
        gateway_meters=f"127.0.0.1:{sim_port}/1-{METERS}", poll_interval=0.2,
        api_port=api_port, rating_batch_window=0.05,
    )
    balances = [POOR_BALANCE if n == POOR else RICH_BALANCE for n in range(1, METERS + 1)]
    meters = await customers(
        conn, balances, serials=[str(serial_base + n) for n in range(METERS)],
        account_ids=[f"E2E-{serial_base + n}" for n in range(METERS)],
        gateway_id=settings.gateway_id, price=PRICE,
    )
    openings = {m.account_id: b for m, b in zip(meters, balances, strict=True)}
    poor = meters[POOR - 1]

    # the test listens to what the gateway publishes, to deliver one batch again later
    listener = MqttLink(settings, unique("listener"))
    await listener.connect([settings.topic(settings.gateway_id, "readings")])

    admin = await person(conn, Role.ADMIN)  # sees every account; may record a top-up
    token = access_token(settings, User(admin.id, admin.username, admin.role, "", "ru"),
                         ROLE_SCOPES[Role.ADMIN])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                 headers={"Authorization": f"Bearer {token}"}) as api:
        with platform(settings, tmp_path):
            poor_meter = await modbus(sim_port, POOR)
            # 1. the poor subscriber runs out: its relay opens and its consumption stops
            await until(lambda: _relay_open(poor_meter),
                        what="the poor meter's relay to open")
            command = await until(lambda: _last_command(api, poor.meter_id, "acknowledged"),
                                  what="the disconnect to be acknowledged")
            assert command is not None and command["action"] == "disconnect"
            frozen = await poor_meter.energy()
            seq = await forwarded(conn, settings.gateway_id)
            await until(lambda: _after(conn, settings.gateway_id, seq + 3),
                        what="three more batches")
            assert await poor_meter.energy() == frozen
            account = (await api.get(f"/accounts/{poor.account_id}")).json()
            assert Decimal(account["balances"][0]["amount"]) <= 0

            # 2. balances fell by exactly consumption x tariff, to the last digit
            await balances_match_consumption(conn, openings)

            # 3. the same MQTT batch again, and the same Kafka records again: nothing changes
            captured: Message = await asyncio.wait_for(listener.messages.get(), 10)
            charges_before = await _charges(conn, [m.meter_id for m in meters])
            await listener.publish(captured.topic, captured.payload)
            await _redeliver_kafka(settings, 200)
            seq = await forwarded(conn, settings.gateway_id)
            await until(lambda: _after(conn, settings.gateway_id, seq + 2),
                        what="batches after the redelivered one")
            await rating_caught_up(settings)
            await balances_match_consumption(conn, openings)
            assert await _charges(conn, [m.meter_id for m in meters]) >= charges_before

            # 4. a top-up closes the relay again and consumption resumes
            reply = await api.post(f"/accounts/{poor.account_id}/topups",
                                   json={"amount": "500.00"},
                                   headers={"Idempotency-Key": unique("topup")})
            assert reply.status_code == 201, reply.text
            await until(poor_meter.relay_closed, what="the relay to close after the top-up")
            await until(lambda: _grew(poor_meter, frozen), what="consumption to resume")
            command = await until(lambda: _last_command(api, poor.meter_id, "acknowledged",
                                                        "connect"),
                                  what="the reconnect to be acknowledged")
            await rating_caught_up(settings)
            rows = await balances_match_consumption(conn, openings)
            assert dict(rows)[poor.account_id] > 0
    await listener.close()
    cur = await conn.execute("SELECT count(*) FROM dead_letters WHERE payload LIKE %s",
                             (f"%{serial_base}%",))
    row = await cur.fetchone()
    assert row == (0,)


async def _relay_open(meter: Meter) -> bool:
    return not await meter.relay_closed()


async def _grew(meter: Meter, before: float) -> bool:
    return await meter.energy() > before


async def _after(conn: psycopg.AsyncConnection[Any], gateway: str, seq: int) -> bool:
    return await forwarded(conn, gateway) >= seq


async def _charges(conn: psycopg.AsyncConnection[Any], serials: list[str]) -> int:
    cur = await conn.execute("SELECT count(*) FROM charges WHERE meter_id = ANY(%s)", (serials,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _last_command(api: httpx.AsyncClient, meter: str, status: str,
                        action: str = "disconnect") -> dict[str, Any] | None:
    reply = await api.get(f"/meters/{meter}")
    if reply.status_code != 200:
        return None
    command = reply.json().get("last_relay_command")
    if command and command["status"] == status and command["action"] == action:
        return dict(command)
    return None


async def _redeliver_kafka(settings: Settings, count: int) -> None:
    """Produce again, verbatim, the first ``count`` records of the readings topic (or all
    there are, if fewer)."""
    consumer = AIOKafkaConsumer(settings.readings_topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=unique("replay"), auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        records: list[tuple[int, bytes]] = []
        async with asyncio.timeout(20):
            while len(records) < count:
                fetched = await consumer.getmany(timeout_ms=500)
                if not fetched and records:
                    break  # the whole topic so far
                for batch in fetched.values():
                    records += [(m.partition, m.value) for m in batch]
        for partition, value in records[:count]:  # to the partition of its accounts
            await producer.send(settings.readings_topic, value=value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
