"""Settlement with the providers: what the channels collected for each, the agent's
commission per the provider's agreement, and the transfer due, per provider and period.

What was collected is what the payments put in clearing for the provider up to the end of the
period (midnight in the agent's time zone) and no earlier settlement took out: a payment
booked late into a settled month is settled with the next one. The entry, keyed
``settlement:<provider>:<period>``, closes clearing (``clearing +collected``) against the
transfer owed to the provider (``payable -transfer``) and the commission kept
(``commission -commission``). The transfers go to the bank as a 1CClientBankExchange file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from billing.payments.allocation import commission as commission_of
from billing.payments.bank_exchange import Party, Transfer, client_bank_exchange
from meterline.errors import Invalid, NotFound
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.periods import check_period
from meterline.settings import Settings


@dataclass(frozen=True)
class Settlement:
    provider_id: str
    period: date
    collected: Decimal
    commission: Decimal
    transfer: Decimal
    new: bool


_UNSETTLED = """
SELECT p.provider_id, -sum(p.amount) AS collected,
       coalesce(t.commission_percent, 0) AS percent
  FROM postings p JOIN entries e ON e.id = p.entry_id
  LEFT JOIN payment_terms t ON t.provider_id = p.provider_id
 WHERE p.book = 'clearing' AND e.booked_at < %(cutoff)s
   AND (%(provider)s::text IS NULL OR p.provider_id = %(provider)s)
 GROUP BY p.provider_id, t.commission_percent
HAVING sum(p.amount) < 0
 ORDER BY p.provider_id
"""

_DONE = """
SELECT provider_id, collected, commission, transfer FROM settlements
 WHERE period = %(period)s AND (%(provider)s::text IS NULL OR provider_id = %(provider)s)
"""

_RECORD = """
INSERT INTO settlements (provider_id, period, collected, commission, transfer, entry_id)
VALUES (%s, %s, %s, %s, %s, %s)
"""


def period_end(period: date, time_zone: str) -> datetime:
    following = date(period.year + period.month // 12, period.month % 12 + 1, 1)
    return datetime.combine(following, time(0), ZoneInfo(time_zone))


async def settle(conn: psycopg.AsyncConnection[Any], period: date, *, time_zone: str,
                 provider_id: str | None = None) -> list[Settlement]:
    """Settle every provider with money in clearing up to the end of ``period`` (or one);
    a provider settled for the period already is answered with that settlement."""
    check_period(period)
    out: list[Settlement] = []
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_DONE, {"period": period, "provider": provider_id})
        out += [Settlement(r["provider_id"], period, r["collected"], r["commission"],
                           r["transfer"], False) for r in await cur.fetchall()]
        settled = {s.provider_id for s in out}
        cutoff = period_end(period, time_zone)
        await cur.execute(_UNSETTLED, {"cutoff": cutoff, "provider": provider_id})
        for row in await cur.fetchall():
            provider = row["provider_id"]
            if provider in settled:
                continue
            collected = row["collected"]
            kept = commission_of(collected, row["percent"])
            transfer = collected - kept
            postings = [Posting(Book.CLEARING, provider, collected),
                        Posting(Book.PAYABLE, provider, -transfer)]
            if kept:
                postings.append(Posting(Book.COMMISSION, provider, -kept))
            (posted,) = await post(conn, [Entry(
                EntryKind.SETTLEMENT, f"settlement:{provider}:{period:%Y-%m}", tuple(postings),
                reason=f"settlement for {period:%m.%Y}",
                booked_at=cutoff - timedelta(microseconds=1))])  # the period's last instant
            await cur.execute(_RECORD, (provider, period, collected, kept, transfer, posted.id))
            out.append(Settlement(provider, period, collected, kept, transfer, True))
    return out


_PAYEES = """
SELECT s.provider_id, s.transfer, s.commission, p.name, p.inn, p.kpp, p.bank_name, p.bic,
       p.corr_account, p.settlement_account, coalesce(t.agreement, '') AS agreement
  FROM settlements s JOIN providers p ON p.id = s.provider_id
  LEFT JOIN payment_terms t ON t.provider_id = s.provider_id
 WHERE s.period = %s AND s.transfer > 0
   AND (%s::text[] IS NULL OR s.provider_id = ANY(%s))
 ORDER BY s.provider_id
"""


def agent_party(settings: Settings) -> Party:
    return Party(settings.agent_name, settings.agent_inn, settings.agent_account,
                 settings.agent_bank_name, settings.agent_bic, settings.agent_corr_account,
                 kpp=settings.agent_kpp)


async def transfers_file(conn: psycopg.AsyncConnection[Any], period: date, agent: Party,
                         *, created: datetime, day: date,
                         providers: Sequence[str] | None = None) -> bytes:
    """The period's transfers to the providers (all, or these), as payment orders of the
    agent."""
    cur = conn.cursor(row_factory=dict_row)
    chosen = list(providers) if providers is not None else None
    await cur.execute(_PAYEES, (period, chosen, chosen))
    rows = await cur.fetchall()
    if not rows:
        raise NotFound(f"nothing settled for {period:%m.%Y}")
    transfers = []
    for n, r in enumerate(rows, start=1):
        if not (r["settlement_account"] and r["bic"] and r["corr_account"] and r["inn"]):
            raise Invalid(f"provider {r['provider_id']} has no complete bank details")
        payee = Party(r["name"], r["inn"], r["settlement_account"], r["bank_name"] or "",
                      r["bic"], r["corr_account"], kpp=r["kpp"] or "")
        agreement = f" по агентскому договору {r['agreement']}" if r["agreement"] else ""
        purpose = (f"Платежи населения за {period:%m.%Y}{agreement}, за вычетом "
                   f"вознаграждения {r['commission']:.2f} руб. НДС не облагается")
        transfers.append(Transfer(n, day, r["transfer"], agent, payee, purpose[:210]))
    last_day = period_end(period, "UTC").date() - timedelta(days=1)
    return client_bank_exchange(transfers, created=created, first_day=period,
                                last_day=last_day)
