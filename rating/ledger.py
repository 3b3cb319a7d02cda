"""Booking a priced batch in PostgreSQL, in one transaction.

``rate_batch`` loads what pricing needs (which meters belong to which account, the registers'
last accepted readings, the accounts' tariff tracks and, where a plan has volume bands, the
volume each used this month),
calls the pure ``rating.pricing.price_batch``, and books the result:

- charge lines into ``charges`` (binary COPY into a staging table, then one plain INSERT in
  a savepoint; should it meet a line booked before, the idempotent ``INSERT ... ON CONFLICT
  DO NOTHING`` on (meter, register, interval end, part, revision) instead), each with the
  tariff version, zone, band and consumer group that priced it, the service and billing
  period its money goes to (a closed period sends it to the next open one) and the entry that
  booked it;
- the monthly volume of each (account, provider, service), moved by the quantities of the
  lines actually inserted (``tariff_volumes``: where the next lines' bands start);
- the money of the lines actually inserted as ONE journal entry (``meterline.ledger``'s bulk
  path): ``subscriber -x`` per (account, provider, service, period), ``revenue +x`` per
  (provider, service, period); balances move with it (the postings trigger);
- the register state (``rating.core``'s register policy: rollovers, reset and implausible
  jump candidates), a ``register_reset`` event per reset confirmed, an ``implausible_jump``
  event per jump re-baselined without charging its leap (for an operator to review), the dead
  letters and the relay commands the new balances call for; a meter commanded open that still
  consumes is commanded again, with a ``tamper`` event (``meterline.tamper``).

A batch delivered again inserts no line, so it posts nothing: every reading is charged once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import errors as pg_errors
from pydantic import ValidationError

from meterline.contracts import AccountReadings
from meterline.db import copy_rows
from meterline.dead_letters import dead_letter
from meterline.events import Event, EventKind, emit
from meterline.ledger import Book, EntryKind, lines_table, post_lines
from meterline.money import from_micro
from meterline.registers import counter_span_micro
from meterline.relay import decide_relays
from meterline.replacements import Replacement
from meterline.tamper import confirm_relays
from meterline.tariffs.pricing import month_start
from rating.core import FLAG_JUMP, FLAG_RESET, NO_STATE, Resets, from_micros, micros
from rating.pricing import (
    NEXT_REPOST,
    NO_MONTH,
    BatchTariffs,
    ChargeLines,
    Priced,
    RoutedReadings,
    price_batch,
    services,
)
from rating.replacements import apply_replacements, reported
from rating.rerating import rerate_late
from rating.tariffs import Tariffs, batch_tariffs, load_tariffs

__all__ = ["BatchResult", "book_charges", "load_tariffs", "parse_records", "rate_batch"]

log = logging.getLogger("meterline.rating")


@dataclass
class BatchResult:
    readings: int = 0
    charges: int = 0
    dead_letters: int = 0
    entry_id: int | None = None  # the journal entry of the batch's money, if it charged
    relay_commands: list[tuple[str, str]] = field(default_factory=list)
    resets: int = 0  # register resets confirmed (a ``register_reset`` event each)
    tampers: int = 0  # meters commanded open found consuming (a ``tamper`` event each)
    replacements: int = 0  # meter replacements recorded (a ``meter_replaced`` event each)
    jumps: int = 0  # implausible jumps re-baselined uncharged (an ``implausible_jump`` event each)
    moved: set[tuple[str, str]] = field(default_factory=set)  # (account, provider) charged


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS charge_lines_in (
    meter_id text, register text, part text, start_us bigint, end_us bigint,
    quantity_micro bigint, unit text, version_id bigint, zone text, band smallint,
    consumer_group text, unit_price_micro bigint, amount_pico numeric, account_id text,
    provider_id text, service text, revision smallint, end_value_micro bigint,
    reading_end_us bigint, month date
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS = (
    "meter_id", "register", "part", "start_us", "end_us", "quantity_micro", "unit", "version_id",
    "zone", "band", "consumer_group", "unit_price_micro", "amount_pico", "account_id",
    "provider_id", "service", "revision", "end_value_micro", "reading_end_us", "month",
)
_STAGING_TYPES = (
    "text", "text", "text", "int8", "int8", "int8", "text", "int8", "text", "int2", "text",
    "int8", "numeric", "text", "text", "text", "int2", "int8", "int8", "date",
)

# Times travel as integer microseconds and numbers as integer micro- and pico-units, turned
# into timestamptz and exact NUMERIC here (multiplying by 1e-6 or 1e-12 is exact; dividing may
# round). A line's month is the one holding its interval's last instant in the account's time
# zone: pricing cut the lines at month boundaries and says which (it is derived here for a
# line that comes without it, a reversal). The period is that month, or the first open one
# after it when that month is closed. The lines inserted add their quantities to their month's
# volume.
#
# A batch's lines are new but for a batch delivered again (whose readings come after no
# register state: they are late, and re-rate only what they cut) or a line booked behind
# rating's back. So they go in by a plain INSERT (_BOOK_NEW_CHARGES), in a savepoint: a third
# less work in PostgreSQL than an INSERT that looks for a conflicting line before each one
# (BENCHMARKS.md "Booking"), and every staged line is then an inserted one. The rare batch
# that meets a line booked before is booked again, in the same transaction, by the INSERT that
# skips such lines (_BOOK_CHARGES), and only the lines it inserted count.
_BOOK_CHARGES = """
WITH timed AS (
    SELECT c.*, timestamptz_of_micros(start_us) AS interval_start,
           timestamptz_of_micros(end_us) AS interval_end
      FROM charge_lines_in c
), lines AS (
    SELECT t.*, coalesce(t.month, (
               SELECT date_trunc('month', (t.interval_end - interval '1 microsecond')
                                          AT TIME ZONE ad.time_zone)::date
                 FROM accounts a JOIN addresses ad ON ad.id = a.address_id
                WHERE a.id = t.account_id)) AS wanted
      FROM timed t
), inserted AS (
    INSERT INTO charges (meter_id, register, part, interval_start, interval_end, quantity, unit,
                         tariff_version_id, zone, band, consumer_group, unit_price, amount,
                         account_id, provider_id, service, period, entry_id, rated_at,
                         revision, end_value, reading_end)
    SELECT l.meter_id, l.register, l.part, l.interval_start, l.interval_end,
           l.quantity_micro * 0.000001, l.unit, l.version_id, l.zone, l.band, l.consumer_group,
           l.unit_price_micro * 0.000001, l.amount_pico * 0.000000000001, l.account_id,
           l.provider_id, l.service,
           CASE WHEN bp.closed_at IS NOT NULL THEN open_period(l.provider_id, l.wanted)
                ELSE l.wanted END,
           %(entry)s, clock_timestamp(),
           -- a repost (revision NULL): the next even revision of its key
           coalesce(l.revision, (SELECT (coalesce(max(c.revision), -1) + 2) / 2 * 2
                                   FROM charges c
                                  WHERE c.meter_id = l.meter_id AND c.register = l.register
                                    AND c.interval_end = l.interval_end AND c.part = l.part)),
           l.end_value_micro * 0.000001, timestamptz_of_micros(l.reading_end_us)
      FROM lines l
      LEFT JOIN billing_periods bp ON bp.provider_id = l.provider_id AND bp.period = l.wanted
    {on_conflict}
    RETURNING account_id, provider_id, service, period, amount, quantity, interval_end
), counted AS (
    INSERT INTO tariff_volumes AS v (account_id, provider_id, service, month, volume)
    {volumes}
    ON CONFLICT (account_id, provider_id, service, month)
       DO UPDATE SET volume = v.volume + excluded.volume
), staged AS (
    INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
    SELECT account_id, provider_id, service, period, -sum(amount)
      FROM inserted GROUP BY account_id, provider_id, service, period
    RETURNING account_id, provider_id
)
SELECT (SELECT count(*) FROM inserted), account_id, provider_id FROM staged
"""
_BOOK_NEW_CHARGES = _BOOK_CHARGES.replace("{on_conflict}", "").replace("{volumes}", """
    SELECT account_id, provider_id, service, wanted, sum(quantity_micro) * 0.000001
      FROM lines
     GROUP BY 1, 2, 3, 4""")
_BOOK_CHARGES = _BOOK_CHARGES.replace(
    "{on_conflict}", "ON CONFLICT (meter_id, register, interval_end, part, revision) DO NOTHING"
).replace("{volumes}", """
    SELECT i.account_id, i.provider_id, i.service,
           date_trunc('month', (i.interval_end - interval '1 microsecond')
                               AT TIME ZONE ad.time_zone)::date, sum(i.quantity)
      FROM inserted i
      JOIN accounts a ON a.id = i.account_id
      JOIN addresses ad ON ad.id = a.address_id
     GROUP BY 1, 2, 3, 4""")

_NEXT_ENTRY_ID = "SELECT nextval(pg_get_serial_sequence('entries', 'id'))"

# Per series found (its position in the keys): times as integer microseconds since the epoch,
# values as integer micro-units, as the rating core holds them (exact: numeric arithmetic).
_LOAD_STATE = """
SELECT k.n - 1, (extract(epoch FROM s.last_ts) * 1000000)::bigint,
       (s.last_value * 1000000)::bigint,
       coalesce((extract(epoch FROM s.pending_ts) * 1000000)::bigint, %(none)s),
       coalesce((s.pending_value * 1000000)::bigint, 0), s.pending_jump
  FROM unnest(%(meters)b::text[], %(registers)b::text[]) WITH ORDINALITY
       AS k(meter_id, register, n)
  JOIN register_state s ON s.meter_id = k.meter_id AND s.register = k.register
   FOR UPDATE OF s
