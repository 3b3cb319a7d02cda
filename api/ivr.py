"""The phone line: an IVR platform calls ``POST /ivr/turns`` with the caller's number and the
digits keyed, and gets back what to say.

The caller is known by their number (`phone_numbers`: the numbers an account's people call
from). The digits:

- nothing, or anything unknown: the menu;
- ``1``: the balance with each provider;
- ``2``: the meters read by people, numbered, with their last readings;
- ``2`` + the meter's number + ``*`` + the reading (``*`` again for the decimal point), ``#``
  optional: submit it (``21*12345*6`` is 12345.6 on meter 1). The answer says whether it is
  accepted and for which month, or why not — the same checks as the app and the web
  (`meterline.meter_readings`).

The platform authenticates with an API key holding the scope ``ivr``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Security
from pydantic import BaseModel, Field

from api.auth.callers import current_caller
from api.auth.tokens import Caller
from api.problems import problem_responses
from api.state import Pool
from api.texts import Lang, catalogue, month_name, roubles
from meterline.errors import DomainError
from meterline.meter_readings import submit
from meterline.users import Scope

router = APIRouter(prefix="/ivr", tags=["phone line"])

Platform = Annotated[Caller, Security(current_caller, scopes=[Scope.IVR])]

class Turn(BaseModel):
    caller: str = Field(pattern=r"^\+?[0-9]{7,15}$", description="The caller's number, E.164.",
                        examples=["+79161234567"])
    digits: str = Field("", pattern=r"^[0-9*#]{0,40}$", description="What the caller keyed.",
                        examples=["21*12345*6#"])
    lang: Lang = Field("ru", description="The language to answer in.")


class Say(BaseModel):
    say: str = Field(description="What the platform says to the caller.")
    hangup: bool = Field(description="True when the call is done.")
    account_id: str | None = Field(description="The account the number belongs to, if any.")


_ACCOUNT = "SELECT account_id FROM phone_numbers WHERE phone = %s"
_BALANCES = """
SELECT p.name, b.amount FROM balances b JOIN providers p ON p.id = b.provider_id
 WHERE b.account_id = %s ORDER BY p.name
"""
_METERS = """
SELECT m.id, m.utility,
       (SELECT value FROM readings r WHERE r.meter_id = m.id ORDER BY ts DESC LIMIT 1)
  FROM meters m
 WHERE m.account_id = %s AND m.gateway_id IS NULL
 ORDER BY m.id
"""


async def _turn(conn: psycopg.AsyncConnection[Any], account: str, turn: Turn) -> Say:
    texts = catalogue(turn.lang)
    say: dict[str, str] = texts["ivr"]
    digits = turn.digits.rstrip("#")

    def done(text: str, hangup: bool = False) -> Say:
        return Say(say=text, hangup=hangup, account_id=account)

    if digits == "1":
        cur = await conn.execute(_BALANCES, (account,))
        lines = [say["balance"].format(provider=name, amount=roubles(amount, turn.lang))
                 for name, amount in await cur.fetchall()]
        return done(" ".join([*lines, say["menu"]]))
    if not digits.startswith("2"):
        return done(say["menu"])
    cur = await conn.execute(_METERS, (account,))
    meters = await cur.fetchall()
    if not meters:
        return done(say["no_meters"] + " " + say["menu"])
    if digits == "2":
        lines = [say["meter"].format(n=n, utility=texts["utility"][utility],
                                     serial=serial,
                                     last=say["none"] if last is None else f"{last.normalize()}")
                 for n, (serial, utility, last) in enumerate(meters, start=1)]
        return done(" ".join([*lines, say["how"]]))
    number, _, keyed = digits[1:].partition("*")
    if not number.isdigit() or not 1 <= int(number) <= len(meters) or not keyed:
        return done(say["no_such_meter"].format(n=number or "?") + " " + say["how"])
    whole, _, fraction = keyed.partition("*")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or "*" in fraction:
        return done(say["how"])
    value = Decimal(f"{whole}.{fraction}" if fraction else whole)
    try:
        async with conn.transaction():
            accepted = await submit(conn, meters[int(number) - 1][0], value, "phone")
    except DomainError as exc:
        reason = texts["refusal"].get(exc.code, exc.detail)
        return done(say["refused"].format(reason=reason))
    key = "late" if accepted.late else "accepted"
    return done(say[key].format(value=f"{value.normalize()}", day=accepted.submission_day,
                                month=month_name(accepted.counts_for, turn.lang)), hangup=True)


@router.post("/turns", response_model=Say, summary="One turn of a phone call",
             responses=problem_responses(401, 403, 422))
async def phone_turn(turn: Turn, platform: Platform, pool: Pool) -> Say:
    """What to say to a caller who keyed `digits` (see the module's menu): their balance, their
    meters, or whether their reading is accepted and for which month, or why not."""
    phone = "+" + turn.caller.lstrip("+")
    async with pool.connection() as conn:
        cur = await conn.execute(_ACCOUNT, (phone,))
        row = await cur.fetchone()
        if row is None:
            return Say(say=catalogue(turn.lang)["ivr"]["unknown_number"], hangup=True,
                       account_id=None)
        return await _turn(conn, row[0], turn)
