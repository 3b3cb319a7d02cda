"""Meter readings submitted by people — by app, web, phone or an operator — for the meters
people read (no gateway).

Every channel goes through `submit`: the reading is checked against the meter's last one
(never lower; never more than a plausible consumption for the days since), stored in
``readings`` with its source and no gateway, and placed in a billing period by DOMAIN §3: a
reading submitted up to the provider's submission day (25th by default,
``providers.reading_submission_day``), in the account's own time zone, counts for that month;
a later one counts for the next month, and the answer says so. A refusal is an `Invalid`
with a machine-readable code and a reason a person can act on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from meterline.errors import Conflict, Invalid, NotFound
from meterline.instants import micros
from meterline.telemetry import ReadingColumns, micro_units, write_readings
from meterline.units import Utility

Source = Literal["app", "web", "phone", "operator"]

# The most a household meter plausibly adds in a day; a reading beyond this times the days
# since the last one (at least one day) is refused as a typing slip. An operator's correction
# is not held to it.
PLAUSIBLE_PER_DAY: dict[Utility, Decimal] = {
    Utility.ELECTRICITY: Decimal(300),  # kWh
    Utility.COLD_WATER: Decimal(5),  # m3
    Utility.HOT_WATER: Decimal(3),  # m3
    Utility.GAS: Decimal(30),  # m3
    Utility.HEAT: Decimal(2),  # Gcal
}
DECIMALS = 6  # readings are NUMERIC(20, 6)


@dataclass(frozen=True)
class Previous:
    value: Decimal
    at: datetime


@dataclass(frozen=True)
class Accepted:
    meter_id: str
    register: str
    unit: str
    value: Decimal
    submitted_at: datetime
    source: Source
    counts_for: date  # first day of the billing month the reading counts for
    late: bool  # submitted after the submission day: counts for the next month
    submission_day: int
    previous: Previous | None

    @property
    def consumption(self) -> Decimal | None:
        return None if self.previous is None else self.value - self.previous.value


def period_of(submitted_at: datetime, time_zone: str, submission_day: int) -> tuple[date, bool]:
    """(first day of the month the reading counts for, whether it came after the day)."""
    local = submitted_at.astimezone(ZoneInfo(time_zone)).date()
    first = local.replace(day=1)
    if local.day <= submission_day:
        return first, False
    return (first.replace(year=first.year + 1, month=1) if first.month == 12
            else first.replace(month=first.month + 1)), True


_METER = """
SELECT m.utility, m.gateway_id, ad.time_zone, p.reading_submission_day
  FROM meters m
  JOIN accounts a ON a.id = m.account_id
  JOIN addresses ad ON ad.id = a.address_id
  JOIN providers p ON p.id = m.provider_id
 WHERE m.id = %s
   FOR UPDATE OF m
"""

_LAST = """
SELECT value, ts FROM readings WHERE meter_id = %s AND register = %s ORDER BY ts DESC LIMIT 1
"""



async def submit(
    conn: psycopg.AsyncConnection[Any],
    meter_id: str,
    value: Decimal,
    source: Source,
    *,
    register: str | None = None,
    at: datetime | None = None,
) -> Accepted:
    """Check and store a reading of ``meter_id`` (in the caller's transaction; concurrent
    submissions for one meter take turns)."""
    cur = await conn.execute(_METER, (meter_id,))
    meter = await cur.fetchone()
    if meter is None:
        raise NotFound(f"No meter {meter_id}")
    utility, gateway, time_zone, submission_day = meter
    if gateway is not None and source != "operator":
        raise Conflict(f"meter {meter_id} is read automatically through gateway {gateway}; "
                       "it needs no reading", code="meter-read-automatically")
    cur = await conn.execute("SELECT code, unit FROM registers WHERE meter_id = %s ORDER BY code",
                             (meter_id,))
    registers = dict(await cur.fetchall())
    if register is None and len(registers) == 1:
        register = next(iter(registers))
    elif register is None or register not in registers:
        raise Invalid(f"meter {meter_id} has registers {', '.join(registers)}; say which",
                      field=["body", "register"], code="unknown-register")
    _check_shape(value)
    cur = await conn.execute(_LAST, (meter_id, register))
    last = await cur.fetchone()
    previous = None if last is None else Previous(last[0], last[1])
    now = at or datetime.now(UTC)
    if previous is not None:
        _check_against(previous, value, now, Utility(utility), registers[register],
                       strict=source != "operator")
    # through the telemetry writer, like every reading: it flags a reading of a closed period
    # and logs a late one for the rollups
    stored = await write_readings(conn, ReadingColumns(
        meter=[meter_id], register=register, ts=np.array([micros(now)], dtype=np.int64),
        value=np.array([micro_units(value)], dtype=np.int64), gateway=None, source=source))
    if stored == 0:
        raise Conflict(f"meter {meter_id} already has a reading at {now.isoformat()}",
                       code="reading-exists")
    counts_for, late = period_of(now, time_zone, submission_day)
    return Accepted(meter_id, register, registers[register], value, now, source, counts_for,
                    late, submission_day, previous)


def _check_shape(value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise Invalid("a reading is a number, 0 or more", field=["body", "value"],
                      code="reading-invalid")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMALS and value != round(value, DECIMALS):
        raise Invalid(f"a reading has at most {DECIMALS} decimals", field=["body", "value"],
                      code="reading-invalid")
    if value >= Decimal(10) ** (20 - DECIMALS):
        raise Invalid("the reading is too large for any meter", field=["body", "value"],
                      code="reading-invalid")


def _plain(value: Decimal) -> str:
    """12.500000 -> "12.5", 100.000 -> "100"."""
    return format(value.normalize(), "f")


def _check_against(previous: Previous, value: Decimal, now: datetime, utility: Utility,
                   unit: str, *, strict: bool) -> None:
    if value < previous.value:
        raise Invalid(
            f"{_plain(value)} is lower than the last reading, {_plain(previous.value)} {unit} on "
            f"{previous.at.date().isoformat()}; check the digits (a meter does not run back)",
            field=["body", "value"], code="reading-lower")
    days = max(Decimal(1), Decimal((now - previous.at).total_seconds()) / 86400)
    most = PLAUSIBLE_PER_DAY[utility] * days
    if strict and value - previous.value > most:
        raise Invalid(
            f"{_plain(value)} would mean {_plain(value - previous.value)} {unit} since "
            f"{previous.at.date().isoformat()}, more than a household uses "
            f"({most:.0f} {unit} at most); check the digits",
            field=["body", "value"], code="reading-implausible")


_REGISTER_OF: dict[Utility, tuple[str, str]] = {
    Utility.ELECTRICITY: ("active_import", "kWh"),
    Utility.COLD_WATER: ("volume", "m3"),
    Utility.HOT_WATER: ("volume", "m3"),
    Utility.GAS: ("volume", "m3"),
    Utility.HEAT: ("heat_energy", "Gcal"),
}


async def register_meter_read_by_people(
    conn: psycopg.AsyncConnection[Any], serial: str, account_id: str, provider_id: str,
    utility: Utility, model: str = "manual",
) -> bool:
    """Put a meter without a gateway on an account (its one register by the utility); False
    when the serial is registered already (nothing changes)."""
    register, unit = _REGISTER_OF[utility]
    cur = await conn.execute(
        "INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id, has_relay)"
        " VALUES (%s, %s, %s, %s, %s, NULL, false) ON CONFLICT (id) DO NOTHING RETURNING id",
        (serial, account_id, provider_id, utility, model))
    if await cur.fetchone() is None:
        return False
    await conn.execute("INSERT INTO registers (meter_id, code, unit) VALUES (%s, %s, %s)",
                       (serial, register, unit))
    return True



_INVALIDATE = """
INSERT INTO readings_invalidations (meter_id, register, lo, hi)
SELECT %(m)s, %(r)s, %(ts)s, %(ts)s
 WHERE %(ts)s < (SELECT watermark FROM readings_rollups WHERE name = '15m' FOR SHARE)
