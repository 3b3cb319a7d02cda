"""Pricing scenarios worked by hand: zones, bands, versions, plan changes, DST, groups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np

from meterline.instants import micros
from meterline.money import from_pico
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.pricing import BandState, Charges, PlanStep, TariffSet, Track, Usage
from tests.factories import example_book, tariff_book

KWH = 1_000_000  # micro-kWh
MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
ENERGOSBYT = example_book("energosbyt")
PLANS = dict(enumerate(ENERGOSBYT.plans))
CODE = {p.code: key for key, p in PLANS.items()}
TARIFFS = TariffSet(PLANS)


def track(code: str, zone: str = "Europe/Moscow", group: ConsumerGroup = ConsumerGroup.URBAN,
          residents: int | None = None) -> Track:
    return Track(zone, (PlanStep(None, CODE[code], group),), residents)


def at(moment: datetime) -> int:
    return micros(moment)


def price(tracks: Sequence[Track], intervals: Sequence[tuple[int, int, int, int]],
          tariffs: TariffSet = TARIFFS, used: BandState | None = None) -> Charges:
    """``intervals``: (track index, start, end, quantity); band key = track index."""
    t, s, e, q = (np.array(x, dtype=np.int64) for x in zip(*intervals, strict=True))
    return tariffs.price(Usage(tracks=tracks, track=t, band_key=t, start=s, end=e, quantity=q,
                               used=used or BandState()))


def by_zone_and_band(charges: Charges, tariffs: TariffSet = TARIFFS) -> dict[
        tuple[str, int], tuple[Decimal, Decimal]]:
    """(zone, band) -> (kWh, roubles)."""
    out: dict[tuple[str, int], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for i in range(len(charges.interval)):
        key = (tariffs.rates[int(charges.rate[i])].zones[int(charges.zone[i])],
               int(charges.band[i]))
        out[key][0] += Decimal(int(charges.quantity[i])).scaleb(-6)
        out[key][1] += from_pico(int(charges.amount[i]))
    return {k: (q.normalize(), a) for k, (q, a) in out.items()}


def test_a_month_of_a_three_zone_household_passing_two_band_limits() -> None:
    # A steady 10 kW all November 2026 (Moscow, no DST), read every 45 minutes from midnight:
    # 7,200 kWh. Each day has peak 7 h (07-10, 17-21), semi-peak 9 h (10-17, 21-23) and night
    # 8 h (23-07). The 3,900 kWh limit is reached after 390 h: Nov 17 at 06:00 (night); 6,000
    # kWh after 600 h: Nov 26 at 00:00.
    #   band 0, Nov 1 00:00 - Nov 17 06:00: 16 days + 6 night hours
    #           peak 112 h, semi 144 h, night 128 + 6 = 134 h
    #   band 1, Nov 17 06:00 - Nov 26 00:00: the rest of the 17th (night 06-07 and 23-24,
    #           peak 7 h, semi 9 h) and 8 whole days: peak 63 h, semi 81 h, night 66 h
    #   band 2, Nov 26 - Dec 1: 5 days: peak 35 h, semi 45 h, night 40 h
    start = datetime(2026, 11, 1, tzinfo=MOSCOW)
    step = timedelta(minutes=45)
    readings = [start + k * step for k in range(960 + 1)]
    intervals = [(0, at(a), at(b), 7_500_000) for a, b in pairwise(readings)]
    got = by_zone_and_band(price([track("household-3zone")], intervals))
    assert got == {
        ("peak", 0): (Decimal(1120), Decimal("1120") * Decimal("9.63")),
        ("semi_peak", 0): (Decimal(1440), Decimal("1440") * Decimal("6.99")),
        ("night", 0): (Decimal(1340), Decimal("1340") * Decimal("3.10")),
        ("peak", 1): (Decimal(630), Decimal("630") * Decimal("11.56")),
        ("semi_peak", 1): (Decimal(810), Decimal("810") * Decimal("8.39")),
        ("night", 1): (Decimal(660), Decimal("660") * Decimal("3.72")),
        ("peak", 2): (Decimal(350), Decimal("350") * Decimal("14.45")),
        ("semi_peak", 2): (Decimal(450), Decimal("450") * Decimal("10.49")),
        ("night", 2): (Decimal(400), Decimal("400") * Decimal("4.65")),
    }
    assert sum(a for _, a in got.values()) == Decimal("53177.10")


def test_bands_start_again_each_month_and_count_what_was_priced_before() -> None:
    # 100 kWh spread evenly over Oct 31 20:00 - Nov 1 04:00 (8 h, Moscow), with 3,880 kWh of
    # October already priced: October's 4 h bring 50 kWh, 20 within band 0, 30 in band 1;
    # November's 4 h start from zero.
    s = at(datetime(2026, 10, 31, 20, tzinfo=MOSCOW))
    e = at(datetime(2026, 11, 1, 4, tzinfo=MOSCOW))
    used = BandState(key=np.array([0], np.int64), month=np.array([2026 * 12 + 9], np.int64),
                     volume=np.array([3_880 * KWH], np.int64))
    charges = price([track("household-flat")], [(0, s, e, 100 * KWH)], used=used)
    lines = [(int(q) // KWH, int(b), int(m) % 12 + 1)
             for q, b, m in zip(charges.quantity, charges.band, charges.month, strict=True)]
    assert lines == [(20, 0, 10), (30, 1, 10), (50, 0, 11)]
    assert list(charges.part) == [0, 1, 2]
    state = dict(zip(charges.used.month.tolist(), charges.used.volume.tolist(), strict=True))
    assert state == {2026 * 12 + 9: 3_930 * KWH, 2026 * 12 + 10: 50 * KWH}


def test_a_new_tariff_version_splits_an_interval_at_local_midnight() -> None:
    # household-flat: 6.43 until June 30, 6.99 from July 1 (Moscow midnight = 21:00 UTC)
    s = at(datetime(2026, 6, 30, 18, tzinfo=MOSCOW))
    e = at(datetime(2026, 7, 1, 2, tzinfo=MOSCOW))
    charges = price([track("household-flat")], [(0, s, e, 8 * KWH)])
    assert [int(q) // KWH for q in charges.quantity] == [6, 2]
    assert [from_pico(int(a)) for a in charges.amount] == [Decimal("38.58"), Decimal("13.98")]
    assert [PLANS[TARIFFS.rates[int(r)].plan].versions[TARIFFS.rates[int(r)].version].valid_from
            for r in charges.rate] == [date(2025, 7, 1), date(2026, 7, 1)]


def test_a_plan_chosen_for_the_next_period_applies_from_its_first_day() -> None:
    steps = (PlanStep(None, CODE["household-flat"]),
             PlanStep(date(2026, 12, 1), CODE["household-2zone"], ConsumerGroup.ELECTRIC_STOVE))
    s = at(datetime(2026, 11, 30, 22, tzinfo=MOSCOW))
    e = at(datetime(2026, 12, 1, 2, tzinfo=MOSCOW))
    got = by_zone_and_band(price([Track("Europe/Moscow", steps)], [(0, s, e, 4 * KWH)]))
    # Nov 30 22:00-24:00 on one rate at 6.99; Dec 1 00:00-02:00 at night x 0.7 = 2.17
    assert got == {("all_day", 0): (Decimal(2), Decimal("13.98")),
                   ("night", 0): (Decimal(2), Decimal("4.34"))}


def test_dst_moscow_2014_10_26_the_night_had_nine_hours() -> None:
    book = tariff_book("""
