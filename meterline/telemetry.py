"""The readings writer: every reading stored once, keyed (meter, register, ts).

Readings come in as columns (`ReadingColumns`: numpy arrays and sequences, no object per
reading) and are encoded into one PostgreSQL binary COPY payload with numpy. A fresh batch
is copied straight into ``readings`` (in a savepoint: a batch holding any reading stored
before is refused whole); any other batch is copied into a temporary staging table and merged
by one idempotent statement:

- a reading already stored (same meter, register and ts) is left as it was: replaying a batch,
  in any order and any number of times, stores the same readings;
- a reading whose billing period (``billing_periods``, per provider and month in the account's
  time zone) was closed when it is stored is stored with ``period_closed`` set: the ledger's
  correction reads that flag. A reading belongs to the period holding the instant just before
  it, so a reading at local midnight on the 1st closes the previous month;
- on plain PostgreSQL, readings stored below the rollups' threshold (late ones) are logged in
  ``readings_invalidations`` so that ``refresh_readings_rollups()`` recomputes their buckets
  (TimescaleDB keeps its own invalidation log; there the threshold is -infinity).

A batch is fresh when COPY takes it and none of its readings is later than the end of the last
closed billing period (plus a day, for time zones); the closed periods and the threshold are
read under the writers' lock, which closing a period or moving the threshold takes exclusively.

Every reading that enters the platform (gateway, app, web, phone, operator) goes through
`write_readings`, so every one gets the flag and reaches the aggregates.

The binary encoding is written here (about fifty lines of numpy) because the three column
types it needs (text, timestamptz, numeric) are all there is to it, and the libraries that
encode COPY rows either do it row by row in Python or need pyarrow for arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import pq

from meterline.instants import micros

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

MICRO = 1_000_000
_MICRO_EXP = Decimal("0.000001")
# microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC)
_PG_EPOCH_US = 946_684_800 * MICRO

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"

TextColumn = Sequence[str | None] | npt.NDArray[Any] | str | None


@dataclass(frozen=True)
class ReadingColumns:
    """Readings as columns, one element per reading.

    ``ts`` is UTC microseconds since the Unix epoch; ``value`` the register in micro-units
    (1e-6 kWh, m3 or Gcal; the table keeps 6 decimals). ``gateway`` and ``source`` may be one
    value for every reading; ``gateway`` is None for readings taken by people.
    """

    meter: Sequence[str] | npt.NDArray[Any]
    register: Sequence[str] | npt.NDArray[Any] | str
    ts: I64
    value: I64
    gateway: TextColumn = None
    source: Sequence[str] | npt.NDArray[Any] | str = "gateway"

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: npt.ArrayLike) -> ReadingColumns:
        """The readings at ``index`` (positions, in that order; repeats allowed)."""
        at = np.asarray(index, dtype=np.int64)

        def pick(column: Any) -> Any:
            return column if column is None or isinstance(column, str) else np.asarray(column)[at]

        return ReadingColumns(
            meter=pick(self.meter), register=pick(self.register), ts=np.asarray(self.ts)[at],
            value=np.asarray(self.value)[at], gateway=pick(self.gateway), source=pick(self.source),
        )


def micro_units(value: Decimal) -> int:
    """A register value in micro-units, rounded as PostgreSQL rounds it into numeric(20, 6)
    (half away from zero)."""
    return int(value.quantize(_MICRO_EXP, rounding=ROUND_HALF_UP).scaleb(6))


# --- binary COPY encoding -------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    lengths: I64  # bytes per row, -1 for NULL
    data: U8  # (rows, width) bytes, the first `lengths` of each row used


def _fixed(big_endian: npt.NDArray[Any], width: int) -> _Field:
    data = np.ascontiguousarray(big_endian).view(np.uint8).reshape(-1, width)
    return _Field(np.full(len(data), width, dtype=np.int64), data)


def _text(values: TextColumn, n: int) -> _Field:
    if values is None or isinstance(values, str):
        if values is None:
            return _Field(np.full(n, -1, dtype=np.int64), np.zeros((n, 0), dtype=np.uint8))
        one = np.frombuffer(values.encode(), dtype=np.uint8)
        return _Field(np.full(n, len(one), dtype=np.int64), np.broadcast_to(one, (n, len(one))))
    array = np.asarray(values)
    nulls = None
    if array.dtype == object:  # None among the values: NULLs
        nulls = np.array([v is None for v in array], dtype=bool)
        array = np.where(nulls, "", array).astype(np.str_)
    encoded = _utf8(array) if array.dtype.kind == "U" else array
    width = encoded.dtype.itemsize
    lengths = np.char.str_len(encoded).astype(np.int64)
    if nulls is not None:
        lengths[nulls] = -1
    return _Field(lengths, encoded.view(np.uint8).reshape(n, width))


def _utf8(array: npt.NDArray[np.str_]) -> npt.NDArray[np.bytes_]:
    """Text as UTF-8: ASCII (ids, register codes) by numpy's own conversion, anything else
    value by value."""
    try:
        return array.astype(np.bytes_)
    except UnicodeEncodeError:
        return np.char.encode(array, "utf-8")


def _timestamptz(us: I64) -> _Field:
    return _fixed((np.asarray(us, dtype=np.int64) - _PG_EPOCH_US).astype(">i8"), 8)


def _numeric(micro: I64) -> _Field:
    """numeric with 6 decimals from micro-units: always 6 base-10000 digits, 4 before the
    point (PostgreSQL strips the zero ones on receipt)."""
    micro = np.asarray(micro, dtype=np.int64)
    magnitude = np.abs(micro)
    units, fraction = np.divmod(magnitude, MICRO)
    words = np.empty((len(micro), 10), dtype=">i2")
    words[:, 0] = 6  # ndigits
    words[:, 1] = 3  # weight: the first digit counts 10000^3
    words[:, 2] = np.where(micro < 0, 0x4000, 0).astype(np.int16)  # sign
    words[:, 3] = 6  # dscale
    words[:, 4] = units // 10**12 % 10_000
    words[:, 5] = units // 10**8 % 10_000
    words[:, 6] = units // 10**4 % 10_000
    words[:, 7] = units % 10_000
    words[:, 8] = fraction // 100
    words[:, 9] = fraction % 100 * 100
    return _fixed(words, 20)


def _put(out: U8, at: I64, big_endian: npt.NDArray[Any]) -> None:
    width = big_endian.dtype.itemsize
    out[at[:, None] + np.arange(width)] = big_endian.view(np.uint8).reshape(-1, width)


def encode_copy(fields: Sequence[_Field]) -> bytes:
    """One binary COPY payload (signature, rows, trailer) of the given columns."""
    n = len(fields[0].lengths)
    sizes = 2 + sum(4 + np.maximum(f.lengths, 0) for f in fields)
    starts = len(_SIGNATURE) + np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    out = np.empty(len(_SIGNATURE) + int(np.sum(sizes)) + len(_TRAILER), dtype=np.uint8)
    out[: len(_SIGNATURE)] = np.frombuffer(_SIGNATURE, dtype=np.uint8)
    out[-len(_TRAILER):] = np.frombuffer(_TRAILER, dtype=np.uint8)
    _put(out, starts, np.full(n, len(fields), dtype=">i2"))
    at = starts + 2
    for f in fields:
        _put(out, at, f.lengths.astype(">i4"))
        at = at + 4
        width = f.data.shape[1]
        if width:
            used = np.arange(width) < f.lengths[:, None]
            out[(at[:, None] + np.arange(width))[used]] = f.data[used]
        at = at + np.maximum(f.lengths, 0)
    return out.tobytes()


COLUMNS = ("meter_id", "register", "ts", "value", "gateway_id", "source")


def readings_payload(columns: ReadingColumns) -> bytes:
    """``columns`` as a binary COPY payload of COLUMNS (into ``readings`` or its staging)."""
    n = len(columns)
    return encode_copy([
        _text(columns.meter, n),
        _text(columns.register, n),
        _timestamptz(columns.ts),
        _numeric(columns.value),
        _text(columns.gateway, n),
        _text(columns.source, n),
    ])


# --- the writer -----------------------------------------------------------------------------

# What the writer must know before it writes, read under the writers' lock (held shared to the
# end of the transaction; see migration 0051): the rollups' threshold (readings stored below it
# are logged for the refresh) and how far closed billing periods reach (readings after that
# cannot be in a closed period, whatever the time zone).
_STATE = """
SELECT pg_advisory_xact_lock_shared(readings_writers_lock()),
       (SELECT greatest(threshold, timestamptz 'epoch')  -- TimescaleDB: -infinity
          FROM readings_rollups WHERE name = '15m'),
       (SELECT (max(period) + interval '1 month 1 day')::timestamp AT TIME ZONE 'UTC'
          FROM billing_periods WHERE closed_at IS NOT NULL)
