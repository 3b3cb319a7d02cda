"""Settlement per provider and period: collected, commission, transfer; the transfers as a
1CClientBankExchange file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from billing.payments.bank_exchange import Party, read_documents
from billing.payments.posting import Payment, receive
from billing.payments.settlement import settle, transfers_file
from meterline.ledger import check
from tests.conftest import unique
from tests.factories import charge_month, housing_account, provider_terms

D = Decimal
JAN, FEB = date(2025, 1, 1), date(2025, 2, 1)
AGENT = Party('ООО "Расчётный центр"', "7701000001", "40702810000000000001", "ПАО СБЕРБАНК",
              "044525225", "30101810400000000225", kpp="770101001")
MSK = "Europe/Moscow"


async def clearing(conn: psycopg.AsyncConnection[Any], provider: str) -> Decimal:
    cur = await conn.execute("SELECT coalesce(sum(amount), 0) FROM postings "
                             "WHERE book = 'clearing' AND provider_id = %s", (provider,))
    row = await cur.fetchone()
    assert row is not None
    return Decimal(row[0])


async def test_each_provider_is_settled_once_per_period_with_its_commission(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    uk, sbyt = unique("uk"), unique("sbyt")
    a = await housing_account(conn, {"maintenance": uk, "electricity": sbyt})
    await provider_terms(conn, uk, commission_percent="1.5", agreement="№ 7 от 01.01.2025",
                         bank=11)
    await provider_terms(conn, sbyt, bank=12)
    await charge_month(conn, a, JAN, {"maintenance": "1000.00", "electricity": "333.33"})
    # 1,333.33 paid on 31 January at 23:30 in Moscow: January's
    await receive(conn, Payment(unique("payment:online"), "online", a.account_id,
                                D("1333.33"), datetime(2025, 1, 31, 20, 30, tzinfo=UTC)))
    # 100.00 paid on 1 February at 00:30 in Moscow: February's
    await receive(conn, Payment(unique("payment:online"), "online", a.account_id,
                                D("100.00"), datetime(2025, 1, 31, 21, 30, tzinfo=UTC)))

    # (each provider of this test on its own: the database is shared with other tests)
    january = {p: s for p in (uk, sbyt)
               for s in await settle(conn, JAN, time_zone=MSK, provider_id=p)}
    # uk collected 1,000.00, keeps 1.5 % = 15.00 for the agent, 985.00 to transfer
    assert (january[uk].collected, january[uk].commission, january[uk].transfer) == (
        D("1000.00"), D("15.00"), D("985.00"))
    assert (january[sbyt].collected, january[sbyt].commission) == (D("333.33"), D(0))
    again = [s for s in await settle(conn, JAN, time_zone=MSK, provider_id=uk)]
    assert [(s.transfer, s.new) for s in again] == [(D("985.00"), False)]
    # what was paid in February is still in clearing
    assert await clearing(conn, uk) + await clearing(conn, sbyt) == D("-100.00")
    assert await check(conn, a.account_id) == []

    data = await transfers_file(conn, JAN, AGENT, created=datetime(2025, 2, 3, tzinfo=UTC),
                                day=date(2025, 2, 3), providers=[uk, sbyt])
    documents = {d["ПолучательИНН"]: d for d in read_documents(data)}
    assert documents["7701000011"]["Сумма"] == "985.00"
    assert "по агентскому договору № 7 от 01.01.2025, за вычетом вознаграждения 15.00 руб." \
        in documents["7701000011"]["НазначениеПлатежа"]
    assert documents["7701000012"]["Сумма"] == "333.33"
    assert "ДатаНачала=01.01.2025\r\nДатаКонца=31.01.2025" in data.decode("cp1251")

    # a payment booked into January after it was settled goes with February's settlement
    await receive(conn, Payment(unique("payment:registry"), "registry", a.account_id,
                                D("50.00"), datetime(2025, 1, 20, 9, tzinfo=UTC)))
    february = {p: s for p in (uk, sbyt)
                for s in await settle(conn, FEB, time_zone=MSK, provider_id=p)}
    assert sum(s.collected for s in february.values()) == D("150.00")
    assert await clearing(conn, uk) + await clearing(conn, sbyt) == 0
