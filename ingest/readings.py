"""Checking gateways' batches and routing their readings to accounts, as columns.

Pure: given raw MQTT payloads and the known meters, it says what to store, what to forward to
Kafka (``ReadingsRecord`` v2: many accounts' readings per record, each account's readings on
the partition its id hashes to) and what to dead-letter with which reason. A bad sample is
dead-lettered on its own; the rest of the batch goes on.

No pydantic per reading (it costs some 40 us a reading on this path, BENCHMARKS.md): the
envelope is validated per batch, and every sample in the shape gateways send (decimal string
value, ISO time with its offset, no flags) goes through a few list comprehensions; only a
sample that does not look like that is validated by ``Sample`` (``SampleV2`` in a version 2
batch) on its own, which either accepts it or says what is wrong with it.

Both batch versions are taken: a version 2 batch's reading flags and meter replacements go
on to Kafka with the readings of the account concerned (the platform's register policy acts
on them); its measurements and clock state are not stored here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from ingest.directory import KnownMeter
from meterline.contracts import (
    AccountReadings,
    BatchEnvelope,
    MeterReplacement,
    Reading,
    ReadingFlag,
    ReadingsRecord,
    Sample,
    SampleV2,
)
from meterline.instants import EPOCH, micros
from meterline.telemetry import micro_units
from meterline.units import Register, Unit

I64 = npt.NDArray[np.int64]

RECORD_READINGS = 2_000  # readings per Kafka record at most (a record stays some 200 kB)

_FIELDS = frozenset(Sample.model_fields)
_FIELDS_V2 = frozenset(SampleV2.model_fields)
_REGISTERS = frozenset(r.value for r in Register)
_UNITS = frozenset(u.value for u in Unit)
# a value as gateways write it; anything else goes through pydantic (max 20 digits, 9 decimals)
_PLAIN_VALUE = re.compile(r"\d{1,11}(?:\.\d{1,9})?")
_METER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
    )


def parse_envelope(payload: bytes, topic_gateway: str) -> BatchEnvelope | str:
    """The batch envelope, or the reason it is refused."""
    try:
        envelope = BatchEnvelope.model_validate_json(payload)
    except ValidationError as exc:
        return f"malformed readings batch: {_errors(exc)}"
    if envelope.gateway != topic_gateway:
        return f"batch names gateway {envelope.gateway!r} but came on {topic_gateway!r}'s topic"
    return envelope


@dataclass
class Samples:
    """Well-formed samples of one or more gateway batches, as columns."""

    gateway: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # per sample: "gw/seq", for reasons
    meter: list[str] = field(default_factory=list)
    register: list[str] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)  # UTC microseconds
    value: list[int] = field(default_factory=list)  # micro-units
    flags: list[tuple[ReadingFlag, ...]] = field(default_factory=list)  # mostly empty
    raw: list[Any] = field(default_factory=list)  # as received (dead letters quote it)

    def __len__(self) -> int:
        return len(self.meter)

    def extend(self, other: Samples) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


def _plain(raw: Any) -> bool:
    """A sample exactly as gateways write it, with no flags: the fast path takes it without
    pydantic."""
    return (
        type(raw) is dict
        and (raw.keys() == _FIELDS or (raw.keys() == _FIELDS_V2 and raw["flags"] == []))
        and type(meter := raw["meter"]) is str and _METER.fullmatch(meter) is not None
        and raw["register"] in _REGISTERS and raw["unit"] in _UNITS
        and type(value := raw["value"]) is str and _PLAIN_VALUE.fullmatch(value) is not None
        and type(raw["ts"]) is str
    )


def _plain_micro_units(value: str) -> int:
    """A value in the gateways' own shape (``_PLAIN_VALUE``: digits, at most 9 decimals) in
    micro-units, rounded half up as ``micro_units`` rounds it, without a Decimal."""
    whole, _, fraction = value.partition(".")
    fraction = fraction.ljust(9, "0")
    return int(whole) * 1_000_000 + int(fraction[:6]) + (fraction[6] >= "5")


def _aware_us(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return micros(moment) if moment.tzinfo is not None else None


def check_samples(envelope: BatchEnvelope, latest_us: int) -> tuple[Samples, list[tuple[str, str]]]:
    """The batch's samples that are well formed and not from the future (a gateway whose
    clock runs ahead would otherwise stamp readings no later reading could follow), as
    columns; the others as (reason, payload)."""
    where = f"{envelope.gateway}/{envelope.seq}"
    shape = SampleV2 if envelope.v == 2 else Sample
    raws: list[Any] = list(envelope.samples)
    plain = [_plain(raw) for raw in raws]
    # a gateway stamps many samples of a cycle alike: each distinct time is parsed once
    stamps = {text: _aware_us(text) for text in {raw["ts"] for raw, ok in zip(raws, plain,
                                                                              strict=True) if ok}}
    ts = [stamps[raw["ts"]] if ok else None for raw, ok in zip(raws, plain, strict=True)]
    good = Samples()
    dead: list[tuple[str, str]] = []
    for raw, ok, at in zip(raws, plain, ts, strict=True):
        flags: tuple[ReadingFlag, ...] = ()
        if ok and at is not None:
            meter, register, unit = raw["meter"], raw["register"], raw["unit"]
            micro, payload = _plain_micro_units(raw["value"]), raw
        else:  # not in the gateways' own shape: pydantic accepts it or says why not
            try:
                sample = shape.model_validate(raw)
            except ValidationError as exc:
                dead.append((f"invalid sample in batch {where}: {_errors(exc)}",
                             json.dumps(raw, default=str)))
                continue
            meter, register, unit = sample.meter, sample.register.value, sample.unit.value
            micro, at = micro_units(sample.value), micros(sample.ts)
            payload = sample.model_dump(mode="json")
            flags = sample.flags if isinstance(sample, SampleV2) else ()
        if at > latest_us:
            dead.append((f"sample in batch {where} is from the future: {_iso(at)} "
                         f"is after {_iso(latest_us)}", json.dumps(payload, default=str)))
            continue
        good.gateway.append(envelope.gateway)
        good.where.append(where)
        good.meter.append(meter)
        good.register.append(register)
        good.unit.append(unit)
        good.ts.append(at)
        good.value.append(micro)
        good.flags.append(flags)
        good.raw.append(payload)
    return good, dead


def _iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat()


def not_behind(meter: KnownMeter, gateway: str) -> str | None:
    """Why ``gateway`` may not report ``meter``, or None when the meter is registered behind
    it. A gateway reports only its own meters: a misconfigured or compromised one must not
    charge someone else's account."""
    if meter.gateway == gateway:
        return None
    if meter.gateway is None:
        return f"meter {meter.id} is read by people, not through gateway {gateway}"
    return f"meter {meter.id} is registered behind gateway {meter.gateway}, not {gateway}"


