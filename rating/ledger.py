"""Writes a batch of readings' charges to PostgreSQL in one transaction.

The ledger is the truth: charges are inserted idempotently on (meter, register, interval end)
and the balances move by exactly what was inserted, in the same transaction, together with
the register state, the dead letters and the relay commands the new balances call for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pydantic import ValidationError

from meterline.contracts import AccountReadings, Reading
from meterline.db import copy_rows
from meterline.dead_letters import dead_letter
from meterline.money import from_micro, from_pico, to_micro
from meterline.relay import decide_relays
from rating.core import NO_STATE, consumption_intervals, from_micros, micros
from rating.tariffs import NO_TARIFF, Tariff, TariffBook, price

log = logging.getLogger("meterline.rating")

@dataclass
class BatchResult:
    readings: int = 0
    charges: int = 0
    dead_letters: int = 0
    relay_commands: list[tuple[str, str]] = field(default_factory=list)
    balances: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Row:
    account: str
    reading: Reading


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS charges_in (
    meter_id text, register text, interval_start timestamptz, interval_end timestamptz,
    quantity numeric, unit text, tariff_id bigint, unit_price numeric, amount numeric,
    account_id text, provider_id text
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS = (
    "meter_id", "register", "interval_start", "interval_end", "quantity", "unit", "tariff_id",
    "unit_price", "amount", "account_id", "provider_id",
)
_STAGING_TYPES = (
    "text", "text", "timestamptz", "timestamptz", "numeric", "text", "int8", "numeric",
    "numeric", "text", "text",
)

_BOOK_CHARGES = """
WITH inserted AS (
    INSERT INTO charges (meter_id, register, interval_start, interval_end, quantity, unit,
                         tariff_id, unit_price, amount, account_id, provider_id, rated_at)
    SELECT meter_id, register, interval_start, interval_end, quantity, unit,
           tariff_id, unit_price, amount, account_id, provider_id, clock_timestamp()
      FROM charges_in
    ON CONFLICT (meter_id, register, interval_end) DO NOTHING
    RETURNING account_id, provider_id, amount
), totals AS (
    SELECT account_id, provider_id, sum(amount) AS amount, count(*) AS n
      FROM inserted GROUP BY account_id, provider_id
)
UPDATE balances b
   SET amount = b.amount - totals.amount, updated_at = now()
  FROM totals
 WHERE b.account_id = totals.account_id AND b.provider_id = totals.provider_id
RETURNING b.account_id, b.provider_id, b.amount, totals.n
"""

_LOAD_STATE = """
SELECT s.meter_id, s.register, s.last_ts, s.last_value
  FROM register_state s
  JOIN unnest(%s::text[], %s::text[]) AS k(meter_id, register)
    ON s.meter_id = k.meter_id AND s.register = k.register
   FOR UPDATE OF s
"""

_SAVE_STATE = """
INSERT INTO register_state (meter_id, register, last_ts, last_value)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::numeric[])
ON CONFLICT (meter_id, register) DO UPDATE
   SET last_ts = excluded.last_ts, last_value = excluded.last_value
 WHERE register_state.last_ts < excluded.last_ts
