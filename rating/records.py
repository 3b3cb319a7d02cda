"""The readings topic's records, decoded: ``ReadingsRecord`` (v2, many accounts' readings as
columns) and ``AccountReadings`` (v1, one account's readings). A record that is neither
comes back with the reason, to be dead-lettered."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from pydantic import ValidationError

from meterline.contracts import AccountReadings, Reading, ReadingsRecord
from meterline.money import from_micro
from meterline.units import Register, Unit, Utility
from rating.core import from_micros

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


def as_account_readings(
    records: Iterable[ReadingsRecord | AccountReadings],
) -> list[AccountReadings]:
    """Records in version 1's shape, for booking code that takes only that (per-reading
    objects: slow, see BENCHMARKS.md)."""
    out: list[AccountReadings] = []
    for record in records:
        if isinstance(record, AccountReadings):
            out.append(record)
            continue
        gateway, seq = record.batches[0] if record.batches else ("unknown", 0)
        rows = sorted(range(len(record)), key=record.account.__getitem__)
        for account, members in groupby(rows, key=record.account.__getitem__):
            out.append(AccountReadings(account=account, gateway=gateway, seq=seq, readings=[
                Reading(meter=record.meter[i], register=Register(record.register[i]),
                        unit=Unit(record.unit[i]), value=from_micro(record.value[i]),
                        ts=from_micros(record.ts[i]), provider=record.provider[i],
                        utility=Utility(record.utility[i]))
                for i in members]))
    return out
