"""Pure rating core benchmark: cumulative readings -> consumption intervals -> charge lines, on
batches of 10,000 readings with three-zone and band tariffs, against a straightforward
per-reading Python implementation of the same rules (``meterline.tariffs.reference``) on the
same readings, in the same run.

    python -m bench.tariffs [--meters 1000] [--batches 10] [--repeats 3]

The fleet: ``--meters`` meters read every 15 minutes, so each batch holds 10 readings of each of
1,000 meters (2.5 hours); the run starts on October 31 at 18:00 in Moscow, so the month ends
inside it and bands start again. Plans (the example electricity book): 60 % three zones, 20 %
two zones, 20 % one rate, all with the 2025 volume bands, a quarter of the homes rural or with
an electric stove, half in Europe/Moscow and half in Asia/Yekaterinburg; each starts the month
with 0 to 6,000 kWh already used, so band limits are crossed. Both sides price every batch in
order, carrying the register state and the monthly volumes from one batch to the next; before
timing, the script checks that both give the same kWh and money per zone, band and version.
No database, broker or I/O: the core alone.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meterline.instants import SECOND, micros
from meterline.tariffs.books import EXAMPLES, read_book
from meterline.tariffs.model import ConsumerGroup, TariffPlan
from meterline.tariffs.pricing import BandState, PlanStep, TariffSet, Track, Usage, month_id
from meterline.tariffs.reference import ReferencePricer, Segment, rate_readings
from rating.core import NO_STATE, consumption_intervals

I64 = npt.NDArray[np.int64]
BOOK = EXAMPLES / "energosbyt.toml"
STEP = 15 * 60 * SECOND
START = datetime(2026, 10, 31, 18, tzinfo=ZoneInfo("Europe/Moscow"))
KWH = 10**6


@dataclass(frozen=True)
class Fleet:
    tracks: list[Track]
    track_of: I64  # per meter
    batches: list[tuple[I64, I64, I64]]  # (series, ts, value) per batch
    used: BandState  # monthly volume before the run


def fleet(meters: int, batches: int, per_batch: int, seed: int = 7) -> Fleet:
    plans = {p.code: k for k, p in enumerate(read_book(BOOK).plans)}
    rng = np.random.default_rng(seed)
    tracks: list[Track] = []
    index: dict[Track, int] = {}
    track_of = np.empty(meters, dtype=np.int64)
    for m in range(meters):
        code = rng.choice(["household-3zone"] * 3 + ["household-2zone", "household-flat"])
        group = rng.choice([ConsumerGroup.URBAN] * 6 + [ConsumerGroup.RURAL,
                                                        ConsumerGroup.ELECTRIC_STOVE])
        zone = "Europe/Moscow" if m % 2 == 0 else "Asia/Yekaterinburg"
        track = Track(zone, (PlanStep(None, plans[str(code)], ConsumerGroup(group)),))
        track_of[m] = index.setdefault(track, len(index))
        if len(tracks) < len(index):
            tracks.append(track)
    readings_each = per_batch // meters
    t0 = micros(START)
    power = rng.integers(200, 15_000, size=meters)  # watts: micro-kWh per 15 min = W x 250
    value = rng.integers(0, 10**11, size=meters)
    out = []
    for b in range(batches):
        k = np.arange(readings_each) + b * readings_each
        ts = np.tile(t0 + k * STEP, meters)
        noise = rng.integers(0, 2, size=(meters, readings_each))
        steps = (power[:, None] * 250 * (1 + noise)).astype(np.int64)
        values = value[:, None] + np.cumsum(steps, axis=1)
        value = values[:, -1]
        series = np.repeat(np.arange(meters, dtype=np.int64), readings_each)
        shuffle = rng.permutation(len(series))  # a batch arrives in any order
        out.append((series[shuffle], ts[shuffle], values.reshape(-1)[shuffle]))
    october = month_id(START.date())
    used = BandState(key=np.arange(meters, dtype=np.int64),
                     month=np.full(meters, october, dtype=np.int64),
                     volume=rng.integers(0, 6_000, size=meters) * KWH)
    return Fleet(tracks, track_of, out, used)


Totals = dict[tuple[int, int, str, int], list[Decimal]]


def vectorised(tariffs: TariffSet, data: Fleet, totals: Totals | None = None) -> int:
    """Price every batch with the numpy core; returns the charge lines made."""
    meters = len(data.track_of)
    state_ts = np.full(meters, NO_STATE, dtype=np.int64)
    state_value = np.zeros(meters, dtype=np.int64)
    used = data.used
    lines = 0
    for series, ts, value in data.batches:
        out = consumption_intervals(series, ts, value, state_ts, state_value)
        state_ts[out.state_series] = out.state_ts
        state_value[out.state_series] = out.state_value
        owner = series[out.charged]
        charges = tariffs.price(Usage(
            tracks=data.tracks, track=data.track_of[owner], band_key=owner,
            start=out.start_ts, end=ts[out.charged], quantity=out.quantity, used=used))
        used = charges.used
        lines += len(charges.quantity)
        if totals is not None:
            for r, z, b, q, a in zip(charges.rate, charges.zone, charges.band,
                                     charges.quantity, charges.amount, strict=True):
                rate = tariffs.rates[int(r)]
                key = (rate.plan, rate.version, rate.zones[int(z)], int(b))
                totals[key][0] += int(q)
                totals[key][1] += Decimal(int(a)).scaleb(-12)
    return lines


def intervals_only(data: Fleet) -> int:
    """The first half of the core alone (readings to intervals), to show where time goes."""
    meters = len(data.track_of)
    state_ts = np.full(meters, NO_STATE, dtype=np.int64)
    state_value = np.zeros(meters, dtype=np.int64)
    made = 0
    for series, ts, value in data.batches:
        out = consumption_intervals(series, ts, value, state_ts, state_value)
        state_ts[out.state_series] = out.state_ts
        state_value[out.state_series] = out.state_value
        made += len(out.charged)
    return made


def per_reading(pricer: ReferencePricer, data: Fleet, totals: Totals | None = None) -> int:
    """Price the same batches one reading at a time (readings in arrival order within a batch
    sorted by time per meter, as a per-reading worker would need them)."""
    track_of = {m: (data.tracks[int(t)], m) for m, t in enumerate(data.track_of)}
    used = {(int(k), int(m)): int(v) for k, m, v in
            zip(data.used.key, data.used.month, data.used.volume, strict=True)}
    lines = 0
    last: dict[int, tuple[int, int]] = {}
    for series, ts, value in data.batches:
        order = np.lexsort((ts, series))
        priced = rate_readings(pricer, zip(series[order].tolist(), ts[order].tolist(),
                                           value[order].tolist(), strict=True),
                               track_of, used, last)
        lines += len(priced.lines)
        if totals is not None:
            for line in priced.lines:
                key = (line.plan, line.version, line.zone, line.band)
                totals[key][0] += line.quantity
                totals[key][1] += line.amount
    return lines


class MemoisedPricer(ReferencePricer):
    """The per-reading implementation with each day's boundaries computed once: the first
    optimisation anyone would make to it, measured too so the ratio is not flattered."""

    def __init__(self, plans: dict[int, TariffPlan]) -> None:
        super().__init__(plans)
        self._days: dict[tuple[Track, date], list[tuple[int, Segment | None]]] = {}

    def day(self, track: Track, day: date) -> list[tuple[int, Segment | None]]:
        key = (track, day)
        if key not in self._days:
            self._days[key] = super().day(track, day)
        return self._days[key]


def seconds(run: Callable[[], int]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds (medians reported)")
    args = parser.parse_args()
    data = fleet(args.meters, args.batches, args.batch_size)
    readings = sum(len(b[0]) for b in data.batches)
    plans = dict(enumerate(read_book(BOOK).plans))

    fast: Totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    slow: Totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    vectorised(TariffSet(plans), data, fast)
    per_reading(ReferencePricer(plans), data, slow)
    if fast != slow:
        raise SystemExit("the two implementations disagree; no timing")
    money = sum(a for _, a in fast.values())

    # rounds alternate the implementations, so a burst of load elsewhere on the machine
    # falls on all of them; boundaries and day caches are warm, as in a running worker
    tariffs, pricer, memoised = TariffSet(plans), ReferencePricer(plans), MemoisedPricer(plans)
    vectorised(tariffs, data)
    per_reading(memoised, data)
    rounds: list[tuple[float, float, float, float]] = []
    for _ in range(args.repeats):
        fast_s = statistics.median(seconds(lambda: vectorised(tariffs, data)) for _ in range(5))
        half_s = statistics.median(seconds(lambda: intervals_only(data)) for _ in range(5))
        rounds.append((fast_s, seconds(lambda: per_reading(pricer, data)),
                       seconds(lambda: per_reading(memoised, data)), half_s))
        print(f"  round {len(rounds)}: vectorised {readings / fast_s:,.0f}/s, per reading "
              f"{readings / rounds[-1][1]:,.0f}/s, memoised {readings / rounds[-1][2]:,.0f}/s",
              flush=True)
    vector_s, plain_s, memo_s, half_s = (statistics.median(r[k] for r in rounds)
                                         for k in range(4))
    lines = vectorised(tariffs, data)

    print(f"## pure rating core: {args.batches} batches of {args.batch_size:,} readings "
          f"({args.meters:,} meters every 15 min, three-zone/two-zone/one-rate with bands)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}; same totals both ways: "
          f"{sum(q for q, _ in fast.values()) / KWH:,.0f} kWh, {money:,.2f} RUB")
    print(f"vectorised (numpy): {readings / vector_s:,.0f} readings/s "
          f"({vector_s * 1000 / args.batches:.1f} ms per batch, of which "
          f"{half_s * 1000 / args.batches:.1f} ms readings to intervals; {lines:,} charge lines)")
    print(f"per reading (plain Python): {readings / plain_s:,.0f} readings/s "
          f"({plain_s * 1000 / args.batches:.0f} ms per batch)")
    print(f"per reading, day boundaries memoised: {readings / memo_s:,.0f} readings/s "
          f"({memo_s * 1000 / args.batches:.0f} ms per batch)")
    print(f"ratio vectorised / per reading: {plain_s / vector_s:.1f}x "
          f"(/ per reading memoised: {memo_s / vector_s:.1f}x)")


if __name__ == "__main__":
    main()