def check_replacements(
    envelope: BatchEnvelope,
) -> tuple[list[MeterReplacement], list[tuple[str, str]]]:
    """The well-formed meter replacements of a batch; the others with the reason."""
    replacements: list[MeterReplacement] = []
    dead: list[tuple[str, str]] = []
    for raw in envelope.replacements:
        try:
            replacements.append(MeterReplacement.model_validate(raw))
        except ValidationError as exc:
            dead.append((f"invalid meter replacement in batch {envelope.gateway}/{envelope.seq}: "
                         f"{_errors(exc)}", json.dumps(raw, default=str)))
    return replacements, dead


@dataclass
class Replacement:
    """A meter replacement reported by a gateway, before it is routed."""

    gateway: str
    where: str  # "gw/seq"
    replacement: MeterReplacement


def route_replacements(
    replacements: Sequence[Replacement], meters: Mapping[str, KnownMeter],
) -> tuple[list[tuple[str, str, MeterReplacement]], list[tuple[str, str]]]:
    """Each replacement with the account of the meter replaced; one of an unknown meter or
    of a meter not behind the gateway that reported it is refused."""
    routed: list[tuple[str, str, MeterReplacement]] = []
    dead: list[tuple[str, str]] = []
    for r in replacements:
        meter = meters.get(r.replacement.old_meter)
        if meter is None:
            dead.append((f"replacement of unknown meter {r.replacement.old_meter} "
                         f"in batch {r.where}", r.replacement.model_dump_json()))
        elif refused := not_behind(meter, r.gateway):
            dead.append((f"replacement refused: {refused} in batch {r.where}",
                         r.replacement.model_dump_json()))
        else:
            routed.append((meter.account, r.where, r.replacement))
    return routed, dead


