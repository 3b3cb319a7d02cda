"""Accounts' tariff tracks and priced monthly volumes, from the database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from meterline.instants import micros
from meterline.tariffs.choices import choose_plan
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.pricing import PlanStep, Track, Usage
from meterline.tariffs.tracks import add_volumes, load_tariffs, load_tracks, load_volumes
from tests.factories import book_customer, customer, example_book, provider, stored_book


async def test_an_account_s_track_is_its_default_plan_then_its_choices(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    plans = {s.plan.code: s.id for s in (await load_tariffs(conn)).plans.values()
             if s.plan.provider_id == made.provider_id}
    await conn.execute("UPDATE accounts SET residents = 3 WHERE id = %s", (made.account_id,))
    key = (made.account_id, made.provider_id, "electricity")
    assert await load_tracks(conn, [key]) == [
        Track("Europe/Moscow", (PlanStep(None, plans["household-flat"]),), 3)]
    await choose_plan(conn, made.account_id, "household-3zone",
                      consumer_group=ConsumerGroup.RURAL,
                      now=datetime(2026, 11, 15, tzinfo=UTC))
    (track,) = await load_tracks(conn, [key])
    assert track is not None and track.steps == (
        PlanStep(None, plans["household-flat"]),
        PlanStep(date(2026, 12, 1), plans["household-3zone"], ConsumerGroup.RURAL))


async def test_no_track_without_a_plan(conn: psycopg.AsyncConnection[Any]) -> None:
    made = await customer(conn, "0")  # its provider has the fleet's flat electricity rate only
    flat = await load_tracks(conn, [(made.account_id, made.provider_id, "electricity")])
    assert flat != [None]
    assert await load_tracks(conn, [(made.account_id, made.provider_id, "gas"),
                                    ("NO-SUCH", made.provider_id, "electricity")]) == [None, None]


async def test_stored_plans_price_with_their_version_ids(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    ids = await stored_book(conn, example_book("energosbyt", seller))
    tariffs = await load_tariffs(conn)
    track = Track("Europe/Moscow", (PlanStep(None, ids["household-flat"]),))
    s = micros(datetime(2026, 6, 30, 18, tzinfo=UTC))  # 21:00 Moscow: crosses July 1
    charges = tariffs.set.price(Usage(
        tracks=[track], track=np.zeros(1, np.int64), band_key=np.zeros(1, np.int64),
        start=np.array([s], np.int64), end=np.array([s + 6 * 3_600_000_000], np.int64),
        quantity=np.array([6_000_000], np.int64)))
    stored = tariffs.plans[ids["household-flat"]]
    assert tariffs.version_ids[charges.rate].tolist() == list(stored.version_ids)


async def test_volumes_add_up_per_month(conn: psycopg.AsyncConnection[Any]) -> None:
    made = await customer(conn, "0")
    key = (made.account_id, made.provider_id, "electricity")
    await add_volumes(conn, [(*key, date(2026, 10, 1), Decimal("3880.5")),
                             (*key, date(2026, 11, 1), Decimal("12"))])
    await add_volumes(conn, [(*key, date(2026, 11, 1), Decimal("0.25"))])
    state = await load_volumes(conn, [("other", "p", "electricity"), key], date(2026, 10, 20))
    assert sorted(zip(state.key.tolist(), state.month.tolist(), state.volume.tolist(),
                      strict=True)) == [(1, 2026 * 12 + 9, 3_880_500_000),
                                        (1, 2026 * 12 + 10, 12_250_000)]
    later = await load_volumes(conn, [key], date(2026, 11, 3))
    assert later.volume.tolist() == [12_250_000]