"""

# The state moves only forward: its level is later, or the latest reading it has seen (its
# level's or its reset candidate's) is.
_SAVE_STATE = """
INSERT INTO register_state (meter_id, register, last_ts, last_value, pending_ts, pending_value,
                            pending_jump)
SELECT meter_id, register, timestamptz_of_micros(ts), value * 0.000001,
       timestamptz_of_micros(nullif(pending_ts, %s)),
       CASE WHEN pending_ts = %s THEN NULL ELSE pending_value * 0.000001 END,
       pending_ts <> %s AND pending_jump
  FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[],
              %b::boolean[])
       AS s(meter_id, register, ts, value, pending_ts, pending_value, pending_jump)
ON CONFLICT (meter_id, register) DO UPDATE
   SET last_ts = excluded.last_ts, last_value = excluded.last_value,
       pending_ts = excluded.pending_ts, pending_value = excluded.pending_value,
       pending_jump = excluded.pending_jump
 WHERE register_state.last_ts < excluded.last_ts
    OR greatest(register_state.last_ts, register_state.pending_ts)
       < greatest(excluded.last_ts, excluded.pending_ts)
"""

# A batch's statements are costed by the rows they write, and past a few ten thousand lines
# PostgreSQL would compile the booking statement's expressions (JIT) at every batch: 70 to
# 100 ms, more than the statement saves by it.
_NO_JIT = "SET LOCAL jit = off"

_OWNERS = """
SELECT id, account_id, provider_id, profile, replaced_by, removed_at FROM meters
 WHERE id = ANY(%b::text[])
