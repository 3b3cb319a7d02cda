"""Importing a bank registry: its payments posted to the journal, each once.

In one transaction: the registry recorded by the digest of its file (the same file is refused
as already imported), its lines posted as payments on their natural key
``payment:registry:<layout>:<operation>`` (an operation already received through another file
is not received again), and every refused line kept with its line number and reason (the
money of a refused line arrived but waits for an operator). A file refused whole (totals,
encoding, closing line) stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from billing.payments.posting import Payment, receive_many
from billing.payments.registries import Layout, RefusedLine, Registry, parse
from meterline.errors import Conflict

CHUNK = 5000  # payments posted per statement group

_REGISTRY = """
INSERT INTO registries (digest, layout, file_name, number, payments, total, posted)
VALUES (%s, %s, %s, %s, %s, %s, 0)
ON CONFLICT (digest) DO NOTHING
RETURNING id
"""

_EARLIER = "SELECT id, file_name, imported_at FROM registries WHERE digest = %s"

_ACCOUNTS = """
SELECT a.id, ad.time_zone FROM accounts a JOIN addresses ad ON ad.id = a.address_id
 WHERE a.id = ANY(%s)
"""

_REFUSAL = """
INSERT INTO registry_refusals (registry_id, line, reason, text, amount)
SELECT %s, * FROM unnest(%s::integer[], %s::text[], %s::text[], %s::numeric[])
"""

_POSTED = "UPDATE registries SET posted = %s WHERE id = %s"

_RECEIVED = "SELECT key, account_id, amount FROM payments WHERE key = ANY(%s)"


class RegistryImported(Conflict):
    code = "registry-already-imported"
    title = "Registry already imported"


@dataclass(frozen=True)
class Imported:
    registry_id: int
    registry: Registry
    posted: int  # payments received now
    before: int  # operations received before (through another file)
    refused: tuple[RefusedLine, ...]

    def summary(self) -> str:
        r = self.registry
        return (f"registry {r.number or '-'} ({r.layout.name}): {r.count} payments for "
                f"{r.total:.2f}; posted {self.posted}, received before {self.before}, "
                f"refused {len(self.refused)}")


def payment_key(layout: Layout, operation_id: str) -> str:
    return f"payment:registry:{layout.id}:{operation_id}"


async def import_registry(
    conn: psycopg.AsyncConnection[Any], data: bytes, layout: Layout, file_name: str,
) -> Imported:
    registry = parse(data, layout)
    async with conn.transaction():
        cur = await conn.execute(_REGISTRY, (registry.digest, layout.id, file_name,
                                             registry.number, registry.count, registry.total))
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(_EARLIER, (registry.digest,))
            earlier = await cur.fetchone()
            assert earlier is not None
            raise RegistryImported(f"this registry was imported on {earlier[2]:%Y-%m-%d %H:%M} "
                                   f"from {earlier[1]} (registry {earlier[0]})")
        registry_id = int(row[0])
        cur = await conn.execute(_ACCOUNTS, (list({p.account_id for p in registry.payments}),))
        zones = {account: zone for account, zone in await cur.fetchall()}
        refused = list(registry.refused)
        payments: list[Payment] = []
        for p in registry.payments:
            if p.account_id not in zones:
                refused.append(RefusedLine(p.line, f"no account {p.account_id}",
                                           f"{p.account_id};{p.amount}", p.amount))
                continue
            paid_at = datetime.combine(p.paid_on, time(12), ZoneInfo(zones[p.account_id]))
            payments.append(Payment(payment_key(layout, p.operation_id), "registry",
                                    p.account_id, p.amount, paid_at, period=p.period,
                                    registry_id=registry_id, line=p.line))
        cur = await conn.execute(_RECEIVED, ([p.key for p in payments],))
        earlier = {key: (account, amount) for key, account, amount in await cur.fetchall()}
        kept: list[Payment] = []
        for payment in payments:
            if earlier.get(payment.key, (payment.account_id, payment.amount)) != (
                    payment.account_id, payment.amount):
                account, amount = earlier[payment.key]
                refused.append(RefusedLine(
                    payment.line or 0, f"operation {payment.key.rsplit(':', 1)[1]} was received "
                    f"before for account {account}, {amount}",
                    f"{payment.account_id};{payment.amount}", payment.amount))
            else:
                kept.append(payment)
        payments = kept
        posted = before = 0
        for start in range(0, len(payments), CHUNK):
            for received in await receive_many(conn, payments[start:start + CHUNK]):
                posted, before = (posted + 1, before) if received.new else (posted, before + 1)
        refused.sort(key=lambda r: r.line)
        await _refusals(conn, registry_id, refused)
        await conn.execute(_POSTED, (posted, registry_id))
    return Imported(registry_id, registry, posted, before, tuple(refused))


async def _refusals(conn: psycopg.AsyncConnection[Any], registry_id: int,
                    refused: Sequence[RefusedLine]) -> None:
    if refused:
        await conn.execute(_REFUSAL, (
            registry_id, [r.line for r in refused], [r.reason for r in refused],
            [r.text for r in refused], [r.amount if r.amount is not None else None
                                        for r in refused]))


def total_of(refused: Sequence[RefusedLine]) -> Decimal:
    return sum((r.amount or Decimal(0) for r in refused), Decimal(0))
