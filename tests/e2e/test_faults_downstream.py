"""Meter faults seen downstream: a 16-bit gas counter rolling over, another losing its count
on a power loss, and an electricity meter replaced by one with a low opening reading go from
real Modbus meters through the gateway, Mosquitto, the bridge, Kafka and the rating worker,
and no charge line is ever negative or larger than the meter could have measured; after the
rollover and the reset the meters are charged again. The meters' clock is the test's: it
stands still until the faults are in, then moves ten simulated hours at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg

from meterline.fleet import Provider
from meterline.settings import Settings
from meterline.units import Utility
from simulators.config import MeterGroup, SimulatorConfig, TcpServer
from simulators.faults import PowerLoss, Replacement, Rollover
from simulators.fleet import serve
from tests.conftest import unique
from tests.factories import UtilityMeter, utility_meters
from tests.kafka_probe import rating_caught_up
from tests.services import service
from tests.simulators.fleet_harness import ManualClock
from tests.waiting import until

SPEEDUP = 600
AHEAD = 60.0  # real seconds the test moves the meters' clock on at once: 10 simulated hours
# The most one charge line may hold: what the meter can measure in those 10 hours (a gas
# meter 6 m3/h, an SDM120 12 kWh/h). A wrap priced the wrong way would be about 655 m3 either
# way, a replacement about the old meter's reading.
MOST = {Utility.GAS: Decimal(60), Utility.ELECTRICITY: Decimal(120)}
WRAP = Decimal("655.36")  # 65,536 pulses of 0.01 m3
RATE_FACTOR = 10_000  # ten simulated hours between two polls 0.2 s apart look plausible


async def started(stack: AsyncExitStack, name: str, settings: Settings, logs: Path) -> None:
    """A service as a child process, waited for off the event loop (the meters are served in
    this process and must keep answering meanwhile)."""
    await asyncio.to_thread(stack.enter_context, service(name, settings, logs))


async def readings(conn: psycopg.AsyncConnection[Any], meter: str) -> list[Decimal]:
    cur = await conn.execute("SELECT value FROM readings WHERE meter_id = %s ORDER BY ts",
                             (meter,))
    return [row[0] for row in await cur.fetchall()]


async def charges(conn: psycopg.AsyncConnection[Any], meters: list[str]) -> list[tuple[
        str, Decimal, Any]]:
    cur = await conn.execute("SELECT meter_id, quantity, interval_end FROM charges"
                             " WHERE meter_id = ANY(%s) ORDER BY interval_end", (meters,))
    return list(await cur.fetchall())


async def charged_after_drop(conn: psycopg.AsyncConnection[Any], meter: str,
                             since: datetime) -> bool:
    """A charge of ``meter`` closed by (or after) its first reading since ``since`` that is
    below the last one before: the meter charged again after its counter fell."""
    cur = await conn.execute(
        """SELECT 1 FROM charges c WHERE c.meter_id = %(m)s AND c.interval_end >= (
               SELECT min(r.ts) FROM readings r WHERE r.meter_id = %(m)s AND r.ts > %(t)s
                  AND r.value < (SELECT value FROM readings WHERE meter_id = %(m)s
                                   AND ts <= %(t)s ORDER BY ts DESC LIMIT 1))""",
        {"m": meter, "t": since})
    return await cur.fetchone() is not None


async def test_rollover_reset_and_replacement_never_charge_negative_or_huge_consumption(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    tmp_path: Path,
) -> None:
    base = 60_000_000 + uuid.uuid4().int % 9_000_000
    config = SimulatorConfig(speedup=SPEEDUP, seed=11, tcp=[TcpServer(port=0, meters=[
        MeterGroup(units=[1, 2], profile="pulse-counter-16", utility="gas", serial_base=base),
        MeterGroup(units=[3], profile="eastron-sdm120", serial_base=base + 2),
    ])])
    gas, sdm = Provider(unique("gorgaz"), "Gorgaz"), Provider(unique("energo"), "Energosbyt")
    account = unique("FAULTS")
    serials = [str(base), str(base + 1), str(base + 2)]
    clock = ManualClock()
    async with serve(config, clock=clock) as fleet:
        fleet.inject(1, Rollover(steps=5))  # five pulses below the wrap from its first reading
        gateway_file = tmp_path / "gateway.toml"
        gateway_file.write_text(
            '[polling]\nevery = "0.2s"\nalign = false\n\n'
            f"[checks]\nrate_factor = {RATE_FACTOR}\n\n"
            f'[[lines]]\nname = "tcp-1"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
            f"port = {fleet.port}\ntimeout = 0.5\n\n"
            '[[meters]]\nline = "tcp-1"\nunits = "1-2"\nprofile = "pulse-counter-16"\n'
            'utility = "gas"\n\n'
            '[[meters]]\nline = "tcp-1"\nunits = "3"\nprofile = "eastron-sdm120"\n')
        settings = make_settings(gateway_config=gateway_file, rating_batch_window=0.05)
        await utility_meters(conn, [
            UtilityMeter(serials[0], account, Utility.GAS, "pulse-counter-16", gas,
                         Decimal("7.92")),
            UtilityMeter(serials[1], account, Utility.GAS, "pulse-counter-16", gas,
                         Decimal("7.92")),
            UtilityMeter(serials[2], account, Utility.ELECTRICITY, "eastron-sdm120", sdm,
                         Decimal("5.47")),
        ], gateway_id=settings.gateway_id,
            balances={(account, gas.id): Decimal(10_000), (account, sdm.id): Decimal(10_000)})
        logs = tmp_path / "log"
        async with AsyncExitStack() as stack:
            for name in ("bridge", "rating", "gateway"):
                await started(stack, name, settings, logs)
            # every meter has a level in rating before its fault
            await until(lambda: levels_of_each(conn, serials), 90,
                        what="rating to hold a level of each meter")
            injected = datetime.now(UTC)
            fleet.inject(2, PowerLoss())
            fleet.inject(3, Replacement(serial=base + 3, opening=0.25))

            async def reset_read() -> bool:
                cur = await conn.execute("SELECT 1 FROM readings WHERE meter_id = %s"
                                         " AND ts > %s AND value = 0", (serials[1], injected))
                return await cur.fetchone() is not None

            await until(reset_read, 30, what="the gas counter's reset to zero to be read")
            clock.advance(AHEAD)  # the gas counter passes its wrap, the reset one counts again

            async def wrapped() -> bool:
                values = await readings(conn, serials[0])
                return any(b < a for a, b in pairwise(values))

            await until(wrapped, 60, what="the gas counter to wrap")
            await until(lambda: charged_after_drop(conn, serials[0], injected), 60,
                        what="the rolled-over gas meter to be charged again")
            await until(lambda: charged_after_drop(conn, serials[1], injected), 60,
                        what="the reset gas meter to be charged again from its new count")
            await rating_caught_up(settings)

        lines = await charges(conn, serials)
        utility = {serials[0]: Utility.GAS, serials[1]: Utility.GAS,
                   serials[2]: Utility.ELECTRICITY}
        for meter, quantity, end in lines:
            assert Decimal(0) <= quantity <= MOST[utility[meter]], (meter, quantity, end)
        # the wrap was charged as what flowed across it, not -655 m3 or +655 m3
        cur = await conn.execute(
            "SELECT ts, value FROM readings WHERE meter_id = %s ORDER BY ts", (serials[0],))
        series = await cur.fetchall()
        (top, (wrapped_at, after_wrap)), = [
            (a[1], b) for a, b in pairwise(series) if b[1] < a[1]]
        assert top > WRAP - Decimal("0.2")
        assert await charged_between(conn, serials[0], wrapped_at, wrapped_at) == (
            after_wrap + WRAP - top)
        # the reset meter is charged from zero: all it counted since
        cur = await conn.execute(
            "SELECT min(ts) FILTER (WHERE value = 0 AND ts > %(t)s),"
            " (array_agg(value ORDER BY ts DESC))[1], max(ts)"
            " FROM readings WHERE meter_id = %(m)s", {"t": injected, "m": serials[1]})
        row = await cur.fetchone()
        assert row is not None
        zero_at, counted, last_at = row
        assert counted > 0
        assert await charged_between(conn, serials[1], zero_at, last_at) == counted
    cur = await conn.execute(
        "SELECT count(*) FROM dead_letters WHERE payload LIKE %s AND reason LIKE %s",
        (f"%{serials[0]}%", "%backwards%"))
    assert await cur.fetchone() == (0,)


async def charged_between(conn: psycopg.AsyncConnection[Any], meter: str, first: datetime,
                          last: datetime) -> Decimal:
    """The quantity of ``meter``'s charges closed from ``first`` to ``last`` (inclusive)."""
    cur = await conn.execute(
        "SELECT coalesce(sum(quantity), 0) FROM charges WHERE meter_id = %s"
        " AND interval_end BETWEEN %s AND %s", (meter, first, last))
    row = await cur.fetchone()
    assert row is not None
    return Decimal(row[0])


async def levels_of_each(conn: psycopg.AsyncConnection[Any], meters: list[str]) -> bool:
    cur = await conn.execute("SELECT count(DISTINCT meter_id) FROM register_state"
                             " WHERE meter_id = ANY(%s)", (meters,))
    row = await cur.fetchone()
    return row is not None and row[0] == len(meters)