"""

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


async def owned_readings(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                         dead: list[tuple[str, str]],
                         profiles: dict[str, str | None] | None = None) -> npt.NDArray[np.bool_]:
    """Which readings come from a registered meter of the account and provider they name;
    the others are dead-lettered (a meter unknown here, or moved to another account).
    ``profiles`` is filled with each known meter's device profile."""
    cur = await conn.execute(_OWNERS, (sorted(set(batch.meter)),))
    rows = await cur.fetchall()
    owners = {meter: (account, provider) for meter, account, provider, *_ in rows}
    if profiles is not None:
        profiles.update({meter: profile for meter, _, _, profile, *_ in rows})
    owned = np.fromiter(
        (owners.get(m) == (a, p)
         for m, a, p in zip(batch.meter, batch.account, batch.provider, strict=True)),
        dtype=bool, count=len(batch))
    removed = {meter: (by, micros(at)) for meter, _, _, _, by, at in rows if by is not None}
    if removed:
        after = np.fromiter((m in removed and t > removed[m][1]
                             for m, t in zip(batch.meter, batch.ts.tolist(), strict=True)),
                            dtype=bool, count=len(batch))
        for i in np.flatnonzero(owned & after).tolist():
            by, at = removed[batch.meter[i]]
            dead.append((f"meter {batch.meter[i]} was replaced by {by} at {from_micros(at)}",
                         batch.reading(i).model_dump_json()))
        owned &= ~after
    for i in np.flatnonzero(~owned & ~after if removed else ~owned).tolist():
        meter, owner = batch.meter[i], owners.get(batch.meter[i])
        payload = batch.reading(i).model_dump_json()
        if owner is None:
            dead.append((f"meter {meter} is not registered", payload))
        else:
            dead.append((f"meter {meter} belongs to account {owner[0]} (provider {owner[1]}), "
                         f"not to {batch.account[i]} ({batch.provider[i]})", payload))
    return owned


