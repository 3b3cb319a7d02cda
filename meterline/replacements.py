"""Meter replacements: a new meter (a new serial) takes an old one's place on its account.

A replacement is reported by the gateway that finds another meter at a known address
(``MeterReplacement`` in a readings batch, with the old meter's closing readings) or registered
by an operator (``meterline meters replace``). ``replace_meter`` records it in the caller's
transaction:

- the old meter is closed (``meters.replaced_by``, ``removed_at``): it keeps its history; its
  readings after the replacement are refused by rating. Charging it up to its closing readings
  is the caller's (rating prices them with the batch: ``rating.replacements``);
- the new meter is registered on the same account, provider, utility and gateway, with the old
  one's registers, its profile (the reported one, else the old one's) and the relay state the
  platform last commanded for the old one (a disconnected meter's successor is commanded open
  too);
- the new meter's registers start at their opening readings when they are known, else at their
  first reading (which is not charged);
- one ``meter_replaced`` event (key ``meter_replaced:<old meter>``) and a
  ``meter_replacements`` row.

The same replacement again changes nothing; another one of the same old meter, or a new serial
that is already another meter, is a ``Conflict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg

from meterline.errors import Conflict, Invalid, NotFound
from meterline.events import Event, EventKind, emit
from meterline.profiles import ProfileError
from meterline.profiles.loading import shipped_profiles


@dataclass(frozen=True)
class RegisterReading:
    register: str
    value: Decimal
    ts: datetime


@dataclass(frozen=True)
class Replacement:
    old_meter: str
    new_meter: str
    at: datetime  # when the new meter took over
    source: Literal["gateway", "operator"]
    closing: tuple[RegisterReading, ...] = ()  # the old meter's last readings
    opening: tuple[RegisterReading, ...] = ()  # the new meter's first readings, if known
    profile: str | None = None  # the new meter's device profile, if known
    reason: str = ""


@dataclass(frozen=True)
class Replaced:
    old_meter: str
    new_meter: str
    account_id: str
    provider_id: str
    utility: str
    units: dict[str, str] = field(default_factory=dict)  # register -> unit
    new: bool = True  # False: recorded before, nothing changed now


_OLD = """
SELECT account_id, provider_id, utility, model, profile, gateway_id, has_relay, relay_state,
       replaced_by
  FROM meters WHERE id = %s FOR UPDATE
"""
_REGISTERS = "SELECT code, unit FROM registers WHERE meter_id = %s ORDER BY code"
_METER = "SELECT account_id, provider_id FROM meters WHERE id = %s"
_NEW_METER = """
INSERT INTO meters (id, account_id, provider_id, utility, model, profile, gateway_id, has_relay,
                    relay_state, installed_at)
VALUES (%(id)s, %(account)s, %(provider)s, %(utility)s, %(model)s, %(profile)s, %(gateway)s,
        %(has_relay)s, %(relay_state)s, %(at)s)
"""
_COPY_REGISTERS = """
INSERT INTO registers (meter_id, code, unit)
SELECT %s, code, unit FROM registers WHERE meter_id = %s
ON CONFLICT DO NOTHING
"""
_CLOSE = "UPDATE meters SET replaced_by = %s, removed_at = %s WHERE id = %s"
_RECORD = """
INSERT INTO meter_replacements (old_meter, new_meter, replaced_at, source, closing, opening,
                                reason)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
"""
_OPEN = """
INSERT INTO register_state (meter_id, register, last_ts, last_value)
SELECT %s, register, ts, value FROM unnest(%s::text[], %s::timestamptz[], %s::numeric[])
       AS o(register, ts, value)
