"""Properties of pricing, over generated intervals, time zones and DST changes:

- rating an interval in parts equals rating it whole (same kWh and money per zone, band and
  tariff version), in one batch or batch after batch;
- the vectorised core agrees line for line with the plain per-reading implementation;
- no float reaches money: every amount is the exact product of quantity and price;
- every micro-unit of an interval is priced exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.instants import micros
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.pricing import (
    BandState,
    Charges,
    PlanStep,
    TariffSet,
    Track,
    Usage,
    month_id,
)
from meterline.tariffs.reference import ReferencePricer, rate_readings
from meterline.tariffs.zones import time_zone
from rating.core import NO_STATE, consumption_intervals
from tests.factories import example_book, tariff_book

SECOND = 1_000_000
PLANS = dict(enumerate(example_book("energosbyt").plans))
CODE = {p.code: key for key, p in PLANS.items()}
TARIFFS = TariffSet(PLANS)
ZONES = ["Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
# around DST changes, version changes (July 1) and month ends
MOMENTS = [micros(datetime(*d, tzinfo=UTC)) for d in [
    (2026, 3, 27), (2026, 3, 7), (2026, 6, 29), (2026, 10, 23), (2026, 10, 30), (2026, 12, 30)]]

tracks = st.builds(
    Track,
    time_zone=st.sampled_from(ZONES),
    steps=st.tuples(st.builds(
        PlanStep, since=st.none(),
        plan=st.sampled_from([CODE["household-3zone"], CODE["household-2zone"],
                              CODE["household-flat"], CODE["household-social-norm"]]),
        group=st.sampled_from(list(ConsumerGroup)))),
    residents=st.integers(0, 4),
)


def totals(charges: Charges) -> dict[tuple[int, int, int], tuple[int, int]]:
    """(rate, zone, band) -> (micro-units, pico-roubles)."""
    out: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r, z, b, q, a in zip(charges.rate, charges.zone, charges.band, charges.quantity,
                             charges.amount, strict=True):
        out[(int(r), int(z), int(b))][0] += int(q)
        out[(int(r), int(z), int(b))][1] += int(a)
    return {k: (q, a) for k, (q, a) in out.items()}


def usage(track: Track, points: list[int], rate: int, used: int, first_month: int) -> Usage:
    """Intervals between consecutive ``points`` (seconds from the start) of a steady
    consumption of ``rate`` micro-units per second."""
    s = np.array(points[:-1], dtype=np.int64) * SECOND
    e = np.array(points[1:], dtype=np.int64) * SECOND
    n = len(s)
    return Usage(tracks=[track], track=np.zeros(n, np.int64), band_key=np.zeros(n, np.int64),
                 start=s, end=e, quantity=(e - s) // SECOND * rate,
                 used=BandState(np.zeros(1, np.int64), np.array([first_month], np.int64),
                                np.array([used], np.int64)))


@settings(max_examples=200, deadline=None)
@given(track=tracks, moment=st.sampled_from(MOMENTS), offset=st.integers(0, 3 * 86_400),
       length=st.integers(1, 6 * 86_400), kwh=st.integers(1, 8_000),
       used=st.integers(0, 7_000).map(lambda kwh: kwh * 10**6),
       cuts=st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=12),
       batches=st.booleans())
def test_rating_an_interval_in_parts_equals_rating_it_whole(
    track: Track, moment: int, offset: int, length: int, kwh: int, used: int,
    cuts: list[float], batches: bool,
) -> None:
    rate = max(1, kwh * 10**6 // length)  # micro-units a second, steady
    start = moment // SECOND + offset
    inner = sorted({start + int(c * length) for c in cuts} - {start, start + length})
    points = [start, *inner, start + length]
    whole_usage = usage(track, [start, start + length], rate, used, _month(track, start))
    whole = TARIFFS.price(whole_usage)
    parts_usage = usage(track, points, rate, used, _month(track, start))
    if not batches:
        parts = totals(TARIFFS.price(parts_usage))
    else:  # one interval per batch, the band state carried from one to the next
        parts = defaultdict(lambda: (0, 0))
        state = parts_usage.used
        for k in range(len(points) - 1):
            one = TARIFFS.price(Usage(
                tracks=[track], track=parts_usage.track[k:k + 1],
                band_key=parts_usage.band_key[k:k + 1], start=parts_usage.start[k:k + 1],
                end=parts_usage.end[k:k + 1], quantity=parts_usage.quantity[k:k + 1],
                used=state))
            for key, (q, a) in totals(one).items():
                parts[key] = (parts[key][0] + q, parts[key][1] + a)
            state = one.used
        parts = dict(parts)
    assert parts == totals(whole)
    assert sum(q for q, _ in parts.values()) == rate * length


def _month(track: Track, second: int) -> int:
    day = datetime.fromtimestamp(second, UTC).astimezone(time_zone(track.time_zone)).date()
    return month_id(day)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), moment=st.sampled_from(MOMENTS),
       zone_tracks=st.lists(tracks, min_size=1, max_size=4))
def test_the_vectorised_core_agrees_with_the_plain_per_reading_implementation(
    seed: int, moment: int, zone_tracks: list[Track],
) -> None:
    rng = np.random.default_rng(seed)
    meters, per = len(zone_tracks) * 2, 30
    series = np.repeat(np.arange(meters), per).astype(np.int64)
    gaps = rng.integers(1, 8 * 3_600, size=meters * per) * SECOND
    ts = np.concatenate([moment + np.cumsum(gaps[m * per:(m + 1) * per]) for m in range(meters)])
    steps = rng.integers(0, 400 * 10**6, size=meters * per)
    steps[rng.random(meters * per) < 0.2] = 0
    value = np.concatenate([np.cumsum(steps[m * per:(m + 1) * per]) for m in range(meters)])
    track_of = {m: (zone_tracks[m % len(zone_tracks)], m) for m in range(meters)}

    out = consumption_intervals(series, ts, value, np.full(meters, NO_STATE, np.int64),
                                np.zeros(meters, np.int64))
    charged = out.charged
    owner = series[charged]
    charges = TARIFFS.price(Usage(
        tracks=zone_tracks, track=owner % len(zone_tracks), band_key=owner,
        start=out.start_ts, end=ts[charged], quantity=out.quantity))
    fast: dict[tuple[int, int, int, ConsumerGroup, str, int], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0)])
    for i, r, z, b, q, a in zip(charges.interval, charges.rate, charges.zone, charges.band,
                                charges.quantity, charges.amount, strict=True):
        rate = TARIFFS.rates[int(r)]
        key = (int(charged[i]), rate.plan, rate.version, rate.group, rate.zones[int(z)], int(b))
        fast[key][0] += int(q)
        fast[key][1] += Decimal(int(a)).scaleb(-12)

    plain = rate_readings(ReferencePricer(PLANS),
                          zip(series.tolist(), ts.tolist(), value.tolist(), strict=True),
                          track_of)
    slow: dict[tuple[int, int, int, ConsumerGroup, str, int], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0)])
    for line in plain.lines:
        key = (line.interval, line.plan, line.version, line.group, line.zone, line.band)
        slow[key][0] += line.quantity
        slow[key][1] += line.amount
    assert fast == slow
    assert sorted(charged[charges.unpriced].tolist()) == sorted(plain.unpriced)


@settings(max_examples=150, deadline=None)
@given(prices=st.lists(st.decimals(0, 10**6, places=6), min_size=3, max_size=3),
       quantities=st.lists(st.integers(1, 10**15), min_size=1, max_size=20),
       bands=st.lists(st.integers(1, 10**9), min_size=2, max_size=2, unique=True))
def test_no_float_reaches_money(prices: list[Decimal], quantities: list[int],
                                bands: list[int]) -> None:
    low, high = sorted(bands)
    book = tariff_book(f"""
