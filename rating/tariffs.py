"""What rating needs of the tariff books: every plan compiled once per worker (``load_tariffs``,
refreshed every ``tariff_refresh`` seconds), and for one batch its accounts' tracks and the
volume each has used this month (``batch_tariffs``), read in the batch's transaction.

Pricing itself is the kernel's (``meterline.tariffs.pricing``), called by
``rating.pricing.price_batch``; booking the lines and moving the monthly volumes is
``rating.ledger``'s.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import psycopg

from meterline.tariffs.tracks import Key, Tariffs, load_tariffs, load_tracks, load_volumes
from rating.pricing import BatchTariffs, RoutedReadings, services

__all__ = ["BatchTariffs", "Tariffs", "batch_tariffs", "load_tariffs"]


async def batch_tariffs(conn: psycopg.AsyncConnection[Any], tariffs: Tariffs,
                        batch: RoutedReadings, since: date) -> BatchTariffs:
    """The tracks of the batch's (account, provider, service) and, for those priced by bands,
    their monthly volumes from the month holding ``since`` (the earliest instant an interval
    of the batch may start): a flat or zoned price needs none, and is read none."""
    ids: dict[Key, int] = {}
    key = np.fromiter(
        (ids.setdefault(k, len(ids)) for k in zip(batch.account, batch.provider,
                                                   services(batch.utility), strict=True)),
        dtype=np.int64, count=len(batch))
    keys = list(ids)
    found = await load_tracks(conn, keys)
    # keys of one timeline mostly share one Track object: compare objects by identity first,
    # then the few distinct ones by value
    shared = {id(t): t for t in found if t is not None}
    tracks = sorted(set(shared.values()), key=repr)
    index = {t: i for i, t in enumerate(tracks)}
    of_object = {object_id: index[t] for object_id, t in shared.items()} | {id(None): -1}
    track_of_key = np.fromiter(map(of_object.__getitem__, map(id, found)), dtype=np.int64,
                               count=len(found))
    # asked once per distinct track, not per key (the -1 of a key with no track: never)
    track_banded = np.array([tariffs.needs_volume(t) for t in tracks] + [False], dtype=bool)
    banded = np.flatnonzero(track_banded[track_of_key]).tolist()
    return BatchTariffs(
        set=tariffs.set, version_ids=tariffs.version_ids, tracks=tracks,
        track=track_of_key[key] if len(key) else key, key=key,
        volumes=await load_volumes(conn, [keys[i] for i in banded], since, banded),
    )
