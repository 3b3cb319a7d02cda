"""The readings topic's records, decoded: ``ReadingsRecord`` (v2, many accounts' readings as
columns) and ``AccountReadings`` (v1, one account's readings). A record that is neither
comes back with the reason, to be dead-lettered. ``replacements`` are the meter replacements
they carry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from meterline.contracts import AccountReadings, ReadingsRecord
from meterline.replacements import Replacement
from rating.pricing import RoutedReadings, flag_bits
from rating.replacements import reported

Rejected = tuple[str, str]  # (reason, payload)


def decode(payloads: Iterable[bytes]) -> tuple[list[ReadingsRecord | AccountReadings],
                                               list[Rejected]]:
    """Kafka values -> records, in order; the ones that do not parse as (reason, payload)."""
    records: list[ReadingsRecord | AccountReadings] = []
    bad: list[Rejected] = []
    for payload in payloads:
        model: type[ReadingsRecord] | type[AccountReadings] = (
            ReadingsRecord if payload.startswith(b'{"v":2') else AccountReadings)
        try:
            records.append(model.model_validate_json(payload))
        except ValidationError as exc:
            bad.append((f"invalid readings record: {exc}", payload.decode("utf-8", "replace")))
    return records, bad


def routed(records: Sequence[ReadingsRecord | AccountReadings]) -> RoutedReadings:
    """The records' readings as one columnar batch, in order: v2 columns are taken as they
    are (no per-reading object), v1 records through ``RoutedReadings.of``."""
    parts = [
        RoutedReadings(account=r.account, meter=r.meter, register=r.register, unit=r.unit,
                       provider=r.provider, utility=r.utility,
                       ts=np.asarray(r.ts, dtype=np.int64),
                       value=np.asarray(r.value, dtype=np.int64), flags=_flags(r))
        if isinstance(r, ReadingsRecord) else RoutedReadings.of([r])
        for r in records
    ]
    return RoutedReadings.concat(parts)


def _flags(record: ReadingsRecord) -> npt.NDArray[np.int64] | None:
    """The record's reading flags as rating's bits, or None when it has none."""
    if not record.flagged:
        return None
    bits = np.zeros(len(record), dtype=np.int64)
    for i, flags in record.flagged:
        bits[i] |= flag_bits(flags)
    return bits


def replacements(records: Sequence[ReadingsRecord | AccountReadings]) -> list[Replacement]:
    """The meter replacements the records carry, as the kernel records them."""
    found = [(account, r) for rec in records if isinstance(rec, ReadingsRecord)
             for account, r in rec.replacements]
    found += [(rec.account, r) for rec in records if isinstance(rec, AccountReadings)
              for r in rec.replacements]
    return [reported(r) for _, r in found]