ON CONFLICT (meter_id, register) DO NOTHING
"""
_COMMAND_OPEN = """
INSERT INTO relay_commands (meter_id, action, reason)
VALUES (%s, 'disconnect', 'meter replaced while disconnected')
"""


def _readings_json(readings: tuple[RegisterReading, ...]) -> str:
    return json.dumps([{"register": r.register, "value": format(r.value, "f"),
                        "ts": r.ts.isoformat()} for r in readings])


def _check(replacement: Replacement, registers: dict[str, str]) -> None:
    if replacement.old_meter == replacement.new_meter:
        raise Invalid(f"meter {replacement.old_meter} cannot replace itself",
                      code="bad-replacement")
    if replacement.at.tzinfo is None:
        raise Invalid("the time of a replacement needs a time zone", code="naive-time")
    for what, readings in (("closing", replacement.closing), ("opening", replacement.opening)):
        for r in readings:
            if r.register not in registers:
                raise Invalid(f"meter {replacement.old_meter} has no register {r.register} "
                              f"(its {what} reading); it has {', '.join(registers)}",
                              code="bad-replacement")
            if r.value < 0 or r.ts.tzinfo is None:
                raise Invalid(f"a {what} reading is a value of 0 or more at a time with a time "
                              "zone", code="bad-replacement")
    if replacement.profile is not None:
        try:
            known = replacement.profile in shipped_profiles()
        except ProfileError:
            known = False
        if not known:
            raise Invalid(f"no device profile {replacement.profile}", code="bad-replacement")


async def replace_meter(conn: psycopg.AsyncConnection[Any],
                        replacement: Replacement) -> Replaced:
    """Record ``replacement`` in the caller's transaction (see the module)."""
    old = replacement.old_meter
    cur = await conn.execute(_OLD, (old,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No meter {old}")
    account, provider, utility, model, profile, gateway, has_relay, relay_state, done = row
    cur = await conn.execute(_REGISTERS, (old,))
    registers = dict(await cur.fetchall())
    _check(replacement, registers)
    replaced = Replaced(old, replacement.new_meter, account, provider, utility, registers)
    if done is not None:
        if done != replacement.new_meter:
            raise Conflict(f"meter {old} was replaced by {done} already")
        return Replaced(old, done, account, provider, utility, registers, new=False)
    cur = await conn.execute(_METER, (replacement.new_meter,))
    if await cur.fetchone() is not None:
        raise Conflict(f"meter {replacement.new_meter} is registered already")
    new_profile = replacement.profile or profile
    if replacement.profile is not None:
        spec = shipped_profiles()[replacement.profile]
        model, has_relay = spec.model, spec.relay is not None
    await conn.execute(_NEW_METER, {
        "id": replacement.new_meter, "account": account, "provider": provider,
        "utility": utility, "model": model, "profile": new_profile, "gateway": gateway,
        "has_relay": has_relay, "relay_state": relay_state if has_relay else "connected",
        "at": replacement.at})
    await conn.execute(_COPY_REGISTERS, (replacement.new_meter, old))
    await conn.execute(_CLOSE, (replacement.new_meter, replacement.at, old))
    await conn.execute(_RECORD, (old, replacement.new_meter, replacement.at, replacement.source,
                                 _readings_json(replacement.closing),
                                 _readings_json(replacement.opening), replacement.reason))
    if replacement.opening:
        await conn.execute(_OPEN, (replacement.new_meter,
                                   [r.register for r in replacement.opening],
                                   [r.ts for r in replacement.opening],
                                   [r.value for r in replacement.opening]))
    if has_relay and relay_state == "disconnected":
        await conn.execute(_COMMAND_OPEN, (replacement.new_meter,))
    await emit(conn, [Event(
        EventKind.METER_REPLACED, account_id=account, provider_id=provider, meter_id=old,
        key=f"meter_replaced:{old}", occurred_at=replacement.at, payload={
            "old_meter": old, "new_meter": replacement.new_meter, "source": replacement.source,
            "closing": [{"register": r.register, "value": r.value, "ts": r.ts}
                        for r in replacement.closing],
            "opening": [{"register": r.register, "value": r.value, "ts": r.ts}
                        for r in replacement.opening],
            "reason": replacement.reason})])
    return replaced