"""

_COPY = ("COPY {table} (meter_id, register, ts, value, gateway_id, source)"
         " FROM STDIN (FORMAT BINARY)")

# (the merge's plan is simple: compiling it with JIT would cost more than running it)
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_in (
    meter_id text, register text, ts timestamptz, value numeric, gateway_id text, source text
) ON COMMIT DELETE ROWS;
SET LOCAL jit = off
"""

# for a database that takes no COPY (PGlite in the tests): the same rows as arrays
_INSERT_IN = """
INSERT INTO readings_in (meter_id, register, ts, value, gateway_id, source)
SELECT m, r, timestamptz 'epoch' + t * interval '1 microsecond', v::numeric / 1000000, g, s
  FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::text[], %s::text[])
       AS x(m, r, t, v, g, s)
"""

# The merge, one statement: store what is new (flagged when its billing period is closed), log
# what was stored below the threshold, count what was stored.
_MERGE = """
WITH closed AS (
    SELECT max(period) + interval '1 month 1 day' AS until
      FROM billing_periods WHERE closed_at IS NOT NULL
), stored AS (
    INSERT INTO readings (meter_id, register, ts, value, gateway_id, source, period_closed)
    SELECT i.meter_id, i.register, i.ts, i.value, i.gateway_id, i.source,
           CASE WHEN i.ts <= closed.until THEN EXISTS (
               SELECT 1
                 FROM meters m
                 JOIN accounts a ON a.id = m.account_id
                 JOIN addresses ad ON ad.id = a.address_id
                 JOIN billing_periods p ON p.provider_id = m.provider_id
                WHERE m.id = i.meter_id
                  AND p.period = date_trunc(
                      'month', (i.ts - interval '1 microsecond') AT TIME ZONE ad.time_zone)
                  AND p.closed_at IS NOT NULL
           ) ELSE false END
      FROM readings_in i CROSS JOIN closed
    ON CONFLICT (meter_id, register, ts) DO NOTHING
    RETURNING meter_id, register, ts
), late AS (
    INSERT INTO readings_invalidations (meter_id, register, lo, hi)
    SELECT meter_id, register, min(ts), max(ts)
      FROM stored
     WHERE ts < (SELECT threshold FROM readings_rollups WHERE name = '15m')
     GROUP BY meter_id, register
)
SELECT count(*) FROM stored
"""

