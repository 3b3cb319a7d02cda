"""Readings by people: checked against the last one, stored with their source, and counted
for the month DOMAIN §3 says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meterline.errors import Conflict, Invalid
from meterline.meter_readings import correct, period_of, submit
from tests.factories import customer, meter_read_by_people

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("at", "zone", "day", "expected"), [
    (datetime(2026, 11, 25, 20, 59, tzinfo=UTC), "Europe/Moscow", 25, (date(2026, 11, 1), False)),
    # 21:00 UTC on the 25th is already the 26th in Moscow
    (datetime(2026, 11, 25, 21, 0, tzinfo=UTC), "Europe/Moscow", 25, (date(2026, 12, 1), True)),
    (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), "Europe/Moscow", 25, (date(2027, 1, 1), True)),
    (datetime(2026, 11, 25, 21, 0, tzinfo=UTC), "Asia/Vladivostok", 26, (date(2026, 11, 1),
                                                                          False)),
    (datetime(2026, 2, 28, 10, 0, tzinfo=UTC), "Europe/Moscow", 31, (date(2026, 2, 1), False)),
])
def test_the_submission_day_in_the_accounts_time_zone_decides_the_month(
    at: datetime, zone: str, day: int, expected: tuple[date, bool],
) -> None:
    assert period_of(at, zone, day) == expected


async def test_readings_are_checked_against_the_last_one(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))

    first = await submit(conn, meter, Decimal("100.5"), "web", at=T0)
    assert (first.previous, first.consumption, first.unit) == (None, None, "m3")
    assert (first.counts_for, first.late) == (date(2026, 11, 1), False)

    with pytest.raises(Invalid) as lower:
        await submit(conn, meter, Decimal("99"), "app", at=T0 + timedelta(days=1))
    assert lower.value.code == "reading-lower" and "100.5" in lower.value.detail

    with pytest.raises(Invalid) as implausible:  # 50 m3 of cold water in two days
        await submit(conn, meter, Decimal("150.5"), "app", at=T0 + timedelta(days=2))
    assert implausible.value.code == "reading-implausible"

    later = T0 + timedelta(days=16)  # the 26th: next month
    second = await submit(conn, meter, Decimal("130.25"), "phone", at=later)
    assert second.consumption == Decimal("29.75")
    assert (second.counts_for, second.late) == (date(2026, 12, 1), True)

    cur = await conn.execute("SELECT value, source, gateway_id FROM readings WHERE meter_id = %s"
                             " ORDER BY ts", (meter,))
    assert await cur.fetchall() == [(Decimal("100.5"), "web", None),
                                    (Decimal("130.25"), "phone", None)]


async def test_an_operator_may_correct_beyond_plausible_but_never_lower(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))
    await submit(conn, meter, Decimal("10"), "web", at=T0)
    corrected = await submit(conn, meter, Decimal("900"), "operator", at=T0 + timedelta(hours=1))
    assert corrected.source == "operator"
    with pytest.raises(Invalid):
        await submit(conn, meter, Decimal("5"), "operator", at=T0 + timedelta(hours=2))


async def test_meters_read_through_a_gateway_take_no_readings_from_people(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    smart = await customer(conn, "0")
    with pytest.raises(Conflict) as refused:
        await submit(conn, smart.meter_id, Decimal(1), "app")
    assert refused.value.code == "meter-read-automatically"


@pytest.mark.parametrize("value", ["-1", "1.0000001", "1e20"])
async def test_malformed_values_are_refused(conn: psycopg.AsyncConnection[Any],
                                            value: str) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))
    with pytest.raises(Invalid) as refused:
        await submit(conn, meter, Decimal(value), "web")
    assert refused.value.code == "reading-invalid"


async def test_a_reading_of_a_closed_period_is_not_corrected_in_place(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))
    taken = await submit(conn, meter, Decimal("10"), "web", at=T0)
    await conn.execute("UPDATE readings SET period_closed = true WHERE meter_id = %s", (meter,))
    with pytest.raises(Conflict) as refused:
        await correct(conn, meter, taken.register, T0, Decimal("9"))
    assert refused.value.code == "period-closed"


async def test_a_corrected_reading_below_the_rollups_watermark_is_recomputed(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))
    taken = await submit(conn, meter, Decimal("10"), "web", at=T0)
    cur = await conn.execute("SELECT watermark > %s FROM readings_rollups WHERE name = '15m'",
                             (T0,))
    below = (await cur.fetchone() or (False,))[0]
    await conn.execute("DELETE FROM readings_invalidations WHERE meter_id = %s", (meter,))
    await correct(conn, meter, taken.register, T0, Decimal("9.5"))
    cur = await conn.execute("SELECT lo, hi FROM readings_invalidations WHERE meter_id = %s",
                             (meter,))
    assert await cur.fetchall() == ([(T0, T0)] if below else [])