[[plans]]
code = "2zone"
name = "Two zones"
service = "electricity"
basis = "kWh"
[[plans.versions]]
valid_from = 2014-01-01
zones = { day = ["07:00-23:00"], night = ["23:00-07:00"] }
prices = { day = [3.88], night = [1.13] }
""")
    tariffs = TariffSet({0: book.plans[0]})
    # 20:00 (UTC+4) on the 25th to 08:00 (UTC+3) on the 26th: 13 hours, 1 kWh each; the night
    # 23:00-07:00 lasted 9 hours because 01:00-02:00 was lived twice
    s = at(datetime(2014, 10, 25, 16, tzinfo=UTC))
    e = at(datetime(2014, 10, 26, 5, tzinfo=UTC))
    got = by_zone_and_band(price([Track("Europe/Moscow", (PlanStep(None, 0),))],
                                 [(0, s, e, 13 * KWH)], tariffs), tariffs)
    assert got == {("day", 0): (Decimal(4), Decimal("15.52")),
                   ("night", 0): (Decimal(9), Decimal("10.17"))}


def test_dst_berlin_short_and_long_nights() -> None:
    two = track("household-2zone", "Europe/Berlin")
    spring = (at(datetime(2026, 3, 28, 22, tzinfo=BERLIN)),
              at(datetime(2026, 3, 29, 8, tzinfo=BERLIN)))
    autumn = (at(datetime(2026, 10, 24, 22, tzinfo=BERLIN)),
              at(datetime(2026, 10, 25, 8, tzinfo=BERLIN)))
    assert (spring[1] - spring[0]) // 3_600_000_000 == 9  # 22:00 CET to 08:00 CEST
    assert (autumn[1] - autumn[0]) // 3_600_000_000 == 11  # 22:00 CEST to 08:00 CET
    for (s, e), night in ((spring, 7), (autumn, 9)):
        hours = (e - s) // 3_600_000_000
        charges = price([two], [(0, s, e, hours * KWH)])
        got = {TARIFFS.rates[int(r)].zones[int(z)]: int(q) // KWH
               for r, z, q in zip(charges.rate, charges.zone, charges.quantity, strict=True)
               if int(z) == 1}
        assert got == {"night": night}
        assert int(charges.quantity.sum()) == hours * KWH


def test_a_social_norm_depends_on_the_residents() -> None:
    # within the norm 5.90, above 8.40; norm 90 kWh for one resident, 140 for two,
    # 170 for three or more
    s = at(datetime(2026, 11, 2, tzinfo=MOSCOW))
    e = at(datetime(2026, 11, 3, tzinfo=MOSCOW))
    tracks = [track("household-social-norm", residents=n) for n in (1, 2, 5)]
    charges = price(tracks, [(k, s, e, 200 * KWH) for k in range(3)])
    got = [(int(i), int(b), int(q) // KWH)
           for i, b, q in zip(charges.interval, charges.band, charges.quantity, strict=True)]
    assert got == [(0, 0, 90), (0, 1, 110), (1, 0, 140), (1, 1, 60), (2, 0, 170), (2, 1, 30)]


def test_business_volume_tiers_price_each_tier_s_volume_at_its_price() -> None:
    # tiers: up to 10,000 kWh at 9.80, 10,000-50,000 at 9.20, above at 8.70
    s = at(datetime(2026, 11, 1, tzinfo=MOSCOW))
    e = at(datetime(2026, 11, 30, tzinfo=MOSCOW))
    charges = price([track("business-tiers")], [(0, s, e, 60_000 * KWH)])
    assert [int(q) // KWH for q in charges.quantity] == [10_000, 40_000, 10_000]
    assert sum(from_pico(int(a)) for a in charges.amount) == Decimal(98_000 + 368_000 + 87_000)


def test_an_interval_where_no_tariff_is_in_force_is_not_priced() -> None:
    s = at(datetime(2025, 6, 30, 20, tzinfo=MOSCOW))  # the book starts on 2025-07-01
    e = at(datetime(2025, 7, 1, 4, tzinfo=MOSCOW))
    inside = (at(datetime(2025, 7, 2, tzinfo=MOSCOW)), at(datetime(2025, 7, 2, 1, tzinfo=MOSCOW)))
    charges = price([track("household-flat")], [(0, s, e, 8 * KWH), (0, *inside, KWH)])
    assert charges.unpriced.tolist() == [0]
    assert charges.interval.tolist() == [1]


def test_amounts_past_int64_stay_exact() -> None:
    s = at(datetime(2026, 11, 1, tzinfo=MOSCOW))
    e = at(datetime(2026, 11, 30, tzinfo=MOSCOW))
    huge = 9 * 10**12  # 9 million MWh in micro-kWh: quantity x price overflows int64
    charges = price([track("business-tiers")], [(0, s, e, huge)])
    assert sum(from_pico(int(a)) for a in charges.amount) == (
        Decimal(10_000) * Decimal("9.80") + Decimal(40_000) * Decimal("9.20")
        + (Decimal(huge).scaleb(-6) - 50_000) * Decimal("8.70"))