_LOG_LATE = """
INSERT INTO readings_invalidations (meter_id, register, lo, hi)
SELECT m, r, timestamptz 'epoch' + lo * interval '1 microsecond',
       timestamptz 'epoch' + hi * interval '1 microsecond'
  FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[]) AS x(m, r, lo, hi)
"""


async def write_readings(
    conn: psycopg.AsyncConnection[Any], columns: ReadingColumns, *, copy: bool = True
) -> int:
    """Store the readings; return how many were new. Runs in the caller's transaction, or
    in one of its own on an autocommit connection outside one. ``copy=False`` stages the rows
    with an INSERT instead of COPY (for PGlite, which takes no COPY)."""
    if len(columns) == 0:
        return 0
    if conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
        async with conn.transaction():
            return await _write(conn, columns, copy)
    return await _write(conn, columns, copy)


async def _write(conn: psycopg.AsyncConnection[Any], columns: ReadingColumns, copy: bool) -> int:
    """A fresh batch (nothing in it stored before, nothing that may fall in a closed period)
    goes by COPY straight into readings; COPY refuses the whole batch if any reading was
    stored before, and then, as for every other batch, the merge stores what is new."""
    cur = conn.cursor()
    await cur.execute(_STATE)
    state = await cur.fetchone()
    assert state is not None
    _, threshold, closed_until = state
    ts = np.asarray(columns.ts, dtype=np.int64)
    if copy and (closed_until is None or int(ts.min()) > micros(closed_until)):
        payload = readings_payload(columns)
        try:
            # in a savepoint: a refused COPY leaves nothing
            async with conn.transaction(), cur.copy(_COPY.format(table="readings")) as c:
                await c.write(payload)
        except psycopg.errors.UniqueViolation:
            pass
        else:
            await _log_late(cur, columns, micros(threshold))
            return len(columns)
    await cur.execute(_STAGING)
    if copy:
        async with cur.copy(_COPY.format(table="readings_in")) as c:
            await c.write(readings_payload(columns))
    else:
        await cur.execute(_INSERT_IN, _as_lists(columns))
    await cur.execute(_MERGE)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _log_late(cur: psycopg.AsyncCursor[Any], columns: ReadingColumns, threshold: int) -> None:
    """Log, per series, the time span of the readings stored below the threshold."""
    ts = np.asarray(columns.ts, dtype=np.int64)
    late = ts < threshold
    if not late.any():
        return
    n = len(columns)
    meter = np.broadcast_to(np.asarray(columns.meter), (n,))[late].astype(np.str_)
    register = np.broadcast_to(np.asarray(columns.register), (n,))[late].astype(np.str_)
    keys, which = np.unique(np.char.add(np.char.add(meter, "\n"), register),
                            return_inverse=True)
    lo = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, which, ts[late])
    np.maximum.at(hi, which, ts[late])
    series = [str(k).split("\n", 1) for k in keys]
    await cur.execute(_LOG_LATE, ([m for m, _ in series], [r for _, r in series],
                                  lo.tolist(), hi.tolist()))


