"""Lists as array parameters (meterline.arrays): the fast path writes exactly what psycopg's
own dumper writes, and PostgreSQL reads back the values sent."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.array import ListDumper as PsycopgListDumper

from meterline import arrays

# ids as the services send them, and text that needs quoting or is not ASCII
_TEXT = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True),
    st.sampled_from(["", "NULL", "null", "Null", "a b", "x,y", 'q"', "{", "}", "\\", "\t",
                     "é", "Ж-1", "nullx", "\u3000"]),
    # (no NUL, no lone surrogate: PostgreSQL text cannot hold the one, UTF-8 the other)
    st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
            max_size=8),
)
_VALUES = st.one_of(
    st.lists(_TEXT, max_size=30),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=30),
    st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=10),
    st.lists(st.booleans(), max_size=5),
)


def _dumped(adapters: psycopg.adapt.AdaptersMap, values: list[Any]) -> bytes:
    tx = Transformer(psycopg.adapt.AdaptersMap(adapters))
    dumped = tx.dump_sequence([values], [PyFormat.TEXT])[0]
    assert dumped is not None
    return bytes(dumped)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_the_fast_path_writes_what_psycopg_writes(values: list[Any]) -> None:
    stock = psycopg.adapt.AdaptersMap(psycopg.postgres.adapters)
    stock.register_dumper(list, PsycopgListDumper)
    ours = psycopg.adapt.AdaptersMap(psycopg.postgres.adapters)
    arrays.register(ours)
    assert _dumped(ours, values) == _dumped(stock, values)


def test_plain_ids_take_the_fast_path() -> None:
    adapters = psycopg.adapt.AdaptersMap(psycopg.postgres.adapters)
    arrays.register(adapters)
    tx = Transformer(adapters)
    ids = [f"V-{n}" for n in range(1000)]
    dumper = tx.get_dumper(ids, PyFormat.TEXT)
    assert isinstance(dumper, arrays.ListDumper)
    assert dumper._fast(ids) == ("{" + ",".join(ids) + "}").encode()
    assert dumper._fast(["a", "b c"]) is None  # needs quotes: psycopg's own path


async def test_postgresql_reads_back_what_was_sent(
        conn: psycopg.AsyncConnection[Any]) -> None:
    texts = ["V-1", "NULL", "null", "", "a b", "x,y", 'q"', "{}", "\\", "é", "nullx"]
    numbers = [0, -1, 2**40, 7]
    plain = [f"m-{n}" for n in range(500)]
    cur = await conn.execute(
        "SELECT %s::text[], %s::bigint[], %s::text[], %s::int[]",
        (texts, numbers, plain, [None, 1]))
    assert await cur.fetchone() == (texts, numbers, plain, [None, 1])
