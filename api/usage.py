"""GET /accounts/{account_id}/usage: consumption and money of an account over a window, from
the priced intervals (`charges`), bucketed by hour or day.

Rules:
- A charge counts when its interval ENDS inside the window ``(from, to]``, and it counts in
  the bucket holding the last instant of its interval, so an interval ending exactly on a
  bucket boundary (10:59:50-11:00:00) belongs to the bucket before. Charges are never split
  across buckets: each amount stays exact.
- Buckets are UTC hours or days for now (not yet the account's own time zone); buckets
  without charges are left out, and the first and last buckets hold only what the window
  covers when `from` or `to` is not on a bucket boundary.
- One series per meter and register (every meter model today bills one register).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query
from psycopg.rows import dict_row
from pydantic import AwareDatetime, BaseModel, Field

from api.amounts import Exact, Kopecks
from api.auth.access import ReadableAccount
from api.problems import invalid, not_found, problem_responses
from api.state import Pool, read_snapshot
from meterline.contracts import Timestamp

router = APIRouter(prefix="/accounts", tags=["usage"])

Granularity = Literal["hour", "day"]
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=366)


class UsageBucket(BaseModel):
    start: Timestamp = Field(description="Start of the UTC hour or day.")
    quantity: Exact
    unit: str
    amount: Exact = Field(description="Money charged for the quantity, exact.")


class MeterUsage(BaseModel):
    meter_id: str
    utility: str
    register: str = Field(description="Register code, e.g. active_import.")
    unit: str
    buckets: list[UsageBucket]
    total_quantity: Exact
    total_amount: Exact
    total_amount_kopecks: Kopecks


class Usage(BaseModel):
    account_id: str
    from_: Timestamp = Field(serialization_alias="from")
    to: Timestamp
    granularity: Granularity
    time_zone: Literal["UTC"] = Field("UTC", description="Time zone of the buckets.")
    meters: list[MeterUsage]
    total_amount: Exact
    total_amount_kopecks: Kopecks


_ACCOUNT_EXISTS = "SELECT 1 FROM accounts WHERE id = %s"

_ACCOUNT_REGISTERS = """
SELECT m.id AS meter_id, m.utility, r.code AS register, r.unit
  FROM meters m
  JOIN registers r ON r.meter_id = m.id
 WHERE m.account_id = %s
 ORDER BY m.id, r.code
"""

# interval_end - 1 microsecond: the last instant of the interval picks the bucket
_BUCKETS = """
SELECT c.meter_id, m.utility, c.register, c.unit,
       date_trunc(%(granularity)s, c.interval_end - interval '1 microsecond', 'UTC') AS start,
       sum(c.quantity) AS quantity,
       sum(c.amount) AS amount
  FROM charges c
  JOIN meters m ON m.id = c.meter_id
 WHERE c.account_id = %(account)s
   AND c.interval_end > %(from)s
   AND c.interval_end <= %(to)s
 GROUP BY c.meter_id, m.utility, c.register, c.unit, start
 ORDER BY c.meter_id, c.register, start
"""


@dataclass
class _Series:
    meter_id: str
    utility: str
    register: str
    unit: str
    buckets: list[UsageBucket] = field(default_factory=list)

    def result(self) -> MeterUsage:
        quantity = sum((b.quantity for b in self.buckets), Decimal(0))
        amount = sum((b.amount for b in self.buckets), Decimal(0))
        return MeterUsage(
            meter_id=self.meter_id,
            utility=self.utility,
            register=self.register,
            unit=self.unit,
            buckets=self.buckets,
            total_quantity=quantity,
            total_amount=amount,
            total_amount_kopecks=amount,
        )


async def load_usage(
    conn: psycopg.AsyncConnection[Any],
    account_id: str,
    start: datetime,
    end: datetime,
    granularity: Granularity,
) -> Usage | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ACCOUNT_EXISTS, (account_id,))
    if await cur.fetchone() is None:
        return None
    series: dict[tuple[str, str, str], _Series] = {}
    await cur.execute(_ACCOUNT_REGISTERS, (account_id,))
    for r in await cur.fetchall():
        series[(r["meter_id"], r["register"], r["unit"])] = _Series(**r)
    await cur.execute(
        _BUCKETS,
        {"granularity": granularity, "account": account_id, "from": start, "to": end},
    )
    for r in await cur.fetchall():
        key = (r["meter_id"], r["register"], r["unit"])
        # a meter that has left the account still shows what was charged while it was on it
        one = series.setdefault(key, _Series(r["meter_id"], r["utility"], r["register"], r["unit"]))
        one.buckets.append(UsageBucket.model_validate(r))
    meters = [s.result() for s in series.values()]
    total = sum((m.total_amount for m in meters), Decimal(0))
    return Usage(
        account_id=account_id,
        from_=start,
        to=end,
        granularity=granularity,
        meters=meters,
        total_amount=total,
        total_amount_kopecks=total,
    )


@router.get(
    "/{account_id}/usage",
    response_model=Usage,
    responses=problem_responses(401, 403, 404, 422),
    summary="Consumption and money of an account, by hour or day",
)
async def get_usage(
    account_id: ReadableAccount,
    pool: Pool,
    from_: Annotated[
        AwareDatetime | None,
        Query(
            alias="from",
            description="Window start, exclusive, ISO 8601 with a zone (`Z`, or `%2B03:00` "
            "URL-encoded). Default: `to` minus 24 hours.",
        ),
    ] = None,
    to: Annotated[
        AwareDatetime | None,
        Query(description="Window end, inclusive, ISO 8601 with a zone. Default: now. "
              f"The window (`from`, `to`] spans at most {MAX_WINDOW.days} days and `from` is "
              "before `to`: a request beyond that is answered 422.",
              json_schema_extra={"x-max-window-days": MAX_WINDOW.days}),
    ] = None,
    granularity: Annotated[Granularity, Query(description="Bucket size.")] = "hour",
) -> Usage:
    """Consumption and money charged for each meter of the account, in UTC hour or day
    buckets, with totals per meter and for the account.

    A charge counts when its priced interval ends inside the window (`from`, `to`], in the
    bucket holding the interval's last instant; charges are never split, so every amount is
    exact. `from` must be before `to`, and the window at most 366 days."""
    end = (to or datetime.now(UTC)).astimezone(UTC)
    start = (from_ or end - DEFAULT_WINDOW).astimezone(UTC)
    if start >= end:
        raise invalid(["query", "from"], "`from` must be before `to`")
    if end - start > MAX_WINDOW:
        raise invalid(["query", "to"], f"the window may span at most {MAX_WINDOW.days} days")
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        usage = await load_usage(conn, account_id, start, end, granularity)
    if usage is None:
        raise not_found(f"No account {account_id}")
    return usage
