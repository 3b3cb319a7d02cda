"""The operator's desk as an API (scope ``desk``): find accounts, correct a reading with a
reason. The desk's pages (`api.pages.desk`) use the same functions.

Search matches every part given (all must match): the structured address where the account
has one (region, city, street, house, apartment of the bill run's address hierarchy), else
its address text; the account number (or ЕЛС); a meter serial; the holder's name.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, Depends, Header, Path, Query
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from api.amounts import Exact, ReadingValue
from api.auth.access import account_with
from api.auth.callers import Desk
from api.ids import PRINTABLE, MeterPath
from api.problems import ProblemError, problem_responses
from api.state import Pool
from meterline.adjustments import adjust
from meterline.audit import record
from meterline.contracts import ProviderId, Timestamp
from meterline.meter_readings import StaleReading, correct
from meterline.units import Service
from meterline.users import Scope

router = APIRouter(tags=["operator's desk"])

SEARCH_LIMIT = 50


class SearchParts(BaseModel):
    region: str = ""
    city: str = ""
    street: str = ""
    house: str = ""
    apartment: str = ""
    account: str = ""
    meter: str = ""
    holder: str = ""

    def given(self) -> bool:
        return any(getattr(self, name).strip() for name in type(self).model_fields)


class FoundAccount(BaseModel):
    id: str
    holder_name: str
    address: str
    meters: list[str]


def _like(text: str) -> str:
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_SEARCH = """
SELECT a.id, a.holder_name, ad.full_text AS address,
       coalesce((SELECT array_agg(m.id ORDER BY m.id) FROM meters m WHERE m.account_id = a.id),
                '{}') AS meters
  FROM accounts a
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN premises pr ON pr.id = a.premises_id
  LEFT JOIN houses h ON h.id = pr.house_id
  LEFT JOIN streets s ON s.id = h.street_id
  LEFT JOIN cities c ON c.id = s.city_id
  LEFT JOIN regions r ON r.code = c.region_code
 WHERE (%(region)s = '' OR ad.region = %(region)s OR r.code = %(region)s
        OR r.name ILIKE %(region_like)s)
   AND (%(city)s = '' OR c.name ILIKE %(city_like)s
        OR (a.premises_id IS NULL AND ad.full_text ILIKE %(city_like)s))
   AND (%(street)s = '' OR s.name ILIKE %(street_like)s
        OR (a.premises_id IS NULL AND ad.full_text ILIKE %(street_like)s))
   AND (%(house)s = '' OR h.number = %(house)s
        OR (a.premises_id IS NULL AND ad.full_text ILIKE %(house_like)s))
   AND (%(apartment)s = '' OR pr.number = %(apartment)s
        OR (a.premises_id IS NULL AND ad.full_text ILIKE %(apartment_like)s))
   AND (%(account)s = '' OR a.id ILIKE %(account_like)s OR a.els = %(account)s)
   AND (%(holder)s = '' OR a.holder_name ILIKE %(holder_like)s)
   AND (%(meter)s = '' OR EXISTS (SELECT 1 FROM meters m
                                   WHERE m.account_id = a.id AND m.id ILIKE %(meter_like)s))
 ORDER BY a.id
 LIMIT %(limit)s
"""


async def search_accounts(conn: psycopg.AsyncConnection[Any],
                          parts: SearchParts) -> list[FoundAccount]:
    """Accounts matching every part given (none given: none found)."""
    if not parts.given():
        return []
    values = {k: v.strip() for k, v in parts.model_dump().items()}
    params: dict[str, Any] = {**values, **{f"{k}_like": _like(v) for k, v in values.items()},
                              "limit": SEARCH_LIMIT}
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_SEARCH, params)
    return [FoundAccount.model_validate(r) for r in await cur.fetchall()]


Part = Annotated[str, Query(max_length=100, pattern=PRINTABLE)]


@router.get("/desk/accounts", response_model=list[FoundAccount], summary="Find accounts",
            responses=problem_responses(401, 403, 422))
async def find_accounts(
    caller: Desk, pool: Pool, region: Part = "", city: Part = "", street: Part = "",
    house: Part = "", apartment: Part = "", account: Part = "", meter: Part = "",
    holder: Part = "",
) -> list[FoundAccount]:
    """Accounts matching every part given, at most 50, by account number. Parts match as
    substrings, case-insensitive (house and apartment numbers of the structured address
    exactly)."""
    parts = SearchParts(region=region, city=city, street=street, house=house,
                        apartment=apartment, account=account, meter=meter, holder=holder)
    async with pool.connection() as conn:
        return await search_accounts(conn, parts)


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: ReadingValue
    reason: str = Field(min_length=1, max_length=1000, pattern=PRINTABLE,
                        description="Why: kept in the audit log.")


class Corrected(BaseModel):
    meter_id: str
    register: str = Field(description="Register code, e.g. volume.")
    ts: Timestamp
    before: Exact
    after: Exact
    audit_id: int


async def correct_reading(
    conn: psycopg.AsyncConnection[Any], caller: Any, meter_id: str, register: str,
    ts: datetime, value: Decimal, reason: str, if_version: str | None = None,
) -> Corrected:
    """Correct the reading and log it (who, what, when, before, after, why) in one go; the
    caller's transaction."""
    before, source = await correct(conn, meter_id, register, ts, value, if_version=if_version)
    cur = await conn.execute("SELECT account_id FROM meters WHERE id = %s", (meter_id,))
    row = await cur.fetchone()
    audit_id = await record(
        conn, user_id=caller.user_id, username=caller.username, action="reading.correct",
        account_id=row[0] if row else None, subject=f"reading {meter_id} {register} "
        f"{ts.isoformat()}", reason=reason,
        before={"value": str(before), "source": source},
        after={"value": str(value), "source": "operator"})
    return Corrected(meter_id=meter_id, register=register, ts=ts, before=before, after=value,
                     audit_id=audit_id)


