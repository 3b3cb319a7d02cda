"""The usage API over real readings in the telemetry store: buckets on the local clock with
their status, tariff zones, peak demand, the load-profile CSV, and the refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from api.usage import Usage
from meterline.telemetry import refresh_rollups, write_readings
from meterline.users import Role
from tests.api.checks import assert_problem
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import person, reading_columns

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str, tz: ZoneInfo = MOSCOW) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


async def store(conn: psycopg.AsyncConnection[Any], meter: str,
                points: list[tuple[datetime, str | Decimal]]) -> None:
    await write_readings(conn, reading_columns(meter, points))
    await refresh_rollups(conn)


def every_quarter(start: datetime, end: datetime, first: Decimal,
                  step: Decimal) -> list[tuple[datetime, str | Decimal]]:
    """A reading every 15 minutes from ``start`` to ``end`` inclusive, ``step`` apart."""
    points: list[tuple[datetime, str | Decimal]] = []
    t, value, end = start.astimezone(UTC), first, end.astimezone(UTC)
    while t <= end:
        points.append((t, value))
        t, value = t + timedelta(minutes=15), value + step
    return points


@pytest.fixture
async def metered(seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]) -> Any:
    """A Moscow account whose meter was read every 15 minutes from 00:00 to 02:00 on
    2025-03-01 (0.25 kWh each), then not until 04:00 (1.000001 kWh over the gap), then every
    15 minutes to 05:00."""
    acc = await seed(balance="0")
    points = every_quarter(local("2025-03-01T00:00"), local("2025-03-01T02:00"),
                           Decimal("100"), Decimal("0.25"))
    points += every_quarter(local("2025-03-01T04:00"), local("2025-03-01T05:00"),
                            Decimal("103.000001"), Decimal("0.5"))
    await store(conn, acc.meter_id, points)
    return acc


async def test_hourly_buckets_show_actual_estimated_and_missing(
    client: httpx.AsyncClient, metered: Any
) -> None:
    response = await client.get(f"/meters/{metered.meter_id}/usage", params={
        "from": "2025-03-01", "to": "2025-03-01T06:00:00+03:00", "bucket": "1h"})

    assert response.status_code == 200, response.text
    body = response.json()
    Usage.model_validate(body)  # the documented shape
    assert (body["account_id"], body["meter_id"]) == (metered.account_id, metered.meter_id)
    assert (body["time_zone"], body["bucket"]) == ("Europe/Moscow", "1h")
    assert (body["from"], body["to"]) == ("2025-03-01T00:00:00+03:00", "2025-03-01T06:00:00+03:00")
    [series] = body["series"]
    assert (series["register"], series["unit"], series["utility"]) == (
        "active_import", "kWh", "electricity")
    assert [(b["start"], b["quantity"], b["status"], b["estimated_intervals"],
             b["missing_intervals"]) for b in series["buckets"]] == [
        ("2025-03-01T00:00:00+03:00", "1", "actual", 0, 0),
        ("2025-03-01T01:00:00+03:00", "1", "actual", 0, 0),
        # the gap: 02:00-04:00 apportioned by time, rounded down to a micro-unit at 03:00
        ("2025-03-01T02:00:00+03:00", "0.5", "estimated", 3, 0),
        ("2025-03-01T03:00:00+03:00", "0.500001", "estimated", 4, 0),
        ("2025-03-01T04:00:00+03:00", "2", "actual", 0, 0),
        ("2025-03-01T05:00:00+03:00", None, "missing", 0, 4),  # no reading after 05:00 yet
    ]
    assert series["buckets"][0]["end"] == "2025-03-01T01:00:00+03:00"
    assert (series["total"], series["estimated_intervals"], series["missing_intervals"]) == (
        "5.000001", 7, 4)


async def test_an_estimate_is_replaced_when_the_reading_arrives(
    client: httpx.AsyncClient, metered: Any, conn: psycopg.AsyncConnection[Any]
) -> None:
    await store(conn, metered.meter_id, [(local("2025-03-01T03:00"), Decimal("102.9"))])
    body = (await client.get(f"/meters/{metered.meter_id}/usage", params={
        "from": "2025-03-01T02:00:00+03:00", "to": "2025-03-01T04:00:00+03:00"})).json()
    assert [(b["quantity"], b["status"], b["estimated_intervals"])
            for b in body["series"][0]["buckets"]] == [
        ("0.9", "estimated", 3), ("0.100001", "estimated", 3)]  # 03:00-03:15 now actual


async def test_daily_buckets_by_tariff_zone(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    """1 kWh every quarter-hour from 05:00 to 23:30 local: the day zone is 07-23."""
    acc = await seed(balance="0")
    await store(conn, acc.meter_id, every_quarter(
        local("2025-03-02T05:00"), local("2025-03-02T23:30"), Decimal("0"), Decimal("1")))
    body = (await client.get(f"/accounts/{acc.account_id}/usage", params={
        "from": "2025-03-02", "to": "2025-03-03", "bucket": "1d", "zones": "two"})).json()
    [series] = body["series"]
    [day] = series["buckets"]
    assert day["zones"] == {"day": "64", "night": "10"}
    assert (day["quantity"], day["status"], day["missing_intervals"]) == ("74", "partial", 22)
    assert series["zones"] == day["zones"]
    three = (await client.get(f"/accounts/{acc.account_id}/usage", params={
        "from": "2025-03-02", "to": "2025-03-03", "bucket": "1d", "zones": "three"})).json()
    assert three["series"][0]["buckets"][0]["zones"] == {
        "peak": "28", "semi_peak": "36", "night": "10"}


async def test_days_follow_the_local_clock_across_dst(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    await store(conn, acc.meter_id, every_quarter(
        local("2025-03-29T00:00", BERLIN), local("2025-04-01T00:00", BERLIN),
        Decimal("0"), Decimal("0.1")))
    body = (await client.get(f"/accounts/{acc.account_id}/usage", params={
        "from": "2025-03-29", "to": "2025-04-01", "bucket": "1d", "tz": "Europe/Berlin"})).json()
    assert body["time_zone"] == "Europe/Berlin"
    assert [(b["start"], b["end"], b["quantity"]) for b in body["series"][0]["buckets"]] == [
        ("2025-03-29T00:00:00+01:00", "2025-03-30T00:00:00+01:00", "9.6"),
        ("2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00", "9.2"),  # 23 hours
        ("2025-03-31T00:00:00+02:00", "2025-04-01T00:00:00+02:00", "9.6"),
    ]


async def test_an_account_shows_every_meter(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    acc = await seed(balance="0", meters=2)
    body = (await client.get(f"/accounts/{acc.account_id}/usage",
                             params={"from": "2025-03-01", "bucket": "1d"})).json()
    assert [s["meter_id"] for s in body["series"]] == sorted(acc.meter_ids)
    assert body["to"] == "2025-04-01T00:00:00+03:00"  # a month of days by default
    assert all(b["status"] == "missing" and b["quantity"] is None
               for s in body["series"] for b in s["buckets"])


async def test_peak_demand_per_day_and_month(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    """0.5 kWh a quarter-hour, except 3 kWh at 10:15-10:30 on March 2nd and 2 kWh at
    10:30-10:45: the 30-minute peak is 10:30-11:00 (not 10:15-10:45, which is no window of
    the clock), the 60-minute peak 10:00-11:00."""
    acc = await seed(balance="0")
    points: list[tuple[datetime, str | Decimal]] = []
    t, value = local("2025-03-01T00:00"), Decimal(0)
    while t <= local("2025-03-03T00:00"):
        points.append((t, value))
        step = {local("2025-03-02T10:15"): Decimal(3), local("2025-03-02T10:30"): Decimal(2)}
        value += step.get(t, Decimal("0.5"))
        t += timedelta(minutes=15)
    await store(conn, acc.meter_id, points)

    response = await client.get(f"/meters/{acc.meter_id}/peak-demand",
                                params={"month": "2025-03"})

    assert response.status_code == 200, response.text
    [peak] = response.json()
    assert (peak["unit"], peak["time_zone"], peak["month"]) == ("kW", "Europe/Moscow", "2025-03")
    assert peak["peak_30m"] == {"start": "2025-03-02T10:00:00+03:00",
                                "end": "2025-03-02T10:30:00+03:00", "demand": "7",
                                "estimated": False}
    assert peak["peak_60m"]["start"] == "2025-03-02T10:00:00+03:00"
    assert peak["peak_60m"]["demand"] == "6"
    days = {d["date"]: d for d in peak["days"]}
    assert days["2025-03-01"]["peak_30m"]["demand"] == "2"  # the earliest of equal windows
    assert days["2025-03-01"]["peak_30m"]["start"] == "2025-03-01T00:00:00+03:00"
    assert days["2025-03-03"]["peak_30m"] is None  # nothing complete after midnight
    assert len(peak["days"]) == 31


async def test_load_profile_csv_of_a_month(
    client: httpx.AsyncClient, metered: Any
) -> None:
    response = await client.get(f"/meters/{metered.meter_id}/load-profile.csv",
                                params={"month": "2025-03"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-time-zone"] == "Europe/Moscow"
    lines = response.text.splitlines()
    assert lines[0] == ("meter_id,register,start,end,quantity,unit,average_demand,demand_unit,"
                        "status")
    assert len(lines) == 1 + 31 * 96
    m = metered.meter_id
    assert lines[1] == (f"{m},active_import,2025-03-01T00:00:00+03:00,2025-03-01T00:15:00+03:00,"
                        "0.25,kWh,1,kW,actual")
    assert lines[10] == (f"{m},active_import,2025-03-01T02:15:00+03:00,"
                         "2025-03-01T02:30:00+03:00,0.125,kWh,0.5,kW,estimated")
    assert lines[-1].endswith(",,kWh,,kW,missing")


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2025-03-02", "to": "2025-03-01"}, ["query", "from"]),
        ({"from": "2025-03-01T00:00:00"}, ["query", "from"]),  # no UTC offset
        ({"to": "yesterday"}, ["query", "to"]),
        ({"bucket": "1w"}, ["query", "bucket"]),
        ({"zones": "four"}, ["query", "zones"]),
        ({"tz": "Mars/Olympus"}, ["query", "tz"]),
    ],
)
async def test_bad_requests_are_422_problems(
    client: httpx.AsyncClient, seed: Callable[..., Any], params: dict[str, str], loc: list[str]
) -> None:
    acc = await seed(balance="0")
    body = assert_problem(await client.get(f"/accounts/{acc.account_id}/usage", params=params),
                          422)
    assert body["errors"][0]["loc"] == loc


@pytest.mark.parametrize(
    ("bucket", "to", "allowed"),
    [("15m", "2025-04-01", True), ("15m", "2025-04-02", False),
     ("1h", "2026-03-01", True), ("1h", "2026-04-01", False),
     ("1d", "2035-01-01", True), ("1d", "2036-01-01", False), ("1mo", "2050-01-01", False)],
)
async def test_too_large_a_range_for_the_bucket_is_a_400_with_a_hint(
    client: httpx.AsyncClient, seed: Callable[..., Any], bucket: str, to: str, allowed: bool
) -> None:
    acc = await seed(balance="0")
    response = await client.get(f"/accounts/{acc.account_id}/usage",
                                params={"from": "2025-03-01", "to": to, "bucket": bucket})
    if allowed:
        assert response.status_code == 200, response.text
    else:
        body = assert_problem(response, 400)
        assert body["type"] == "urn:meterline:problem:range-too-large"
        assert "use bucket=" in body["detail"] or "20 years" in body["detail"]


async def test_unknown_account_or_meter_is_a_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/accounts/{unique('nobody')}/usage"), 404)
    for path in ("usage", "peak-demand", "load-profile.csv"):
        assert_problem(await client.get(f"/meters/{unique('nothing')}/{path}"), 404)


async def test_the_load_profile_is_an_export_for_industrial_customers(
    served: Any, metered: Any, conn: psycopg.AsyncConnection[Any], bearer: Bearer
) -> None:
    """A subscriber sees usage but may not export interval data; an industrial customer of
    the account may; someone else's customer sees nothing."""
    subscriber = await person(conn, Role.SUBSCRIBER, accounts=[metered.account_id])
    industrial = await person(conn, Role.INDUSTRIAL, accounts=[metered.account_id])
    stranger = await person(conn, Role.INDUSTRIAL)
    path = f"/meters/{metered.meter_id}/load-profile.csv"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served),
                                 base_url="http://meterline.test") as http:
        usage = await http.get(f"/meters/{metered.meter_id}/usage", headers=bearer(subscriber))
        assert usage.status_code == 200, usage.text
        assert_problem(await http.get(path, params={"month": "2025-03"},
                                      headers=bearer(subscriber)), 403)
        ok = await http.get(path, params={"month": "2025-03"}, headers=bearer(industrial))
        assert ok.status_code == 200, ok.text
        assert_problem(await http.get(path, params={"month": "2025-03"},
                                      headers=bearer(stranger)), 404)
