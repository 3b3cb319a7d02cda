"""The set-based penalty in PostgreSQL equals the calculation worked by hand, line by line."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from billing.penalties.accrual import LINES, TOTALS, load_rules
from billing.penalties.calculation import ONE_DAY, ChargePenalty, Debt, Repayment, penalty
from billing.penalties.rules import PayerGroup
from billing.penalties.rules import load_rules as rules_from_files

RULES = rules_from_files()
SERVICES = ["electricity", "heating", "cold_water", "maintenance", "capital_repair", "gas"]


def random_case(rng: random.Random) -> tuple[Debt, list[Repayment], date, PayerGroup, bool]:
    period = date(rng.randint(2013, 2026), rng.randint(1, 12), 1)
    due = (period + timedelta(days=40)).replace(day=rng.choice([10, 15, 25]))
    amount = Decimal(rng.randint(1, 10**7)) / 100
    as_of = due + timedelta(days=rng.randint(-20, 2500))
    repayments = [Repayment(due + timedelta(days=rng.randint(-10, 2000)),
                            Decimal(rng.randint(1, 10**6)) / 100)
                  for _ in range(rng.randint(0, 3))]
    debt = Debt("p", rng.choice(SERVICES), period, amount, due)
    return debt, repayments, as_of, rng.choice(list(PayerGroup)), rng.random() < 0.7


async def sql_lines(conn: psycopg.AsyncConnection[Any],
                    cases: list[tuple[ChargePenalty, bool]]) -> dict[int, list[tuple[Any, ...]]]:
    await load_rules(conn, RULES)
    rows = []
    for n, (result, counted) in enumerate(cases):
        for k, t in enumerate(result.tranches):
            last = t.paid_on if t.paid_on is not None else result.as_of
            if t.paid_on is not None and not counted:
                last = t.paid_on - ONE_DAY
            rows.append((n * 10 + k, result.law.id, result.group.value, result.debt.due, last,
                         t.amount, t.rate_day))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO penalty_tranches VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
        await cur.execute(f"SELECT id, start, finish, per, rate, amount FROM ({LINES}) x "
                          "ORDER BY id, start")
        out: dict[int, list[tuple[Any, ...]]] = {}
        for id_, start, finish, per, rate, amount in await cur.fetchall():
            out.setdefault(id_, []).append((start, finish, per, Decimal(rate), Decimal(amount)))
    return out


async def test_sql_lines_equal_the_python_calculation(conn: psycopg.AsyncConnection[Any]) -> None:
    rng = random.Random(14)
    cases = []
    for _ in range(400):
        debt, repayments, as_of, group, counted = random_case(rng)
        if as_of < date(2012, 9, 14) + timedelta(days=400):
            continue
        cases.append((penalty(debt, repayments, as_of=as_of, group=group, rules=RULES,
                              count_payment_day=counted), counted))
    async with conn.transaction():
        lines = await sql_lines(conn, cases)
        compared = 0
        for n, (result, _) in enumerate(cases):
            for k, t in enumerate(result.tranches):
                expected = [(ln.start, ln.end, ln.per, ln.rate, ln.amount) for ln in t.lines]
                assert lines.get(n * 10 + k, []) == expected, (result.debt, t)
                compared += len(expected)
        assert compared > 500


async def test_sql_totals_of_the_worked_example(conn: psycopg.AsyncConnection[Any]) -> None:
    # the heating charge of test_calculation: 12.98 on the part paid, 112.54 on the rest
    debt = Debt("tgk", "heating", date(2024, 10, 1), Decimal("3000.00"), date(2024, 11, 10))
    result = penalty(debt, [Repayment(date(2025, 1, 20), Decimal("1000.00"))],
                     as_of=date(2025, 3, 31), group=PayerGroup.CITIZEN, rules=RULES)
    async with conn.transaction():
        await sql_lines(conn, [(result, True)])
        cur = await conn.execute(f"SELECT id, penalty FROM ({TOTALS}) x ORDER BY id")
        assert await cur.fetchall() == [(0, Decimal("12.98")), (1, Decimal("112.54"))]