@dataclass(frozen=True)
class RegisterStates:
    """Per series id: the level (last accepted reading; ``NO_STATE`` when none), the candidate
    (``NO_STATE`` when none) and its kind (``FLAG_RESET`` or ``FLAG_JUMP``), and the counter's
    span (0: not known)."""

    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.int64]
    pending_ts: npt.NDArray[np.int64]
    pending_value: npt.NDArray[np.int64]
    pending_flags: npt.NDArray[np.int64]
    wrap: npt.NDArray[np.int64]


async def load_state(conn: psycopg.AsyncConnection[Any], keys: Sequence[tuple[str, str]],
                     profiles: dict[str, str | None] | None = None) -> RegisterStates:
    """The state of each series (locked until the batch commits); ``profiles`` (meter ->
    device profile) give the counters' spans."""
    states = RegisterStates(
        ts=np.full(len(keys), NO_STATE, dtype=np.int64), value=np.zeros(len(keys), np.int64),
        pending_ts=np.full(len(keys), NO_STATE, dtype=np.int64),
        pending_value=np.zeros(len(keys), np.int64),
        pending_flags=np.full(len(keys), FLAG_RESET, dtype=np.int64),
        wrap=np.fromiter((counter_span_micro((profiles or {}).get(meter), register)
                          for meter, register in keys), dtype=np.int64, count=len(keys)))
    cur = await conn.execute(_LOAD_STATE, {"meters": [k[0] for k in keys],
                                           "registers": [k[1] for k in keys],
                                           "none": NO_STATE})
    rows = await cur.fetchall()
    if rows:
        sid, ts, value, pending_ts, pending_value, pending_jump = (
            np.array(column) for column in zip(*rows, strict=True))
        states.ts[sid], states.value[sid] = ts, value
        states.pending_ts[sid], states.pending_value[sid] = pending_ts, pending_value
        states.pending_flags[sid] = np.where(pending_jump.astype(bool), FLAG_JUMP, FLAG_RESET)
    return states


async def save_state(conn: psycopg.AsyncConnection[Any], keys: Sequence[tuple[str, str]],
                     priced: Priced) -> None:
    """Move the registers' state on to where the batch left it."""
    if not len(priced.state_series):
        return
    assert priced.state_pending_ts is not None and priced.state_pending_value is not None
    assert priced.state_pending_flags is not None
    series = priced.state_series.tolist()
    await conn.execute(_SAVE_STATE, (
        NO_STATE, NO_STATE, NO_STATE, [keys[s][0] for s in series], [keys[s][1] for s in series],
        priced.state_ts.tolist(), priced.state_value.tolist(),
        priced.state_pending_ts.tolist(), priced.state_pending_value.tolist(),
        ((priced.state_pending_flags & FLAG_JUMP) != 0).tolist(),
    ))


def _confirmed(found: Resets | None, keys: Sequence[tuple[str, str]]
               ) -> Iterator[tuple[str, str, int, datetime, Decimal, Decimal]]:
    """Each drop or jump the next reading confirmed: (meter, register, the confirming
    reading's index in the batch, when it happened, the level before, the new level)."""
    if found is None:
        return
    for sid, confirmed, at, level, value in zip(
            found.series.tolist(), found.confirmed_by.tolist(), found.at.tolist(),
            found.level.tolist(), found.value.tolist(), strict=True):
        meter, register = keys[sid]
        yield (meter, register, confirmed, from_micros(at), from_micro(level).normalize(),
               from_micro(value).normalize())