"""


_OWNERS = "SELECT id, account_id, provider_id FROM meters WHERE id = ANY(%s)"

_TARIFFS = """
SELECT id, provider_id, utility, unit, price, valid_from, valid_to FROM tariffs
"""


async def load_tariffs(conn: psycopg.AsyncConnection[Any]) -> TariffBook:
    cur = await conn.execute(_TARIFFS)
    return TariffBook(Tariff(*row) for row in await cur.fetchall())


def parse_records(payloads: Iterable[bytes]) -> tuple[list[AccountReadings], list[tuple[str, str]]]:
    """Kafka values -> records; the ones that do not parse come back as (reason, payload)."""
    records: list[AccountReadings] = []
    bad: list[tuple[str, str]] = []
    for payload in payloads:
        try:
            records.append(AccountReadings.model_validate_json(payload))
        except ValidationError as exc:
            bad.append((f"invalid readings record: {exc}", payload.decode("utf-8", "replace")))
    return records, bad


async def _owned(
    cur: psycopg.AsyncCursor[Any], rows: Sequence[_Row], dead: list[tuple[str, str]]
) -> npt.NDArray[np.bool_]:
    """Which readings come from a registered meter of the account and provider they name;
    the others are dead-lettered (a meter unknown here, or moved to another account)."""
    await cur.execute(_OWNERS, (sorted({row.reading.meter for row in rows}),))
    owners = {meter: (account, provider) for meter, account, provider in await cur.fetchall()}
    owned = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        r = row.reading
        owner = owners.get(r.meter)
        if owner == (row.account, r.provider):
            owned[i] = True
        elif owner is None:
            dead.append((f"meter {r.meter} is not registered", r.model_dump_json()))
        else:
            dead.append((f"meter {r.meter} belongs to account {owner[0]} (provider {owner[1]}), "
                         f"not to {row.account} ({r.provider})", r.model_dump_json()))
    return owned


async def rate_batch(
    conn: psycopg.AsyncConnection[Any],
    records: Sequence[AccountReadings],
    book: TariffBook,
    rejected: Sequence[tuple[str, str]] = (),
) -> BatchResult:
    """Price ``records`` and book them, all in one transaction on ``conn``."""
    rows = [_Row(rec.account, r) for rec in records for r in rec.readings]
    result = BatchResult(readings=len(rows))
    dead: list[tuple[str, str]] = list(rejected)

    # series ids and per-reading arrays
    series_of: dict[tuple[str, str], int] = {}
    series = np.empty(len(rows), dtype=np.int64)
    ts = np.empty(len(rows), dtype=np.int64)
    value = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        key = (row.reading.meter, row.reading.register.value)
        series[i] = series_of.setdefault(key, len(series_of))
        ts[i] = micros(row.reading.ts)
        value[i] = to_micro(row.reading.value)

    # readings with no tariff in force are held back: the next priced reading covers them
    tariff_id = np.full(len(rows), NO_TARIFF, dtype=np.int64)
    unit_price = np.zeros(len(rows), dtype=np.int64)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, row in enumerate(rows):
        r = row.reading
        groups.setdefault((r.provider, r.utility.value, r.unit.value), []).append(i)
    for (provider, utility, unit), members in groups.items():
        at = np.array(members, dtype=np.int64)
        tariff_id[at], unit_price[at] = book.lookup(provider, utility, unit, ts[at])

    async with conn.transaction():
        cur = conn.cursor()
        owned = await _owned(cur, rows, dead)
        priced = owned & (tariff_id != NO_TARIFF)
        for unpriced in np.flatnonzero(owned & ~priced):
            r = rows[unpriced].reading
            dead.append((f"no {r.utility} tariff of provider {r.provider} in {r.unit} at {r.ts}",
                         r.model_dump_json()))

        keys = list(series_of)
        await cur.execute(_LOAD_STATE, ([k[0] for k in keys], [k[1] for k in keys]))
        state_ts = np.full(len(keys), NO_STATE, dtype=np.int64)
        state_value = np.zeros(len(keys), dtype=np.int64)
        for meter, register, last_ts, last_value in await cur.fetchall():
            sid = series_of[(meter, register)]
            state_ts[sid] = micros(last_ts)
            state_value[sid] = to_micro(last_value)

        at = np.flatnonzero(priced)
        out = consumption_intervals(series[at], ts[at], value[at], state_ts, state_value)
        charged = at[out.charged]
        amounts = price(out.quantity, unit_price[charged])

        for rejected_at, previous in zip(at[out.backwards], out.previous_value, strict=True):
            r = rows[rejected_at].reading
            dead.append((
                f"register went backwards: {r.value} {r.unit} < {from_micro(int(previous))} "
                f"{r.unit} accepted before",
                r.model_dump_json(),
            ))

        if len(charged):
            await cur.execute(_STAGING)
            await copy_rows(cur, "charges_in", _STAGING_COLUMNS, _STAGING_TYPES, (
                (
                    rows[i].reading.meter, rows[i].reading.register.value,
                    from_micros(int(start)), rows[i].reading.ts,
                    from_micro(int(q)), rows[i].reading.unit.value, int(tariff_id[i]),
                    from_micro(int(unit_price[i])), from_pico(amount),
                    rows[i].account, rows[i].reading.provider,
                )
                for i, start, q, amount in zip(
                    charged, out.start_ts, out.quantity, amounts, strict=True)
            ))
            await cur.execute(_BOOK_CHARGES)
            for account, provider, balance, n in await cur.fetchall():
                result.balances[(account, provider)] = balance
                result.charges += n

        if len(out.state_series):
            await cur.execute(_SAVE_STATE, (
                [keys[s][0] for s in out.state_series],
                [keys[s][1] for s in out.state_series],
                [from_micros(int(t)) for t in out.state_ts],
                [from_micro(int(v)) for v in out.state_value],
            ))
        if dead:
            await dead_letter(cur, "rating", dead)
            result.dead_letters = len(dead)
        if result.balances:
            accounts = sorted({account for account, _ in result.balances})
            result.relay_commands = await decide_relays(conn, accounts)
    return result