@router.put("/meters/{meter_id}/readings/{register}/{ts}", response_model=Corrected,
            summary="Correct a reading people submitted",
            responses=problem_responses(401, 403, 404, 409, 412, 422))
async def put_correction(
    meter_id: MeterPath, register: Annotated[str, Path(max_length=64, pattern=r"^[a-z_]+$")],
    ts: Timestamp, body: Correction, caller: Desk, pool: Pool,
    if_match: Annotated[str | None, Header(
        max_length=100, description="The reading's `etag` (from GET /meters/{id}/readings): "
        "412 when it changed since.")] = None,
) -> Corrected:
    """A typing slip in a reading submitted by app, web, phone or an operator: the value is
    replaced (it must lie between the readings before and after it), the source becomes
    `operator`, and the audit log keeps who, when, before, after and the reason. A gateway's
    reading is not corrected by hand (409)."""
    version = if_match.strip().removeprefix("W/").strip('"') if if_match else None
    try:
        async with pool.connection() as conn, conn.transaction():
            return await correct_reading(conn, caller, meter_id, register, ts, body.value,
                                         body.reason, version)
    except StaleReading as exc:
        raise ProblemError(412, exc.detail, slug=exc.code,
                           title="Precondition failed") from exc


class AdjustmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID | None = Field(None, description="Send the same id again to be sure it is booked "
                            "once (a new one is made when left out).")
    provider_id: ProviderId
    service: Service
    amount: Decimal = Field(allow_inf_nan=False, description="Roubles, whole kopecks: "
                            "positive credits the subscriber, negative debits.",
                            examples=["-150.00"])
    reason: str = Field(min_length=1, max_length=1000, pattern=PRINTABLE,
                        description="Why: kept with the entry and in the audit log.")


class AdjustmentAnswer(BaseModel):
    key: str = Field(description="The ledger entry's key.")
    account_id: str
    provider_id: str
    amount: Exact
    balance_before: Exact
    balance_after: Exact
    audit_id: int | None = Field(description="Null when this id was booked before.")


DeskAccount = Annotated[str, Depends(account_with(Scope.DESK))]


async def book_adjustment(conn: psycopg.AsyncConnection[Any], caller: Any, account_id: str,
                          body: AdjustmentRequest) -> AdjustmentAnswer:
    done = await adjust(conn, account_id=account_id, provider_id=body.provider_id,
                        amount=body.amount, service=body.service, reason=body.reason,
                        user_id=caller.user_id, username=caller.username,
                        adjustment_id=body.id)
    return AdjustmentAnswer(key=done.key, account_id=done.account_id,
                            provider_id=done.provider_id, amount=done.amount,
                            balance_before=done.balance_before,
                            balance_after=done.balance_after, audit_id=done.audit_id)


@router.post("/accounts/{account_id}/adjustments", status_code=201,
             response_model=AdjustmentAnswer, summary="A manual balance adjustment",
             responses=problem_responses(401, 403, 404, 409, 422))
async def post_adjustment(account_id: DeskAccount, body: AdjustmentRequest, caller: Desk,
                          pool: Pool) -> AdjustmentAnswer:
    """One ledger entry (`subscriber ±amount`, `revenue ∓amount` for the service, in the
    current billing period) with the reason, and an audit log line with the balance before
    and after; the relay follows the new balance. Needs the scope `desk`."""
    async with pool.connection() as conn, conn.transaction():
        return await book_adjustment(conn, caller, account_id, body)