async def emit_resets(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                      keys: Sequence[tuple[str, str]], priced: Priced) -> int:
    """One ``register_reset`` event per confirmed reset, keyed by the register and the time
    of the reading that dropped (a batch delivered again writes none)."""
    events = [
        Event(EventKind.REGISTER_RESET, account_id=batch.account[confirmed],
              provider_id=batch.provider[confirmed], meter_id=meter,
              key=f"register_reset:{meter}:{register}:{when.isoformat()}", occurred_at=when,
              payload={"register": register, "unit": batch.unit[confirmed],
                       "level_before": level, "new_level": value,
                       "confirmed_at": from_micros(int(batch.ts[confirmed])),
                       "uncharged": "consumption between the last reading before the reset "
                                    "and the reset is not known and was not charged"})
        for meter, register, confirmed, when, level, value in _confirmed(priced.resets, keys)]
    return await emit(conn, events)


async def emit_jumps(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                     keys: Sequence[tuple[str, str]], priced: Priced) -> int:
    """One ``implausible_jump`` event per jump the next reading confirmed: the register was
    re-baselined at the jump and the leap was not charged (an operator reviews it and may bill
    it by a manual adjustment). Keyed by the register and the jump's time (a batch delivered
    again writes none)."""
    events = [
        Event(EventKind.IMPLAUSIBLE_JUMP, account_id=batch.account[confirmed],
              provider_id=batch.provider[confirmed], meter_id=meter,
              key=f"implausible_jump:{meter}:{register}:{when.isoformat()}", occurred_at=when,
              payload={"meter": meter, "register": register, "unit": batch.unit[confirmed],
                       "from_level": level, "to_level": value, "ts": when,
                       "confirmed_at": from_micros(int(batch.ts[confirmed])),
                       "uncharged": "the leap from the level before the jump to the jump was "
                                    "not charged: review it, and bill it by a manual "
                                    "adjustment if it was consumption"})
        for meter, register, confirmed, when, level, value in _confirmed(priced.jumps, keys)]
    return await emit(conn, events)


async def book_charges(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                       lines: ChargeLines, result: BatchResult) -> None:
    """Book charge lines and their money (one entry) in the caller's transaction."""
    if not len(lines):
        return
    cur = await conn.execute(_NEXT_ENTRY_ID)
    row = await cur.fetchone()
    assert row is not None
    entry_id = int(row[0])
    await conn.execute(_STAGING)
    await lines_table(conn)
    service_of = services(batch.utility)
    reading = lines.reading.tolist()
    month = lines.months().tolist()
    first_day = {m: None if m == NO_MONTH else month_start(m) for m in set(month)}
    async with conn.cursor() as cur:
        await copy_rows(cur, "charge_lines_in", _STAGING_COLUMNS, _STAGING_TYPES, (
            (batch.meter[i], batch.register[i], part, start, end, quantity, batch.unit[i],
             version, zone, band, group, unit_price, amount, batch.account[i],
             batch.provider[i], service_of[i], None if revision == NEXT_REPOST else revision,
             end_value, reading_end, first_day[m])
            for i, part, start, end, quantity, version, zone, band, group, unit_price, amount,
            revision, end_value, reading_end, m
            in zip(reading, lines.part, lines.start.tolist(), lines.end.tolist(),
                   lines.quantity.tolist(), lines.version_id.tolist(), lines.zone,
                   lines.band.tolist(), lines.group, lines.unit_price.tolist(), lines.amount,
                   lines.revisions().tolist(), lines.end_values(batch).tolist(),
                   lines.reading_ends(batch).tolist(), month, strict=True)
        ))
        try:
            async with conn.transaction():  # a savepoint
                await cur.execute(_BOOK_NEW_CHARGES, {"entry": entry_id})
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "charges_pkey":
                raise
            await cur.execute(_BOOK_CHARGES, {"entry": entry_id})
        touched = await cur.fetchall()
    if not touched:  # every line was booked before: nothing to post
        return
    result.charges = int(touched[0][0])
    posted = await post_lines(conn, kind=EntryKind.USAGE, key=f"usage:{uuid.uuid4()}",
                              counter=Book.REVENUE, reason="metered consumption",
                              entry_id=entry_id)
    result.entry_id = posted.id if posted else None
    result.moved = {(account, provider) for _, account, provider in touched}