"""

_NEIGHBOURS = """
SELECT (SELECT value FROM readings WHERE meter_id = %(m)s AND register = %(r)s AND ts < %(ts)s
         ORDER BY ts DESC LIMIT 1),
       (SELECT value FROM readings WHERE meter_id = %(m)s AND register = %(r)s AND ts > %(ts)s
         ORDER BY ts LIMIT 1)
"""


class StaleReading(Conflict):
    """The reading changed since the version the correction was made against."""

    code = "reading-changed"


def version_of(value: Decimal, source: str) -> str:
    """A stored reading's version (its ETag): changes whenever its value or source does."""
    return hashlib.sha256(f"{_plain(value)}|{source}".encode()).hexdigest()[:16]


async def correct(
    conn: psycopg.AsyncConnection[Any], meter_id: str, register: str, ts: datetime,
    value: Decimal, *, if_version: str | None = None,
) -> tuple[Decimal, str]:
    """An operator's correction of a reading people submitted (a typing slip): the value
    changes in place and the source becomes ``operator``; it must stay between the readings
    before and after it. Returns (value before, source before); the caller writes the audit log."""
    _check_shape(value)
    cur = await conn.execute(
        "SELECT value, source, period_closed FROM readings"
        " WHERE meter_id = %s AND register = %s AND ts = %s FOR UPDATE", (meter_id, register, ts))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No reading of meter {meter_id} {register} at {ts.isoformat()}")
    if if_version is not None and if_version != version_of(row[0], row[1]):
        raise StaleReading(f"the reading is now {_plain(row[0])} ({row[1]}); look again "
                           "before correcting it")
    if row[2]:
        raise Conflict("the reading's billing period is closed: its bill stands; submit a new "
                       "reading, and the next bill accounts for the difference",
                       code="period-closed")
    if row[1] == "gateway":
        raise Conflict("a gateway's reading was priced as it came; it is corrected by a "
                       "later reading, not by hand", code="reading-from-gateway")
    cur = await conn.execute(_NEIGHBOURS, {"m": meter_id, "r": register, "ts": ts})
    lower, upper = await cur.fetchone() or (None, None)
    if (lower is not None and value < lower) or (upper is not None and value > upper):
        raise Invalid(f"{_plain(value)} must lie between the readings before and after it "
                      f"({_plain(lower) if lower is not None else '-'} … "
                      f"{_plain(upper) if upper is not None else '-'})",
                      field=["body", "value"], code="reading-out-of-order")
    await conn.execute(
        "UPDATE readings SET value = %s, source = 'operator'"
        " WHERE meter_id = %s AND register = %s AND ts = %s", (value, meter_id, register, ts))
    # a value changed under the rollups' watermark: their buckets are recomputed (plain
    # PostgreSQL; TimescaleDB's own invalidation log sees the update)
    await conn.execute(_INVALIDATE, {"m": meter_id, "r": register, "ts": ts})
    return row[0], row[1]