def successors(routed: Sequence[tuple[str, str, MeterReplacement]],
               meters: Mapping[str, KnownMeter]) -> dict[str, KnownMeter]:
    """The new meters of routed replacements that the directory does not know yet, as the old
    meters' successors: same account, provider, utility, gateway and registers (what rating
    registers them as). So their samples, in the batch that reports the replacement and after,
    go on to the old meter's account instead of being refused as unknown until rating has
    registered them."""
    found: dict[str, KnownMeter] = {}
    for _, _, r in routed:
        old = meters.get(r.old_meter)
        if old is not None and r.new_meter not in meters:
            found[r.new_meter] = KnownMeter(r.new_meter, old.account, old.provider,
                                            old.utility, old.gateway, dict(old.registers))
    return found


@dataclass
class Routed:
    """Samples routed to their accounts: which to store and forward, and what is refused."""

    keep: I64  # indices into the samples
    account: list[str]
    provider: list[str]
    utility: list[str]
    dead: list[tuple[str, str]]
    # meter replacements: (account of the meter replaced, "gw/seq", replacement)
    replacements: list[tuple[str, str, MeterReplacement]] = field(default_factory=list)


def route(samples: Samples, meters: Mapping[str, KnownMeter]) -> Routed:
    """Each sample to its meter's account; a sample of an unknown meter, of a meter not
    behind the gateway that sent it, of a register the meter does not have, or in another
    unit than the register's is refused."""
    found = [meters.get(m) for m in samples.meter]
    fits = [
        known is not None and known.gateway == gateway
        and known.registers.get(register) == unit
        for known, gateway, register, unit in zip(found, samples.gateway, samples.register,
                                                  samples.unit, strict=True)
    ]
    keep = np.flatnonzero(np.fromiter(fits, dtype=bool, count=len(fits)))
    dead: list[tuple[str, str]] = []
    for i in np.flatnonzero(~np.fromiter(fits, dtype=bool, count=len(fits))).tolist():
        meter, register, unit, where = (samples.meter[i], samples.register[i], samples.unit[i],
                                        samples.where[i])
        known = found[i]
        if known is None:
            reason = f"unknown meter {meter} in batch {where}"
        elif refused := not_behind(known, samples.gateway[i]):
            reason = f"{refused} in batch {where}"
        elif register not in known.registers:
            reason = f"meter {meter} has no register {register} in batch {where}"
        else:
            reason = (f"meter {meter} register {register} is in {known.registers[register]}, "
                      f"sample says {unit} in batch {where}")
        dead.append((reason, json.dumps(samples.raw[i], default=str)))
    owners = [found[i] for i in keep.tolist()]
    return Routed(
        keep=keep,
        account=[m.account for m in owners if m is not None],
        provider=[m.provider for m in owners if m is not None],
        utility=[m.utility for m in owners if m is not None],
        dead=dead,
    )