async def rate_batch(
    conn: psycopg.AsyncConnection[Any],
    records: Sequence[AccountReadings] | RoutedReadings,
    tariffs: Tariffs,
    rejected: Sequence[tuple[str, str]] = (),
    replacements: Sequence[Replacement] = (),
) -> BatchResult:
    """Price ``records`` (Kafka records, or the same readings as columns) by ``tariffs``
    (``load_tariffs``) and book them, all in one transaction on ``conn``. ``rejected`` are
    (reason, payload) to dead-letter with them (records that did not parse). Meter
    ``replacements`` (and those of ``records``, when they are Kafka records) are recorded
    first, and their old meters' closing readings priced with the batch."""
    batch = records if isinstance(records, RoutedReadings) else RoutedReadings.of(records)
    if not isinstance(records, RoutedReadings):
        replacements = [*replacements, *(reported(r) for rec in records
                                          for r in rec.replacements)]
    result = BatchResult(readings=len(batch))
    dead: list[tuple[str, str]] = list(rejected)

    async with conn.transaction():
        await conn.execute(_NO_JIT)
        if replacements:
            replaced, closing = await apply_replacements(conn, replacements, dead)
            result.replacements = sum(r.new for r in replaced)
            batch = RoutedReadings.concat([batch, closing])
        series, keys = batch.series()
        profiles: dict[str, str | None] = {}
        owned = await owned_readings(conn, batch, dead, profiles)
        states = await load_state(conn, keys, profiles)
        state_ts = states.ts
        # intervals start at the registers' last readings: their months' volumes count
        starts = np.concatenate([state_ts[state_ts != NO_STATE], batch.ts])
        earliest = from_micros(int(starts.min())) if len(starts) else from_micros(0)
        since = (earliest - timedelta(days=1)).date()  # in whatever time zone
        prices = await batch_tariffs(conn, tariffs, batch, since)
        priced = price_batch(batch, series, owned, state_ts, states.value, prices,
                             wrap=states.wrap, pending_ts=states.pending_ts,
                             pending_value=states.pending_value,
                             pending_flags=states.pending_flags)
        lines = await rerate_late_readings(conn, batch, priced, prices)
        dead += [(reason, batch.reading(i).model_dump_json()) for reason, i in priced.dead]
        dead += [(reason, reading.model_dump_json()) for reason, reading in priced.dead_held]
        await book_charges(conn, batch, lines, result)
        await save_state(conn, keys, priced)
        result.resets = await emit_resets(conn, batch, keys, priced)
        result.jumps = await emit_jumps(conn, batch, keys, priced)
        if dead:
            async with conn.cursor() as cur:
                await dead_letter(cur, "rating", dead)
            result.dead_letters = len(dead)
        if result.moved:
            accounts = sorted({account for account, _ in result.moved})
            result.relay_commands = await decide_relays(conn, accounts)
        await confirm_disconnects(conn, batch, lines, result)
    return result


async def rerate_late_readings(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                               priced: Priced, prices: BatchTariffs) -> ChargeLines:
    """The batch's lines, with those that re-rate the intervals its late readings fall inside
    (``rating.rerating``); a late reading that cannot re-rate its interval joins the dead."""
    if priced.late is None or not len(priced.late):
        return priced.lines
    refused: list[tuple[str, int]] = []
    rerated = await rerate_late(conn, batch, priced.late, prices, refused)
    priced.dead.extend(refused)
    return ChargeLines.concat([priced.lines, rerated], batch)


async def confirm_disconnects(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                              lines: ChargeLines, result: BatchResult) -> None:
    """A meter commanded open that the batch shows consuming is commanded again, with a
    ``tamper`` event (``meterline.tamper``)."""
    if not len(lines):
        return
    meters = {batch.meter[i] for i in np.unique(lines.reading).tolist()}
    tampers = await confirm_relays(conn, meters)
    result.relay_commands += [(t.meter_id, "disconnect") for t in tampers]
    result.tampers = len(tampers)
