"""What rating reads of the tariff books for one batch: tracks and monthly volumes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from meterline.tariffs.tracks import add_volumes
from rating.pricing import RoutedReadings
from rating.tariffs import batch_tariffs, load_tariffs
from tests.factories import book_customer, customer


def readings(*rows: tuple[str, str, str]) -> RoutedReadings:
    """(account, provider, utility) per reading."""
    n = len(rows)
    return RoutedReadings(
        account=[a for a, _, _ in rows], meter=[f"m{i}" for i in range(n)],
        register=["active_import"] * n, unit=["kWh"] * n, provider=[p for _, p, _ in rows],
        utility=[u for _, _, u in rows], ts=np.zeros(n, dtype=np.int64),
        value=np.zeros(n, dtype=np.int64))


async def test_each_reading_gets_its_account_s_track_and_band_key(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    planned = await book_customer(conn)
    unplanned = await customer(conn, "0")  # its provider has a flat rate from the factory
    await add_volumes(conn, [(planned.account_id, planned.provider_id, "electricity",
                              date(2026, 11, 1), Decimal("12.5"))])
    batch = readings((planned.account_id, planned.provider_id, "electricity"),
                     (unplanned.account_id, unplanned.provider_id, "electricity"),
                     (planned.account_id, planned.provider_id, "electricity"),
                     (planned.account_id, planned.provider_id, "gas"))
    got = await batch_tariffs(conn, await load_tariffs(conn), batch, date(2026, 11, 5))
    assert got.key.tolist() == [0, 1, 0, 2]
    assert got.track[0] == got.track[2] and got.track[0] != got.track[1]
    assert got.track[3] == -1  # no gas plan anywhere
    plans = {got.set.plans[t.steps[0].plan].code for t in got.tracks}
    assert plans == {"household-flat", "flat-electricity"}
    assert (got.volumes.key.tolist(), got.volumes.volume.tolist()) == ([0], [12_500_000])


async def test_only_keys_priced_by_bands_read_their_month_s_volume(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    flat = await customer(conn, "0")  # one price whatever the month used
    banded = await book_customer(conn)  # the example book's plans have volume bands
    for made in (flat, banded):
        await add_volumes(conn, [(made.account_id, made.provider_id, "electricity",
                                  date(2026, 11, 1), Decimal("4000"))])
    batch = readings((flat.account_id, flat.provider_id, "electricity"),
                     (banded.account_id, banded.provider_id, "electricity"))
    tariffs = await load_tariffs(conn)
    got = await batch_tariffs(conn, tariffs, batch, date(2026, 11, 5))
    assert [tariffs.needs_volume(t) for t in got.tracks] == [
        got.set.plans[t.steps[0].plan].code != "flat-electricity" for t in got.tracks]
    # the banded account's volume, under its own band key (1), not the first key's
    assert (got.volumes.key.tolist(), got.volumes.volume.tolist()) == ([1], [4_000_000_000])
    flat_only = await batch_tariffs(conn, tariffs, readings(
        (flat.account_id, flat.provider_id, "electricity")), date(2026, 11, 5))
    assert len(flat_only.volumes.key) == 0