def _as_lists(c: ReadingColumns) -> tuple[list[Any], ...]:
    n = len(c)

    def text(values: TextColumn) -> list[Any]:
        if values is None or isinstance(values, str):
            return [values] * n
        return list(values)

    return (text(c.meter), text(c.register), np.asarray(c.ts).tolist(),
            np.asarray(c.value).tolist(), text(c.gateway), text(c.source))


# --- upkeep ---------------------------------------------------------------------------------

async def refresh_rollups(conn: psycopg.AsyncConnection[Any]) -> int:
    """Plain PostgreSQL: materialize the 15-minute and hourly buckets that are due and redo the
    ones late readings changed; returns the 15-minute buckets written (0 on TimescaleDB, whose
    jobs do it, or when another refresh is running). Two transactions on an autocommit
    connection: the threshold moves first, briefly holding writers, then the rollups follow
    without holding them."""
    await conn.execute("SELECT raise_readings_threshold()")
    cur = await conn.execute("SELECT refresh_readings_rollups()")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def maintain_readings(conn: psycopg.AsyncConnection[Any], months_ahead: int) -> int:
    """Plain PostgreSQL: partitions ``months_ahead`` months ahead, partitions and rollup rows
    past retention dropped; returns partitions created and dropped (0 on TimescaleDB)."""
    cur = await conn.execute("SELECT maintain_readings(%s)", (months_ahead,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0

