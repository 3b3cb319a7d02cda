"""The register policy in the pure rating core (``rating.core.consumption_intervals``): batches
of 10,000 readings of registers that grow steadily, of which some drop (a reset) or all do (a
fleet restarted after a power cut), against a straightforward per-reading Python
implementation of the same policy on the same readings, in the same run.

    python -m bench.registers [--meters 1000] [--per-meter 10] [--repeats 7]

Before timing, the script checks that both give the same intervals. Medians of ``--repeats``
runs; no database, broker or I/O.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from rating.core import NO_STATE, consumption_intervals

I64 = npt.NDArray[np.int64]
Batch = tuple[I64, I64, I64, I64, I64]  # series, ts, value, state_ts, state_value


def fleet(meters: int, per_meter: int, dropping: float, seed: int = 7) -> Batch:
    """``per_meter`` readings of each meter, 15 minutes apart, in random order; a share
    ``dropping`` of the meters is reset (to a low value) at a random reading of the batch."""
    rng = np.random.default_rng(seed)
    series = np.repeat(np.arange(meters, dtype=np.int64), per_meter)
    step = np.arange(per_meter, dtype=np.int64)
    ts = np.tile(step + 1, meters) * 900_000_000
    growth = rng.integers(0, 500_000, (meters, per_meter)).cumsum(axis=1)
    value = (10**9 + growth).astype(np.int64)
    for m in np.flatnonzero(rng.random(meters) < dropping):
        at = int(rng.integers(0, per_meter - 1))
        value[m, at:] = growth[m, at:] - growth[m, at] + rng.integers(0, 1_000)
    order = rng.permutation(meters * per_meter)
    state_ts = np.zeros(meters, dtype=np.int64)
    state_value = np.full(meters, 10**9, dtype=np.int64)
    return series[order], ts[order], value.ravel()[order], state_ts, state_value


def plain(series: I64, ts: I64, value: I64, state_ts: I64,
          state_value: I64) -> list[tuple[int, int, int]]:
    """The same policy (no flags, no counter widths), a reading at a time."""
    level = {s: (int(t), int(v)) for s, (t, v) in enumerate(zip(state_ts, state_value,
                                                                  strict=True)) if t != NO_STATE}
    pending: dict[int, tuple[int, int]] = {}
    out = []
    rows = sorted({(int(s), int(t)): int(v) for s, t, v in zip(series, ts, value,
                                                               strict=True)}.items())
    for (s, t), v in rows:
        if s not in level:
            level[s] = (t, v)
            continue
        lt, lv = level[s]
        if t <= max(lt, pending.get(s, (NO_STATE, 0))[0]):
            continue
        cand = pending.get(s)
        if cand is None:
            if v >= lv:
                if v > lv:
                    out.append((s, lt, v - lv))
                level[s] = (t, v)
            else:
                pending[s] = (t, v)
        elif v < cand[1]:
            pending[s] = (t, v)
        elif cand[1] < lv <= v:
            if v > lv:
                out.append((s, lt, v - lv))
            level[s] = (t, v)
            del pending[s]
        else:
            if v > cand[1]:
                out.append((s, cand[0], v - cand[1]))
            level[s] = (t, v)
            del pending[s]
    return sorted(out)


def vectorised(batch: Batch) -> list[tuple[int, int, int]]:
    series = batch[0]
    out = consumption_intervals(*batch)
    return sorted(zip(series[out.charged].tolist(), out.start_ts.tolist(),
                      out.quantity.tolist(), strict=True))


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--per-meter", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.meters * args.per_meter
    print(f"{platform.python_implementation()} {platform.python_version()}, numpy "
          f"{np.__version__}; batches of {n:,} readings ({args.meters:,} meters x "
          f"{args.per_meter}), medians of {args.repeats}")
    for name, share in (("steady", 0.0), ("1% reset", 0.01), ("10% reset", 0.1),
                        ("all reset (restart)", 1.0)):
        batch = fleet(args.meters, args.per_meter, share)
        if vectorised(batch) != plain(*batch):
            raise SystemExit(f"{name}: the vectorised core and the plain one disagree")
        fast = median_seconds(partial(consumption_intervals, *batch), args.repeats)
        slow = median_seconds(partial(plain, *batch), args.repeats)
        print(f"{name:>20}: core {n / fast:>12,.0f} readings/s   plain {n / slow:>10,.0f} "
              f"readings/s   ratio {slow / fast:6.1f}x")


if __name__ == "__main__":
    main()