def records(
    samples: Samples, routed: Routed, batches: Sequence[tuple[str, int]],
    partition_of: Callable[[str], int], per_record: int = RECORD_READINGS,
) -> list[tuple[int, ReadingsRecord]]:
    """The Kafka records to produce, as (partition, record): the routed readings grouped by
    the partition of their account, at most ``per_record`` readings a record, in the order
    they came (so each meter's readings keep their order); meter replacements ride in the
    first record of their account's partition."""
    partitions = np.fromiter((partition_of(a) for a in routed.account), dtype=np.int64,
                             count=len(routed.account))
    order = np.argsort(partitions, kind="stable")
    keep = routed.keep[order]
    cuts = np.flatnonzero(np.diff(partitions[order])) + 1
    replaced: dict[int, list[tuple[str, MeterReplacement]]] = {}
    for account, _, replacement in routed.replacements:
        replaced.setdefault(partition_of(account), []).append((account, replacement))
    out: list[tuple[int, ReadingsRecord]] = []
    runs = zip(np.split(order, cuts), np.split(keep, cuts), strict=True) if len(keep) else ()
    for run, at in runs:
        for start in range(0, len(run), per_record):
            mine, rows = run[start:start + per_record].tolist(), at[start:start + per_record]
            partition = int(partitions[mine[0]])
            out.append((partition, _record(samples, routed, batches, mine, rows.tolist(),
                                           replaced.pop(partition, []))))
    for partition, riders in replaced.items():  # replacements of accounts with no reading
        out.append((partition, _record(samples, routed, batches, [], [], riders)))
    return out


def _record(samples: Samples, routed: Routed, batches: Sequence[tuple[str, int]],
            mine: list[int], rows: list[int],
            replacements: list[tuple[str, MeterReplacement]]) -> ReadingsRecord:
    """A record of the routed readings ``mine`` (indices into ``routed``), which are the
    samples ``rows``."""
    return ReadingsRecord(
        batches=list(batches),
        account=[routed.account[k] for k in mine],
        provider=[routed.provider[k] for k in mine],
        utility=[routed.utility[k] for k in mine],
        meter=[samples.meter[i] for i in rows],
        register=[samples.register[i] for i in rows],
        unit=[samples.unit[i] for i in rows],
        ts=[samples.ts[i] for i in rows],
        value=[samples.value[i] for i in rows],
        flagged=[(j, samples.flags[i]) for j, i in enumerate(rows) if samples.flags[i]],
        replacements=replacements,
    )


def account_records(samples: Samples, routed: Routed) -> list[tuple[str, AccountReadings]]:
    """The skeleton's records (v1), as (key, record): one per gateway batch and account, a
    pydantic object per reading. Kept as the baseline the benchmarks compare v2 with
    (``bridge_record_version``)."""
    grouped: dict[tuple[str, str], list[Reading]] = {}
    for k, i in enumerate(routed.keep.tolist()):
        grouped.setdefault((samples.where[i], routed.account[k]), []).append(Reading(
            meter=samples.meter[i], register=Register(samples.register[i]),
            unit=Unit(samples.unit[i]), value=Decimal(samples.value[i]).scaleb(-6),
            ts=EPOCH + timedelta(microseconds=samples.ts[i]), provider=routed.provider[k],
            utility=routed.utility[k], flags=samples.flags[i]))
    replaced: dict[tuple[str, str], list[MeterReplacement]] = {}
    for account, where, replacement in routed.replacements:
        replaced.setdefault((where, account), []).append(replacement)
    out = []
    for where, account in dict.fromkeys([*grouped, *replaced]):
        gateway, seq = where.rsplit("/", 1)
        out.append((account, AccountReadings(
            account=account, gateway=gateway, seq=int(seq),
            readings=grouped.get((where, account), []),
            replacements=replaced.get((where, account), []))))
    return out


def latest_allowed_us(now: datetime, skew_seconds: float) -> int:
    """The latest reading time accepted at ``now``: the bridge's clock plus the skew allowed."""
    return micros(now) + int(skew_seconds * 1_000_000)
