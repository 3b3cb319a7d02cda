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