[[plans]]
code = "p"
name = "p"
service = "electricity"
basis = "kWh"
[[plans.versions]]
valid_from = 2020-01-01
bands = [{low}, {high}]
prices = {{ all_day = [{prices[0]}, {prices[1]}, {prices[2]}] }}
""")
    tariffs = TariffSet({0: book.plans[0]})
    n = len(quantities)
    start = micros(datetime(2026, 5, 1, tzinfo=UTC))
    s = start + np.arange(n, dtype=np.int64) * 60 * SECOND
    charges = tariffs.price(Usage(
        tracks=[Track("Europe/Moscow", (PlanStep(None, 0),))], track=np.zeros(n, np.int64),
        band_key=np.arange(n, dtype=np.int64), start=s, end=s + 60 * SECOND,
        quantity=np.array(quantities, dtype=np.int64)))
    assert charges.amount.dtype.kind in "iO" and charges.unit_price.dtype.kind == "i"
    for q, p, a, b in zip(charges.quantity, charges.unit_price, charges.amount, charges.band,
                          strict=True):
        assert isinstance(int(a), int) and not isinstance(a, float)
        price = prices[int(b)]
        assert Decimal(int(p)).scaleb(-6) == price
        assert Decimal(int(a)).scaleb(-12) == Decimal(int(q)).scaleb(-6) * price
    # every micro-unit priced once, within each interval
    for i, q in enumerate(quantities):
        assert int(charges.quantity[charges.interval == i].sum()) == q
